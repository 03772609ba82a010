//! Counting HTTP requests by route and status, and one tracing span per request (the
//! parent of the message's span when the request submits one).

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use prometheus_client::metrics::{counter::Counter, family::Family, histogram::Histogram};
use tracing::Instrument;

type RouteLabels = Vec<(&'static str, String)>;

/// Request counts and durations; the label lookup takes a read lock per request, which
/// HTTP (unlike the per-PDU SMPP path) can afford.
#[derive(Clone)]
pub struct HttpMetrics {
    pub requests: Family<RouteLabels, Counter>,
    pub duration: Family<RouteLabels, Histogram>,
}

const DURATION_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS)),
        }
    }
}

pub(super) async fn track(
    State(metrics): State<Arc<super::Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    // The route pattern, not the path: `/secure/balance`, never a user's id.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let span = tracing::info_span!(
        "http.request",
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    let http = &metrics.http;
    http.requests
        .get_or_create(&vec![
            ("route", route.clone()),
            ("status", status.to_string()),
        ])
        .inc();
    http.duration
        .get_or_create(&vec![("route", route)])
        .observe(started.elapsed().as_secs_f64());
    response
}
