//! Configuration changes in the audit log. Until the admin API exists, the configuration
//! is a file: each start fingerprints it section by section (the parsed values, so
//! comments and layout do not count), compares with what the previous start recorded,
//! and writes one `config.loaded` line naming the sections that changed.
//!
//! The digests are keyed with a secret kept beside the data ([`audit_key`]): the audit
//! log must not let anyone who reads it test guesses of a password offline.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

pub const ACTION: &str = "config.loaded";

/// Section name (`smpp`, `router.users`, …) → short digest of its parsed value.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fingerprint(BTreeMap<String, String>);

impl Fingerprint {
    /// `router` is split into its tables, since that is where users and routes live;
    /// a `[router] file = "…"` (relative to `base_dir`) is read and split the same way.
    pub fn of(text: &str, base_dir: &Path, key: &[u8]) -> anyhow::Result<Self> {
        let table: toml::Table = toml::from_str(text)?;
        let mut sections = BTreeMap::new();
        for (name, value) in &table {
            match (name.as_str(), value) {
                ("router", toml::Value::Table(router)) => {
                    let external = match router.get("file") {
                        Some(toml::Value::String(file)) => {
                            let path = base_dir.join(file);
                            let text = std::fs::read_to_string(&path).map_err(|e| {
                                anyhow::anyhow!("router file {}: {e}", path.display())
                            })?;
                            Some(toml::from_str::<toml::Table>(&text)?)
                        }
                        _ => None,
                    };
                    for (sub, value) in router.iter().chain(external.iter().flatten()) {
                        sections.insert(format!("router.{sub}"), digest(key, value));
                    }
                }
                _ => {
                    sections.insert(name.clone(), digest(key, value));
                }
            }
        }
        Ok(Self(sections))
    }

    /// Reads the `sections=` part of an earlier audit line.
    pub fn from_detail(detail: &str) -> Option<Self> {
        let list = detail.split_once("sections=")?.1.split(' ').next()?;
        let sections = list
            .split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some(Self(sections))
    }

    /// Sections added, removed or changed since `before`.
    pub fn changed_since(&self, before: &Fingerprint) -> Vec<String> {
        let mut names: Vec<&String> = self.0.keys().chain(before.0.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter(|name| self.0.get(*name) != before.0.get(*name))
            .cloned()
            .collect()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, digest) in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{name}={digest}")?;
        }
        Ok(())
    }
}

fn digest(key: &[u8], value: &toml::Value) -> String {
    // Serialising the parsed value gives one text per meaning (tables are ordered maps).
    let text = toml::to_string(value).unwrap_or_else(|_| format!("{value:?}"));
    let hash = Sha256::new()
        .chain_update((key.len() as u64).to_be_bytes())
        .chain_update(key)
        .chain_update(text.as_bytes())
        .finalize();
    hash[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The installation's audit key, `config-audit.key` in `dir`: 32 random bytes made on the
/// first start, readable by the gateway's user only.
pub fn audit_key(dir: &Path) -> anyhow::Result<Vec<u8>> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let path: PathBuf = dir.join("config-audit.key");
    if let Ok(key) = std::fs::read(&path)
        && key.len() >= 32
    {
        return Ok(key);
    }
    std::fs::create_dir_all(dir)?;
    let key: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|u| u.into_bytes())
        .collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(&key)?;
    file.sync_all()?;
    Ok(key)
}

/// The audit line for this start: what changed since `previous` (the detail of the last
/// `config.loaded` line, if any).
pub fn audit_event(
    path: Option<&Path>,
    text: &str,
    base_dir: &Path,
    key: &[u8],
    previous: Option<&str>,
) -> anyhow::Result<billing::AuditEvent> {
    let now = Fingerprint::of(text, base_dir, key)?;
    let changed = match previous.and_then(Fingerprint::from_detail) {
        None => "first-load".to_owned(),
        Some(before) => {
            let changed = now.changed_since(&before);
            if changed.is_empty() {
                "none".to_owned()
            } else {
                changed.join(",")
            }
        }
    };
    let subject = match path {
        Some(path) => std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string(),
        None => "embedded defaults".to_owned(),
    };
    Ok(billing::AuditEvent::new(
        system_user(),
        format!("host {}", hostname()),
        ACTION,
        subject,
        format!("changed={changed} sections={now}"),
    ))
}

/// Who started the process: the login behind sudo if any, else the user, else the uid.
pub fn system_user() -> String {
    use std::os::unix::fs::MetadataExt;
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(|| {
            std::fs::metadata("/proc/self")
                .ok()
                .map(|m| format!("uid {}", m.uid()))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Writes this start's line to the audit log.
pub async fn record(
    engine: &billing::BillingEngine,
    path: Option<&Path>,
    text: &str,
    base_dir: &Path,
    key_dir: &Path,
) -> anyhow::Result<billing::AuditEvent> {
    let key = audit_key(key_dir)?;
    let previous = engine.audit_log(Some(ACTION), 1).await?;
    let event = audit_event(
        path,
        text,
        base_dir,
        &key,
        previous.first().map(|e| e.detail.as_str()),
    )?;
    engine.record_audit(event.clone()).await?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[smpp]
listen = "127.0.0.1:2775"

[[router.users]]
uid = "bank"
username = "bank"
password = "x"

[[router.mt_routes]]
order = 0
type = "DefaultRoute"
connector = "smppc(sim)"
"#;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn event(text: &str, previous: Option<&str>) -> billing::AuditEvent {
        audit_event(None, text, Path::new("."), KEY, previous).unwrap()
    }

    #[test]
    fn names_the_sections_that_changed_and_ignores_layout() {
        let before = event(BASE, None);
        assert!(before.detail.starts_with("changed=first-load "));

        let reformatted = format!("# a comment\n{}", BASE.replace("\n\n", "\n\n\n"));
        let same = event(&reformatted, Some(&before.detail));
        assert!(same.detail.starts_with("changed=none "), "{}", same.detail);

        let edited = BASE.replace("password = \"x\"", "password = \"y\"")
            + "\n[durability]\nmode = \"memory\"\n";
        let changed = event(&edited, Some(&before.detail));
        assert!(
            changed
                .detail
                .starts_with("changed=durability,router.users "),
            "{}",
            changed.detail
        );
        assert!(!changed.detail.contains("\"y\""), "no values in the log");
    }

    #[test]
    fn an_external_router_file_is_fingerprinted() {
        let dir = tempfile::tempdir().unwrap();
        let main = "[router]\nfile = \"router.toml\"\n";
        std::fs::write(dir.path().join("router.toml"), "[[users]]\nuid = \"a\"\n").unwrap();
        let before = audit_event(None, main, dir.path(), KEY, None).unwrap();
        std::fs::write(dir.path().join("router.toml"), "[[users]]\nuid = \"b\"\n").unwrap();
        let after = audit_event(None, main, dir.path(), KEY, Some(&before.detail)).unwrap();
        assert!(
            after.detail.starts_with("changed=router.users "),
            "{}",
            after.detail
        );
    }

    #[test]
    fn digests_depend_on_the_installation_key() {
        let password = toml::Value::String("hunter2".into());
        assert_ne!(digest(KEY, &password), digest(b"another key", &password));
        let dir = tempfile::tempdir().unwrap();
        let key = audit_key(dir.path()).unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(audit_key(dir.path()).unwrap(), key, "made once, then read");
    }
}
