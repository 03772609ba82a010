//! Configuration changes in the audit log. Until the admin API exists, the configuration
//! is a file: each start fingerprints it section by section (the parsed values, so
//! comments and layout do not count), compares with what the previous start recorded,
//! and writes one `config.loaded` line naming the sections that changed.

use std::{collections::BTreeMap, fmt, path::Path};

use sha2::{Digest, Sha256};

pub const ACTION: &str = "config.loaded";

/// Section name (`smpp`, `router.users`, …) → short digest of its parsed value.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fingerprint(BTreeMap<String, String>);

impl Fingerprint {
    /// `router` is split into its tables, since that is where users and routes live.
    pub fn of(text: &str) -> anyhow::Result<Self> {
        let table: toml::Table = toml::from_str(text)?;
        let mut sections = BTreeMap::new();
        for (key, value) in &table {
            match (key.as_str(), value) {
                ("router", toml::Value::Table(router)) => {
                    for (sub, value) in router {
                        sections.insert(format!("router.{sub}"), digest(value));
                    }
                }
                _ => {
                    sections.insert(key.clone(), digest(value));
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

fn digest(value: &toml::Value) -> String {
    // Serialising the parsed value gives one text per meaning (tables are ordered maps).
    let text = toml::to_string(value).unwrap_or_else(|_| format!("{value:?}"));
    let hash = Sha256::digest(text.as_bytes());
    hash[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The audit line for this start: what changed since `previous` (the detail of the last
/// `config.loaded` line, if any).
pub fn audit_event(
    path: Option<&Path>,
    text: &str,
    previous: Option<&str>,
) -> anyhow::Result<billing::AuditEvent> {
    let now = Fingerprint::of(text)?;
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
) -> anyhow::Result<billing::AuditEvent> {
    let previous = engine.audit_log(Some(ACTION), 1).await?;
    let event = audit_event(path, text, previous.first().map(|e| e.detail.as_str()))?;
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

    #[test]
    fn names_the_sections_that_changed_and_ignores_layout() {
        let before = audit_event(None, BASE, None).unwrap();
        assert!(before.detail.starts_with("changed=first-load "));

        let reformatted = format!("# a comment\n{}", BASE.replace("\n\n", "\n\n\n"));
        let same = audit_event(None, &reformatted, Some(&before.detail)).unwrap();
        assert!(same.detail.starts_with("changed=none "), "{}", same.detail);

        let edited = BASE.replace("password = \"x\"", "password = \"y\"")
            + "\n[durability]\nmode = \"memory\"\n";
        let changed = audit_event(None, &edited, Some(&before.detail)).unwrap();
        assert!(
            changed
                .detail
                .starts_with("changed=durability,router.users "),
            "{}",
            changed.detail
        );
        assert!(!changed.detail.contains("\"y\""), "no values in the log");
    }
}
