//! SMPP 3.4 sessions on rusmpp: the server side (we are the SMSC for client ESMEs),
//! the client side (uplinks to operators), text codecs, long messages and receipts.

pub mod bind;
pub mod client;
pub mod clock;
pub mod frame;
mod io;
pub mod receipt;
pub mod server;
pub mod status;
pub mod text;
pub mod throttle;
pub mod time;
pub mod window;

pub use bind::BindKind;
/// The PDU types, re-exported so every crate uses the same rusmpp.
pub use rusmpp;
