//! Webhooks: `POST`/`GET`/`DELETE /api/v1/account/webhooks`, the delivery log
//! (`GET /api/v1/account/webhooks/{id}/deliveries`), and the delivery worker.
//!
//! Events (`sms.delivered`, `sms.failed`, `sms.expired`, `sms.mo`) are written to an
//! outbox table (`api_webhook_events`) before any attempt, in the same transaction as
//! the message state they report and before the operator is answered for the receipt
//! or MO behind them, so a restart loses none: the worker reads
//! what is due from the table. Each attempt is its own task with a deadline, at most
//! [`PER_WEBHOOK`] at once per webhook, so one slow or dead endpoint cannot hold up the
//! others. A failed attempt is retried with exponential backoff and jitter until the
//! event is [`V1Config::webhook_retry_window`] old (72 h by default); every attempt is
//! logged in `api_webhook_attempts`.
//!
//! The body is signed as Stripe does: `Smsgw-Signature: t=<unix seconds>,v1=<hex>` where
//! the hex is HMAC-SHA256 under the webhook's secret of `<t>.<body>`.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{ConnectInfo, Path, RawQuery, State},
    http::{HeaderMap, Method, Request, header},
    response::{IntoResponse, Response},
};
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use parking_lot::Mutex;
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::Row;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{
    V1, json,
    keys::{Scope, hex},
    peer,
    problem::Problem,
    query_params,
    sms::page_limit,
    store::{Db, MessageRow, StoreError},
    time::{now_us, rfc3339},
};

/// The events a webhook can subscribe to.
pub const EVENTS: [&str; 4] = ["sms.delivered", "sms.failed", "sms.expired", "sms.mo"];
/// Attempts in flight at once for one webhook.
pub const PER_WEBHOOK: usize = 4;
/// Attempts in flight at once in all.
const TOTAL: usize = 256;
/// Events read from the outbox per pass.
const BATCH: i64 = 500;
/// The signature header.
pub const SIGNATURE_HEADER: &str = "smsgw-signature";

/// A registered endpoint.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: String,
    pub uid: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
    pub created_at: i64,
}

impl Webhook {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "url": self.url,
            "events": self.events,
            "secret_prefix": self.secret.chars().take(12).collect::<String>(),
            "created_at": rfc3339(self.created_at),
        })
    }
}

/// One event to deliver (a row of the outbox), with its webhook's secret.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: String,
    pub webhook_id: String,
    pub url: String,
    pub body: String,
    pub attempts: i64,
    pub created_at: i64,
    pub secret: String,
    pub webhook_deleted: bool,
}

/// `t=<secs>,v1=<hex>` for `body` sent at `t`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length.
        Err(_) => return String::new(),
    };
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex(&mac.finalize().into_bytes()))
}

/// The delay before attempt `attempts + 1`: base × 2^(attempts-1), at most `max`,
/// times a random factor in [0.5, 1.5).
pub fn backoff(base: Duration, max: Duration, attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let delay = base.saturating_mul(2u32.saturating_pow(exp)).min(max);
    delay.mul_f64(rand::rng().random_range(0.5..1.5))
}

const WEBHOOK_COLUMNS: &str = "id, uid, url, events, secret, created_at";

macro_rules! webhook_from_row {
    ($r:expr) => {{
        let r = $r;
        let events: String = r.try_get("events")?;
        Webhook {
            id: r.try_get("id")?,
            uid: r.try_get("uid")?,
            url: r.try_get("url")?,
            events: events.split_whitespace().map(str::to_owned).collect(),
            secret: r.try_get("secret")?,
            created_at: r.try_get("created_at")?,
        }
    }};
}

macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

impl Db {
    pub async fn insert_webhook(&self, w: &Webhook) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO api_webhooks (id, uid, url, events, secret, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&w.id)
            .bind(&w.uid)
            .bind(&w.url)
            .bind(w.events.join(" "))
            .bind(&w.secret)
            .bind(w.created_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// `uid`'s live webhooks, oldest first.
    pub async fn webhooks(&self, uid: &str) -> Result<Vec<Webhook>, StoreError> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM api_webhooks WHERE uid = $1 AND deleted_at IS NULL \
             ORDER BY created_at, id"
        );
        with_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(uid).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(webhook_from_row!(r));
            }
            Ok(out)
        })
    }

    pub async fn webhook(&self, uid: &str, id: &str) -> Result<Option<Webhook>, StoreError> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM api_webhooks WHERE uid = $1 AND id = $2");
        with_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(uid).bind(id).fetch_optional(pool).await?;
            Ok(match row {
                Some(r) => Some(webhook_from_row!(&r)),
                None => None,
            })
        })
    }

    pub async fn delete_webhook(&self, uid: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        with_pool!(self, pool => {
            let done = sqlx::query(
                "UPDATE api_webhooks SET deleted_at = $1 \
                 WHERE uid = $2 AND id = $3 AND deleted_at IS NULL",
            )
            .bind(now)
            .bind(uid)
            .bind(id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Pending events due by `now`, soonest first.
    pub async fn due_events(&self, now: i64, limit: i64) -> Result<Vec<Outgoing>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT e.id, e.webhook_id, e.url, e.body, e.attempts, e.created_at, w.secret, \
                 w.deleted_at FROM api_webhook_events e JOIN api_webhooks w ON w.id = e.webhook_id \
                 WHERE e.state = 'pending' AND e.next_at <= $1 ORDER BY e.next_at LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(Outgoing {
                    id: r.try_get("id")?,
                    webhook_id: r.try_get("webhook_id")?,
                    url: r.try_get("url")?,
                    body: r.try_get("body")?,
                    attempts: r.try_get("attempts")?,
                    created_at: r.try_get("created_at")?,
                    secret: r.try_get("secret")?,
                    webhook_deleted: r.try_get::<Option<i64>, _>("deleted_at")?.is_some(),
                });
            }
            Ok(out)
        })
    }

    /// Logs attempt number `attempt` and moves the event on: `pending` again at
    /// `next_at`, or `delivered`, `failed`, `cancelled`.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_attempt(
        &self,
        event_id: &str,
        attempt: i64,
        at: i64,
        status: Option<u16>,
        error: Option<&str>,
        state: &str,
        next_at: Option<i64>,
    ) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if attempt > 0 {
                sqlx::query(
                    "INSERT INTO api_webhook_attempts (event_id, attempt, at, status, error) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(event_id)
                .bind(attempt)
                .bind(at)
                .bind(status.map(i64::from))
                .bind(error)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE api_webhook_events SET attempts = $1, state = $2, next_at = $3 WHERE id = $4",
            )
            .bind(attempt)
            .bind(state)
            .bind(next_at)
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The delivery log of webhook `id`: events newest first, with their attempts.
    pub async fn deliveries(
        &self,
        webhook_id: &str,
        before: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<Value>, StoreError> {
        let (before_at, before_id) = match before {
            Some((at, id)) => (Some(at), id),
            None => (None, String::new()),
        };
        let sql = match self {
            Db::Sqlite(_) => {
                "SELECT id, url, event, body, attempts, next_at, state, created_at \
                 FROM api_webhook_events WHERE webhook_id = $1 \
                 AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3)) \
                 ORDER BY created_at DESC, id DESC LIMIT $4"
            }
            Db::Postgres(_) => {
                "SELECT id, url, event, body, attempts, next_at, state, created_at \
                 FROM api_webhook_events WHERE webhook_id = $1 \
                 AND ($2::BIGINT IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3)) \
                 ORDER BY created_at DESC, id DESC LIMIT $4"
            }
        };
        with_pool!(self, pool => {
            let rows = sqlx::query(sql)
                .bind(webhook_id)
                .bind(before_at)
                .bind(&before_id)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let id: String = r.try_get("id")?;
                let attempts = sqlx::query(
                    "SELECT attempt, at, status, error FROM api_webhook_attempts \
                     WHERE event_id = $1 ORDER BY attempt",
                )
                .bind(&id)
                .fetch_all(pool)
                .await?;
                let mut log = Vec::with_capacity(attempts.len());
                for a in &attempts {
                    log.push(json!({
                        "attempt": a.try_get::<i64, _>("attempt")?,
                        "at": rfc3339(a.try_get::<i64, _>("at")?),
                        "status": a.try_get::<Option<i64>, _>("status")?,
                        "error": a.try_get::<Option<String>, _>("error")?,
                    }));
                }
                let created_at: i64 = r.try_get("created_at")?;
                let body: String = r.try_get("body")?;
                out.push(json!({
                    "id": id,
                    "event": r.try_get::<String, _>("event")?,
                    "url": r.try_get::<String, _>("url")?,
                    "state": r.try_get::<String, _>("state")?,
                    "attempts": log,
                    "next_attempt_at": r.try_get::<Option<i64>, _>("next_at")?.map(rfc3339),
                    "created_at": rfc3339(created_at),
                    "payload": serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
                    "cursor": format!("{created_at}.{}", r.try_get::<String, _>("id")?),
                }));
            }
            Ok(out)
        })
    }
}

/// The body of `POST /api/v1/account/webhooks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    url: String,
    /// sms.delivered, sms.failed, sms.expired, sms.mo (default: all).
    events: Option<Vec<String>>,
}

pub(crate) fn valid_url(url: &str) -> bool {
    url.len() <= 2048
        && (url.starts_with("http://") || url.starts_with("https://"))
        && url
            .parse::<axum::http::Uri>()
            .is_ok_and(|u| u.host().is_some())
}

/// Register a webhook; its signing secret is shown once.
#[utoipa::path(post, path = "/api/v1/account/webhooks", operation_id = "createWebhook", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, description = "The webhook with its secret", body = super::openapi::WebhookView), (status = 401, description = "No valid API key", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing scope or address not allowed", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = ["webhooks:write"])))]
pub async fn create(
    State(v1): State<V1>,
    ConnectInfo(connect): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let p = v1
            .authenticate(&headers, peer(connect), Scope::WebhooksWrite)
            .await?;
        let req: CreateWebhook = serde_json::from_slice(&body).map_err(|e| {
            Problem::bad_request("malformed_json", format!("invalid request body: {e}"))
        })?;
        if !valid_url(&req.url) {
            return Err(Problem::invalid("`url` must be an http(s) URL"));
        }
        let events = req
            .events
            .unwrap_or_else(|| EVENTS.iter().map(|e| (*e).to_owned()).collect());
        if events.is_empty() {
            return Err(Problem::invalid("`events` must name at least one event"));
        }
        if let Some(bad) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
            return Err(Problem::invalid(format!(
                "unknown event {bad:?} (known: {})",
                EVENTS.join(", ")
            )));
        }
        let mut secret_bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret_bytes);
        let hook = Webhook {
            id: format!("wh_{}", uuid::Uuid::new_v4().simple()),
            uid: p.user.uid.to_string(),
            url: req.url,
            events,
            secret: format!("whsec_{}", hex(&secret_bytes)),
            created_at: now_us(),
        };
        v1.db()
            .insert_webhook(&hook)
            .await
            .map_err(Problem::internal)?;
        v1.inner.hooks.forget(&hook.uid);
        let mut body = hook.to_json();
        body["secret"] = json!(hook.secret);
        Ok(json(201, &body))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// The account's webhooks.
#[utoipa::path(get, path = "/api/v1/account/webhooks", operation_id = "listWebhooks", tag = "webhooks",
    responses((status = 200, description = "{{data: [...]}}", body = Vec<super::openapi::WebhookView>), (status = 401, description = "No valid API key", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing scope or address not allowed", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = ["webhooks:write"])))]
pub async fn list(
    State(v1): State<V1>,
    ConnectInfo(connect): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let p = v1
            .authenticate(&headers, peer(connect), Scope::WebhooksWrite)
            .await?;
        let hooks = v1
            .db()
            .webhooks(&p.user.uid)
            .await
            .map_err(Problem::internal)?;
        let data: Vec<Value> = hooks.iter().map(Webhook::to_json).collect();
        Ok::<_, Problem>(json(200, &json!({ "data": data })))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// Remove a webhook; its pending events are cancelled.
#[utoipa::path(delete, path = "/api/v1/account/webhooks/{id}", operation_id = "deleteWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id (wh_…)")),
    responses((status = 200, description = "Deleted"), (status = 404, description = "No such webhook", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 401, description = "No valid API key", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing scope or address not allowed", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = ["webhooks:write"])))]
pub async fn delete(
    State(v1): State<V1>,
    ConnectInfo(connect): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let p = v1
            .authenticate(&headers, peer(connect), Scope::WebhooksWrite)
            .await?;
        let deleted = v1
            .db()
            .delete_webhook(&p.user.uid, &id, now_us())
            .await
            .map_err(Problem::internal)?;
        if !deleted {
            return Err(Problem::not_found("webhook"));
        }
        v1.inner.hooks.forget(&p.user.uid);
        Ok(json(200, &json!({ "id": id, "deleted": true })))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// The delivery log of a webhook: events, newest first, with every attempt.
#[utoipa::path(get, path = "/api/v1/account/webhooks/{id}/deliveries", operation_id = "listDeliveries", tag = "webhooks",
    params(
        ("id" = String, Path, description = "Webhook id (wh_…)"),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, description = "{{data: [...], next_cursor}}"), (status = 404, description = "No such webhook", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 401, description = "No valid API key", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing scope or address not allowed", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = ["webhooks:write"])))]
pub async fn deliveries(
    State(v1): State<V1>,
    ConnectInfo(connect): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let p = v1
            .authenticate(&headers, peer(connect), Scope::WebhooksWrite)
            .await?;
        if v1
            .db()
            .webhook(&p.user.uid, &id)
            .await
            .map_err(Problem::internal)?
            .is_none()
        {
            return Err(Problem::not_found("webhook"));
        }
        let params = query_params(query.as_deref());
        let limit = page_limit(&params)?;
        let before = params
            .get("cursor")
            .map(|c| {
                c.split_once('.')
                    .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())))
                    .ok_or_else(|| Problem::invalid("invalid `cursor`"))
            })
            .transpose()?;
        let mut rows = v1
            .db()
            .deliveries(&id, before, limit + 1)
            .await
            .map_err(Problem::internal)?;
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let next = if more {
            rows.last()
                .and_then(|r| r["cursor"].as_str().map(str::to_owned))
        } else {
            None
        };
        Ok(json(200, &json!({ "data": rows, "next_cursor": next })))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// Users' live webhooks, cached for the receipt path: dropped on every change made
/// here, and read again after [`HOOK_CACHE_TTL`] anyway.
#[derive(Default)]
pub struct HookCache {
    by_uid: Mutex<HashMap<String, CachedHooks>>,
    /// Bumped by every change, so a read that raced with one is not cached.
    generation: std::sync::atomic::AtomicU64,
    /// Wakes the worker when new events are in the outbox.
    pub wake: Notify,
}

/// A user's webhooks and when they were read.
type CachedHooks = (std::time::Instant, Arc<Vec<Webhook>>);

/// How long a user's webhooks are trusted without reading them again.
pub const HOOK_CACHE_TTL: Duration = Duration::from_secs(10);

impl HookCache {
    fn forget(&self, uid: &str) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.by_uid.lock().remove(uid);
    }

    async fn get(&self, db: &Db, uid: &str) -> Result<Arc<Vec<Webhook>>, StoreError> {
        if let Some((at, hooks)) = self.by_uid.lock().get(uid)
            && at.elapsed() < HOOK_CACHE_TTL
        {
            return Ok(hooks.clone());
        }
        let generation = self.generation.load(std::sync::atomic::Ordering::Acquire);
        let hooks = Arc::new(db.webhooks(uid).await?);
        let mut cache = self.by_uid.lock();
        if self.generation.load(std::sync::atomic::Ordering::Acquire) == generation {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(uid.to_owned(), (std::time::Instant::now(), hooks.clone()));
        }
        Ok(hooks)
    }
}

/// A row of the outbox: (event id, webhook id, uid, url, event, body).
pub type EventRow = (String, String, String, String, String, String);

/// What a message event says about `row`.
pub fn message_data(row: &MessageRow) -> Value {
    json!({
        "message_id": row.id,
        "to": row.recipient,
        "from": row.sender,
        "status": row.status,
        "error_code": row.error_code,
        "connector": row.connector,
        "client_reference": row.client_reference,
        "parts": row.parts,
        "done_at": row.done_at.map(rfc3339),
    })
}

/// `uid`'s live webhooks (cached: the receipt and MO paths read them per batch).
pub(crate) async fn hooks_of(v1: &V1, uid: &str) -> Result<Arc<Vec<Webhook>>, StoreError> {
    v1.inner.hooks.get(v1.db(), uid).await
}

/// The outbox rows of `event` with `data` for `hooks` (one user's) that listen to it,
/// and for `own_url` if given (signed with the user's oldest webhook's secret; a send
/// with a `webhook_url` needs one).
pub fn event_rows(
    hooks: &[Webhook],
    uid: &str,
    event: &str,
    data: Value,
    own_url: Option<&str>,
    now: i64,
) -> Vec<EventRow> {
    if hooks.is_empty() {
        return Vec::new();
    }
    let event_id = format!("evt_{}", uuid::Uuid::new_v4().simple());
    let body = json!({
        "id": event_id,
        "type": event,
        "created_at": rfc3339(now),
        "data": data,
    })
    .to_string();
    let mut out = Vec::new();
    let mut urls = HashSet::new();
    for hook in hooks.iter().filter(|h| h.events.iter().any(|e| e == event)) {
        urls.insert(hook.url.clone());
        out.push((
            format!("{event_id}.{}", hook.id),
            hook.id.clone(),
            uid.to_owned(),
            hook.url.clone(),
            event.to_owned(),
            body.clone(),
        ));
    }
    if let (Some(url), Some(first)) = (own_url, hooks.first())
        && !urls.contains(url)
    {
        out.push((
            format!("{event_id}.message"),
            first.id.clone(),
            uid.to_owned(),
            url.to_owned(),
            event.to_owned(),
            body,
        ));
    }
    out
}

/// Wakes the delivery worker: new events are in the outbox.
pub(crate) fn wake(v1: &V1) {
    v1.inner.hooks.wake.notify_one();
}

/// Whether `uid` has a webhook whose secret can sign a message's own `webhook_url`.
pub async fn can_sign(v1: &V1, uid: &str) -> Result<bool, StoreError> {
    Ok(!v1.inner.hooks.get(v1.db(), uid).await?.is_empty())
}

mod delivery;
pub use delivery::run;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_backoff() {
        let s = signature("whsec_test", 1_700_000_000, "{\"a\":1}");
        assert!(s.starts_with("t=1700000000,v1="));
        assert_eq!(s.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(s, signature("whsec_other", 1_700_000_000, "{\"a\":1}"));
        assert_ne!(s, signature("whsec_test", 1_700_000_001, "{\"a\":1}"));
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(3600);
        for _ in 0..100 {
            let first = backoff(base, max, 1);
            assert!(first >= Duration::from_secs(5) && first < Duration::from_secs(15));
            let tenth = backoff(base, max, 10);
            assert!(tenth >= Duration::from_secs(1800) && tenth < Duration::from_secs(5400));
        }
    }
}
