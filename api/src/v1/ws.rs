//! `GET /api/v1/notifications/dlr`: a WebSocket of the account's live receipts (every
//! receipt of the key's user, whichever way the message was sent), with a resume token.
//!
//! Each event carries a `token`; a client that reconnects with `?resume=<token>` first
//! gets every event after it that is still kept (the last hour, in memory), then the
//! live ones. Tokens name the process that issued them: after a restart of the gateway
//! an old token cannot be honoured, and the client gets a `{"type":"reset"}` message
//! before the live events.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{
        ConnectInfo, RawQuery, State,
        ws::{
            Message, Utf8Bytes, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
        },
    },
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use futures_util::SinkExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tracing::debug;

use super::{V1, keys::Scope, peer, problem::Problem, query_params};

/// How long events are kept for resuming.
pub const KEEP: Duration = Duration::from_secs(3600);
/// Events kept per user at most (older ones go first).
pub const KEEP_MAX: usize = 100_000;
/// Live events buffered per user for slow sockets before they re-read the backlog.
const LIVE: usize = 1024;
/// Events a socket takes from the backlog under one lock, and writes with one flush.
const READ_BATCH: usize = 256;

/// An event as every socket sends it: serialised once, shared (a clone is a refcount).
type Frame = Utf8Bytes;

struct Kept {
    seq: u64,
    at: Instant,
    text: Frame,
}

struct UserLog {
    kept: VecDeque<Kept>,
    live: broadcast::Sender<u64>,
}

/// Every user's recent events, and the live feed of new ones.
pub struct Hub {
    epoch: u64,
    next: AtomicU64,
    users: Mutex<HashMap<Arc<str>, UserLog>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            epoch: rand::random::<u64>() >> 16,
            next: AtomicU64::new(1),
            users: Mutex::new(HashMap::new()),
        }
    }
}

impl Hub {
    fn token(&self, seq: u64) -> String {
        format!("{:x}-{seq}", self.epoch)
    }

    /// The sequence number in `token`, if this process issued it.
    fn parse(&self, token: &str) -> Option<u64> {
        let (epoch, seq) = token.split_once('-')?;
        (u64::from_str_radix(epoch, 16).ok()? == self.epoch)
            .then(|| seq.parse().ok())
            .flatten()
    }

    /// Keeps `event` for `uid` and hands it to its connected sockets.
    pub fn publish(&self, uid: &Arc<str>, mut event: Value) {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        event["token"] = json!(self.token(seq));
        let text = Frame::from(event.to_string());
        let now = Instant::now();
        let mut users = self.users.lock();
        let log = users.entry(uid.clone()).or_insert_with(|| UserLog {
            kept: VecDeque::new(),
            live: broadcast::channel(LIVE).0,
        });
        log.kept.push_back(Kept { seq, at: now, text });
        while log
            .kept
            .front()
            .is_some_and(|k| now.duration_since(k.at) > KEEP || log.kept.len() > KEEP_MAX)
        {
            log.kept.pop_front();
        }
        let _ = log.live.send(seq);
    }

    /// Drops users whose events are all older than [`KEEP`] and who have no socket.
    pub fn purge(&self) {
        let now = Instant::now();
        self.users.lock().retain(|_, log| {
            log.kept.retain(|k| now.duration_since(k.at) <= KEEP);
            !log.kept.is_empty() || log.live.receiver_count() > 0
        });
    }

    /// A live subscription and `uid`'s kept events after `after`, taken together so
    /// nothing falls between them.
    fn subscribe(
        &self,
        uid: &Arc<str>,
        after: u64,
    ) -> (broadcast::Receiver<u64>, Vec<(u64, Frame)>) {
        let mut users = self.users.lock();
        let log = users.entry(uid.clone()).or_insert_with(|| UserLog {
            kept: VecDeque::new(),
            live: broadcast::channel(LIVE).0,
        });
        (
            log.live.subscribe(),
            Self::after(log, after, u64::MAX, usize::MAX),
        )
    }

    /// At most `limit` kept events past `after` and up to `up_to`.
    fn after(log: &UserLog, after: u64, up_to: u64, limit: usize) -> Vec<(u64, Frame)> {
        // Sequence numbers only grow: find the first one past `after`.
        let start = log.kept.partition_point(|k| k.seq <= after);
        log.kept
            .range(start..)
            .take_while(|k| k.seq <= up_to)
            .take(limit)
            .map(|k| (k.seq, k.text.clone()))
            .collect()
    }

    /// A socket's next events: a batch, not the whole backlog (a hundred sockets each
    /// copying everything kept, for every event, was the fan-out's cost).
    fn kept_after(&self, uid: &str, after: u64, up_to: u64) -> Vec<(u64, Frame)> {
        self.users
            .lock()
            .get(uid)
            .map(|log| Self::after(log, after, up_to, READ_BATCH))
            .unwrap_or_default()
    }
}

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
            Some(seq) => (seq, false),
            None => (u64::MAX, true),
        },
    };
    // Without a token only live events: start after everything kept.
    let (mut live, backlog) = hub.subscribe(&uid, after);
    let mut last = if after == u64::MAX {
        hub.next.load(Ordering::Relaxed).saturating_sub(1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_resume_within_the_process() {
        let hub = Hub::default();
        let uid: Arc<str> = Arc::from("u1");
        for i in 0..5 {
            hub.publish(&uid, json!({"n": i}));
        }
        let kept = hub.kept_after("u1", 0, u64::MAX);
        assert_eq!(kept.len(), 5);
        let token: Value = serde_json::from_str(kept[1].1.as_str()).expect("json");
        let seq = hub.parse(token["token"].as_str().unwrap_or_default());
        assert_eq!(seq, Some(kept[1].0));
        assert_eq!(hub.kept_after("u1", kept[1].0, u64::MAX).len(), 3);
        assert_eq!(hub.kept_after("u1", kept[1].0, kept[3].0).len(), 2, "up to");
        assert_eq!(
            Hub::default().parse(token["token"].as_str().unwrap_or_default()),
            None
        );
        assert!(hub.kept_after("u2", 0, u64::MAX).is_empty());
        for i in 0..(READ_BATCH + 10) {
            hub.publish(&uid, json!({"m": i}));
        }
        assert_eq!(
            hub.kept_after("u1", 0, u64::MAX).len(),
            READ_BATCH,
            "a batch"
        );
    }
}
