//! Liveness and readiness. The gateway decides what "ready" means (see
//! [`HealthSource`]); this module only turns its checks into HTTP answers.

use std::{fmt::Write, sync::Arc};

use axum::{extract::State, http::StatusCode};

/// One readiness condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// Why it fails, or what it measured.
    pub detail: String,
}

impl Check {
    pub fn new(name: &'static str, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            name,
            ok,
            detail: detail.into(),
        }
    }
}

/// What the process reports about itself. Called per request, so it reads counters and
/// flags; it must not wait on I/O.
pub trait HealthSource: Send + Sync + 'static {
    fn readiness(&self) -> Vec<Check>;
}

pub(crate) async fn live() -> &'static str {
    "live\n"
}

pub(crate) async fn ready(State(source): State<Arc<dyn HealthSource>>) -> (StatusCode, String) {
    let checks = source.readiness();
    let ready = checks.iter().all(|c| c.ok);
    let mut body = String::from(if ready { "ready\n" } else { "not ready\n" });
    for c in &checks {
        let state = if c.ok { "ok" } else { "failing" };
        let _ = writeln!(body, "{}: {state} {}", c.name, c.detail);
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}
