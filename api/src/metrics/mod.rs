//! `GET /metrics` in the Prometheus text format (OpenMetrics flavour, as encoded by
//! prometheus-client).
//!
//! The gateway, journal and billing figures come from custom collectors that read the
//! atomics those parts already keep, at scrape time: the message path gains no metric
//! lookups. Only HTTP requests are counted here, by a middleware ([`Metrics::instrument`]).

mod encode;
mod gateway;
mod http;
mod stores;

use std::sync::Arc;

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus_client::{encoding::text, registry::Registry};
use router::Gateway;

pub use http::HttpMetrics;

/// What `/metrics` reads.
pub struct Sources {
    pub gateway: Arc<Gateway>,
    /// The message journal, when there is one on disk.
    pub journal: Option<journal::Journal>,
    /// Billing's engine, when it writes to a store.
    pub billing: Option<billing::BillingEngine>,
}

pub struct Metrics {
    registry: Registry,
    http: HttpMetrics,
}

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Metrics {
    pub fn new(sources: Sources) -> Arc<Self> {
        let mut registry = Registry::default();
        let http = HttpMetrics::default();
        registry.register(
            "smsgw_http_requests",
            "HTTP requests by route pattern and status.",
            http.requests.clone(),
        );
        registry.register(
            "smsgw_http_request_duration_seconds",
            "Time to answer an HTTP request, by route pattern.",
            http.duration.clone(),
        );
        registry.register_collector(Box::new(gateway::GatewayCollector(sources.gateway)));
        if let Some(log) = sources.journal {
            registry.register_collector(Box::new(stores::JournalCollector(log)));
        }
        if let Some(engine) = sources.billing {
            registry.register_collector(Box::new(stores::BillingCollector(engine)));
        }
        Arc::new(Self { registry, http })
    }

    /// `GET /metrics`.
    pub fn routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/metrics", get(scrape))
            .with_state(self.clone())
    }

    /// Count and trace every request of `router` (routes added before this call).
    pub fn instrument(self: &Arc<Self>, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            self.clone(),
            http::track,
        ))
    }

    /// The exposition text.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut body = String::with_capacity(16 * 1024);
        text::encode(&mut body, &self.registry)?;
        Ok(body)
    }
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.render() {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics\n",
        )
            .into_response(),
    }
}
