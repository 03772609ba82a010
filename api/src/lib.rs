//! smsgw's HTTP facade: Jasmin's HTTP and REST APIs ([`jasmin::routes`]: `/send`,
//! `/balance`, `/rate`, `/ping`, `/secure/*`) and the operations endpoints:
//!
//! - `GET /health/live`: 200 while the process runs.
//! - `GET /health/ready`: 200 when every readiness check passes, else 503; the body lists
//!   each check, one per line, so an operator sees why.
//! - `GET /metrics`: Prometheus metrics ([`metrics`]); OpenTelemetry traces: [`telemetry`].

pub mod admin;
pub mod health;
pub mod jasmin;
pub mod metrics;
pub mod telemetry;

use std::{io, sync::Arc};

use axum::{Router, routing::get};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use health::{Check, HealthSource};

/// The routes of the HTTP listener.
pub fn router(health: Arc<dyn HealthSource>) -> Router {
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .with_state(health)
}

/// Serves `router` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
