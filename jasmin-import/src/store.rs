//! The files of a Jasmin store: `<profile>.<suffix>`, each one header line
//! (`Persisted on <date> [Jasmin <release>]`) and one pickle to the end of the file.

use std::path::{Path, PathBuf};

use crate::pickle::{self, PickleError, Value};

/// What a store file holds, by its suffix (as `jcli persist` names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Groups,
    Users,
    SmppConnectors,
    HttpConnectors,
    Filters,
    MtRoutes,
    MoRoutes,
    MtInterceptors,
    MoInterceptors,
}

const SUFFIXES: [(&str, Kind); 9] = [
    ("router-groups", Kind::Groups),
    ("router-users", Kind::Users),
    ("smppccs", Kind::SmppConnectors),
    ("httpccs", Kind::HttpConnectors),
    ("filters", Kind::Filters),
    ("router-mtroutes", Kind::MtRoutes),
    ("router-moroutes", Kind::MoRoutes),
    ("router-mtinterceptors", Kind::MtInterceptors),
    ("router-mointerceptors", Kind::MoInterceptors),
];

/// The largest store file read (a store of 100k users is a few tens of MB).
const MAX_FILE: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_FILE} bytes")]
    TooLarge { path: PathBuf },
    #[error(
        "{path} is not a Jasmin store file (its name should end in .router-users, .smppccs, … and its first line read \"Persisted on … [Jasmin …]\")"
    )]
    NotJasmin { path: PathBuf },
    #[error("{path}: {source}")]
    Pickle { path: PathBuf, source: PickleError },
    #[error("{path}: not the shape Jasmin writes: {what}")]
    Shape { path: PathBuf, what: String },
    #[error("no files of profile {profile:?} in {path} (found profiles: {found})")]
    NoProfile {
        path: PathBuf,
        profile: String,
        found: String,
    },
}

/// One store file, read.
#[derive(Debug)]
pub struct StoreFile {
    pub kind: Kind,
    pub path: PathBuf,
    /// What follows "Persisted on " in the header: `Thu Dec  3 20:03:57 2026 [Jasmin 0.11.1]`.
    pub persisted: String,
    pub data: Value,
}

/// The profile and kind a file name stands for (`jcli-prod.router-users`).
fn name_parts(path: &Path) -> Option<(String, Kind)> {
    let name = path.file_name()?.to_str()?;
    SUFFIXES.iter().find_map(|(suffix, kind)| {
        let profile = name.strip_suffix(suffix)?.strip_suffix('.')?;
        (!profile.is_empty()).then(|| (profile.to_owned(), *kind))
    })
}

/// Reads one store file.
pub fn read_file(path: &Path) -> Result<StoreFile, ImportError> {
    let read = |source| ImportError::Read {
        path: path.to_owned(),
        source,
    };
    let (_, kind) = name_parts(path).ok_or_else(|| ImportError::NotJasmin {
        path: path.to_owned(),
    })?;
    // Read through a limit: the length in the metadata says nothing of a FIFO or of a
    // link to a device.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).map_err(read)?, MAX_FILE + 1),
        &mut bytes,
    )
    .map_err(read)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(ImportError::TooLarge {
            path: path.to_owned(),
        });
    }
    parse_file(kind, path, &bytes)
}

/// The header and pickle of a file's `bytes`.
pub fn parse_file(kind: Kind, path: &Path, bytes: &[u8]) -> Result<StoreFile, ImportError> {
    let not_jasmin = || ImportError::NotJasmin {
        path: path.to_owned(),
    };
    let newline = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(not_jasmin)?;
    let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| not_jasmin())?;
    let persisted = header
        .strip_prefix("Persisted on ")
        .filter(|rest| rest.contains("[Jasmin "))
        .ok_or_else(not_jasmin)?;
    let data = pickle::load(&bytes[newline + 1..]).map_err(|source| ImportError::Pickle {
        path: path.to_owned(),
        source,
    })?;
    Ok(StoreFile {
        kind,
        path: path.to_owned(),
        persisted: persisted.trim_end().to_owned(),
        data,
    })
}

/// The files of `profile` in the store directory `path`, or the one file `path`.
pub fn store_files(path: &Path, profile: &str) -> Result<Vec<StoreFile>, ImportError> {
    let read = |source| ImportError::Read {
        path: path.to_owned(),
        source,
    };
    if !std::fs::metadata(path).map_err(read)?.is_dir() {
        return Ok(vec![read_file(path)?]);
    }
    let mut found = std::collections::BTreeSet::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read)? {
        let entry = entry.map_err(read)?.path();
        let Some((p, _)) = name_parts(&entry) else {
            continue;
        };
        if p == profile {
            files.push(read_file(&entry)?);
        }
        found.insert(p);
    }
    if files.is_empty() {
        return Err(ImportError::NoProfile {
            path: path.to_owned(),
            profile: profile.to_owned(),
            found: found.into_iter().collect::<Vec<_>>().join(", "),
        });
    }
    files.sort_by_key(|f| f.kind);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_and_headers() {
        assert_eq!(
            name_parts(Path::new("/etc/jasmin/store/jcli-prod.router-users")),
            Some(("jcli-prod".into(), Kind::Users))
        );
        assert_eq!(
            name_parts(Path::new("p.router-mtroutes")),
            Some(("p".into(), Kind::MtRoutes))
        );
        assert_eq!(name_parts(Path::new("router-users")), None);
        assert_eq!(name_parts(Path::new("jcli-prod.users")), None);
        let path = Path::new("x.filters");
        let file = parse_file(
            Kind::Filters,
            path,
            b"Persisted on Thu Dec  3 20:03:57 2026 [Jasmin 0.11.1]\n\x80\x02}q\x00.",
        )
        .expect("parses");
        assert_eq!(file.persisted, "Thu Dec  3 20:03:57 2026 [Jasmin 0.11.1]");
        assert_eq!(file.data, Value::Dict(Vec::new()));
        for bad in [
            &b"\x80\x02}."[..],
            b"Saved\n\x80\x02}.",
            b"Persisted on x\n.",
        ] {
            assert!(matches!(
                parse_file(Kind::Filters, path, bad),
                Err(ImportError::NotJasmin { .. })
            ));
        }
        assert!(matches!(
            parse_file(Kind::Filters, path, b"Persisted on x [Jasmin 1]\n\x80\x02}"),
            Err(ImportError::Pickle { .. })
        ));
    }
}
