//! Jasmin's HTTP API (`/send`, `/balance`, `/rate`, `/ping`, docs/jasmin-compat.md §1) and its
//! REST API (`/secure/*`, §1.8) on smsgw's HTTP listener. Each endpoint's logic works
//! on [`Params`] and returns a [`Failure`] or its result; the handlers here and in
//! [`rest`] only shape the two answer styles.

pub mod balance;
mod batch;
mod caller;
pub mod params;
pub mod rest;
pub mod send;
pub mod tlvs;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    body::Bytes,
    extract::{ConnectInfo, DefaultBodyLimit, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
    routing::get,
};
use router::{Gateway, Refusal};

pub use caller::{Api, Caller};
pub use params::{ArgError, Params};

/// Largest accepted request body: a 5-part message in hex with every parameter fits
/// many times over.
pub const MAX_BODY: usize = 64 * 1024;

/// Largest `/secure/sendbatch` body (thousands of messages).
pub const MAX_BATCH_BODY: usize = 8 * 1024 * 1024;

/// A refused request: the status and the text that goes inside `Error "…"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {text}")]
pub struct Failure {
    pub status: u16,
    pub text: String,
}

impl Failure {
    pub fn bad_request(text: String) -> Self {
        Self { status: 400, text }
    }
}

impl From<ArgError> for Failure {
    fn from(e: ArgError) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Self {
        Self {
            status: r.http_status(),
            text: r.to_string(),
        }
    }
}

/// The Jasmin endpoints, for merging with the rest of the listener's routes.
pub fn routes(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/send", get(http_send).post(http_send))
        .route("/balance", get(http_balance).post(http_balance))
        .route("/rate", get(http_rate).post(http_rate))
        .route("/ping", get(ping).post(ping))
        .route("/secure/send", axum::routing::post(rest::send))
        .route("/secure/balance", get(rest::balance))
        .route("/secure/rate", get(rest::rate))
        .route("/secure/ping", get(rest::ping))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // A batch carries many messages: its own, larger limit.
        .route(
            "/secure/sendbatch",
            axum::routing::post(batch::send_batch).layer(DefaultBodyLimit::max(MAX_BATCH_BODY)),
        )
        .with_state(Api::new(gateway))
}

pub(crate) fn reply(status: u16, content_type: &'static str, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub(crate) fn json_reply(status: u16, value: &serde_json::Value) -> Response {
    reply(status, "application/json", value.to_string())
}

async fn http_send(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let args = Params::from_request(query.as_deref(), &headers, &body);
    match send::send(&api.caller(peer), args).await {
        Ok(id) => reply(200, "text/plain", format!("Success \"{id}\"")),
        Err(f) => reply(f.status, "text/plain", format!("Error \"{}\"", f.text)),
    }
}

/// Jasmin answers `/balance` and `/rate` errors as a JSON string.
fn json_result(result: Result<serde_json::Value, Failure>) -> Response {
    match result {
        Ok(value) => json_reply(200, &value),
        Err(f) => json_reply(f.status, &serde_json::Value::String(f.text)),
    }
}

async fn http_balance(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let args = Params::from_request(query.as_deref(), &headers, &body);
    json_result(balance::balance(&api.caller(peer), args).await)
}

async fn http_rate(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let args = Params::from_request(query.as_deref(), &headers, &body);
    json_result(balance::rate(&api.caller(peer), args).await)
}

async fn ping() -> Response {
    reply(200, "text/plain", "Jasmin/PONG".to_owned())
}
