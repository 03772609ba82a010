//! smsgw's HTTP facade: Jasmin's HTTP and REST APIs ([`jasmin::routes`]: `/send`,
//! `/balance`, `/rate`, `/ping`, `/secure/*`), the REST API v1 ([`v1::routes`]:
//! `/api/v1/…` with API keys, webhooks, a receipts WebSocket and OpenAPI), and the
//! operations endpoints:
//!
//! - `GET /health/live`: 200 while the process runs.
//! - `GET /health/ready`: 200 when every readiness check passes, else 503; the body lists
//!   each check, one per line, so an operator sees why.
//! - `GET /metrics`: Prometheus metrics ([`metrics`]); OpenTelemetry traces: [`telemetry`].

pub mod admin;
pub mod health;
pub mod jasmin;
pub mod listener;
pub mod metrics;
pub mod telemetry;
pub mod v1;

use std::sync::Arc;

use axum::{Router, routing::get};

pub use health::{Check, HealthSource};

/// The routes of the HTTP listener.
pub fn router(health: Arc<dyn HealthSource>) -> Router {
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .with_state(health)
}

pub use listener::{Limits, serve, serve_with};
