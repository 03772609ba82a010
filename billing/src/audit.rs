//! The audit log: who changed money or configuration, what, when and from where.
//!
//! Audit events are written by the same write-behind transactions as the ledger, so a
//! balance adjustment and its audit line are stored together or not at all. The table
//! is append-only in both backends.

use std::sync::Arc;

use crate::ledger::{UnixMicros, now_micros};

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// Unique per event, so that a retried batch cannot write a line twice.
    pub id: Arc<str>,
    pub at: UnixMicros,
    /// Who: an admin's name, `config` for the configuration file, a system user.
    pub actor: String,
    /// From where: `grpc 10.0.0.5:51234`, `file /etc/smsgw.toml`, `cli`.
    pub origin: String,
    /// What, as `area.verb`: `balance.top_up`, `balance.adjust`, `config.loaded`.
    pub action: String,
    /// What it applied to: `account:7`, a file path.
    pub subject: String,
    /// The change itself, human-readable.
    pub detail: String,
}

impl AuditEvent {
    pub fn new(
        actor: impl Into<String>,
        origin: impl Into<String>,
        action: impl Into<String>,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string().into(),
            at: now_micros(),
            actor: actor.into(),
            origin: origin.into(),
            action: action.into(),
            subject: subject.into(),
            detail: detail.into(),
        }
    }
}
