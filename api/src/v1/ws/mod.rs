//! `GET /api/v1/notifications/dlr`: a WebSocket of the account's live receipts (every
//! receipt of the key's user, whichever way the message was sent), with a resume token.
//!
//! Each event carries a `token`; a client that reconnects with `?resume=<token>` first
//! gets every event after it that is still kept (the last hour), then the live ones.
//! With a journal on disk the events are also written to `dlr-events` beside it
//! ([`event_log`]), so a token survives a restart of the gateway. A token the gateway
//! cannot honour (memory-only after a restart, or another installation's) gets a
//! `{"type":"reset"}` message before the live events.

mod event_log;
mod hub;

pub use hub::{Hub, KEEP, KEEP_MAX};

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    extract::{
        ConnectInfo, RawQuery, State,
        ws::{Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection},
    },
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use futures_util::SinkExt;
use serde_json::json;
use tokio::sync::broadcast;
use tracing::debug;

use super::{V1, keys::Scope, peer, problem::Problem, query_params};

/// How long a resuming socket waits for an earlier process's events to be read back.
const RESTORE_WAIT: Duration = Duration::from_secs(30);

/// Live receipts of the account over a WebSocket; reconnect with `?resume=<token>`.
#[utoipa::path(get, path = "/api/v1/notifications/dlr", operation_id = "dlrWebSocket", tag = "notifications",
    params(("resume" = Option<String>, Query, description = "The token of the last event received")),
    responses((status = 101, description = "WebSocket: JSON text messages {{type, token, message_id, status, ...}}"), (status = 426, description = "Not a WebSocket request", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 401, description = "No valid API key", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing scope or address not allowed", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = ["sms:read"])))]
pub async fn dlr(
    State(v1): State<V1>,
    ConnectInfo(connect): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let p = match v1
        .authenticate(&headers, peer(connect), Scope::SmsRead)
        .await
    {
        Ok(p) => p,
        Err(problem) => return problem.into_response(),
    };
    let Ok(upgrade) = upgrade else {
        return Problem::new(
            426,
            "websocket_required",
            "this endpoint speaks WebSocket (Connection: Upgrade, Upgrade: websocket)",
        )
        .into_response();
    };
    let params = query_params(query.as_deref());
    let resume = params.get("resume").cloned();
    let uid = p.user.uid.clone();
    upgrade.on_upgrade(move |socket| serve(v1, uid, resume, socket))
}

async fn serve(v1: V1, uid: Arc<str>, resume: Option<String>, mut socket: WebSocket) {
    let hub = &v1.inner.hub;
    let (after, reset) = match resume.as_deref() {
        None => (u64::MAX, false),
        Some(token) => match hub.parse(token) {
            Some(seq) => {
                // Right after a restart: the earlier process's events first.
                hub.restored(RESTORE_WAIT).await;
                (seq, false)
            }
            None => (u64::MAX, true),
        },
    };
    // Without a token only live events: start after everything kept.
    let (mut live, backlog) = hub.subscribe(&uid, after);
    let mut last = if after == u64::MAX {
        hub.last_issued()
    } else {
        after
    };
    if reset {
        let notice = json!({"type": "reset", "detail": "the resume token is unknown here; live events follow"});
        if socket
            .send(Message::Text(notice.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
    }
    for (seq, text) in backlog {
        if socket.feed(Message::Text(text)).await.is_err() {
            return;
        }
        last = seq;
    }
    if socket.flush().await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            _ = v1.inner.stop.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            incoming = socket.recv() => match incoming {
                // Pings are answered by the socket; text from the client is ignored.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            seq = live.recv() => {
                let up_to = match seq {
                    Ok(seq) => seq,
                    // Fell behind the live feed: the kept events fill the gap.
                    Err(broadcast::error::RecvError::Lagged(_)) => u64::MAX,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                // Everything up to `up_to` (all that is kept after a lag), a batch
                // under each lock, written with one flush per batch.
                while up_to > last {
                    let batch = hub.kept_after(&uid, last, up_to);
                    let Some(&(end, _)) = batch.last() else { break };
                    for (_, text) in batch {
                        if socket.feed(Message::Text(text)).await.is_err() {
                            debug!("DLR WebSocket closed");
                            return;
                        }
                    }
                    if socket.flush().await.is_err() {
                        return;
                    }
                    last = end;
                }
            }
        }
    }
}
