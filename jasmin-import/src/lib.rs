//! `smsgw admin import-jasmin`: Jasmin's persisted configuration (what `jcli persist`
//! writes under /etc/jasmin/store) read without Python and turned into smsgw's router
//! configuration, with a report of everything that has no equivalent.
//!
//! `pickle` runs the pickle machine (no I/O, never calls anything), `store` reads the
//! files, `convert` maps Jasmin's objects to [`router::RouterConfig`].

pub mod convert;
pub mod pickle;
pub mod store;

use std::path::Path;

pub use convert::{Import, Note};
pub use store::ImportError;

/// The profile `jcli persist` writes when none is named.
pub const DEFAULT_PROFILE: &str = "jcli-prod";

/// Reads the store at `path` (a directory, or one of its files) for `profile`.
pub fn read_store(path: &Path, profile: &str) -> Result<Import, ImportError> {
    convert::convert(&store::store_files(path, profile)?)
}
