//! The enterprise REST API v1 (`/api/v1/…`), beside Jasmin's on the same listener and
//! over the same pipeline: API keys with scopes ([`keys`], [`auth`]), sending
//! ([`sms`]), message state, the account, and problem documents for every error
//! ([`problem`]). It holds no business rule of its own: credentials, filters, quotas,
//! routing and money are the router's and billing's, applied to the key's user.
//!
//! Where message state comes from: the API records each message it accepted in
//! `api_messages` (recipient, sender, parts, quoted cost, client reference, webhook);
//! every receipt the gateway hands it ([`router::Gateway::observe`]) moves it to its
//! final state, stored before the operator is answered; while no receipt is in, the
//! gateway's own view (in flight or
//! accepted by the operator, `Gateway::is_in_flight` / `Gateway::query`) tells
//! `queued` from `sent`.

pub mod account;
pub mod auth;
pub mod cdr;
pub mod keys;
pub mod openapi;
pub mod problem;
pub mod sms;
pub mod store;
pub mod time;
pub mod webhooks;
pub mod ws;

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderValue, StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
    routing::{MethodRouter, delete, get, post},
};
use parking_lot::Mutex;
use router::Gateway;
use smpp_core::{
    server::{AccessGuard, GuardConfig},
    throttle::TokenBucket,
};
use tokio_util::sync::CancellationToken;

pub use keys::{ApiKey, NewKey, Scope};
pub use problem::Problem;
pub use store::{Db, StoreError};

/// Receipts and MO queued for the API at most: beyond, the operator's deliver_sm wait.
const OBSERVER_QUEUE: usize = 4096;

/// Largest request body: 1,000 recipients and a long text fit many times over.
pub const MAX_BODY: usize = 256 * 1024;

/// Settings of the v1 API.
#[derive(Debug, Clone)]
pub struct V1Config {
    /// Requests per second of a key that has no rate of its own (also its burst).
    pub default_rate: u32,
    /// The currency costs are shown in (billing's).
    pub currency: String,
    /// How long an `Idempotency-Key` answer is kept.
    pub idempotency_ttl: Duration,
    /// Webhooks: the first retry's delay (doubled each time, with jitter), the longest
    /// delay, how long an event is retried, one attempt's deadline, and how often the
    /// outbox is read besides when new events arrive.
    pub webhook_retry_base: Duration,
    pub webhook_retry_max: Duration,
    pub webhook_retry_window: Duration,
    pub webhook_timeout: Duration,
    pub webhook_poll: Duration,
    /// Where the receipts WebSocket keeps its events so that resume tokens outlive a
    /// restart; `None` keeps them in memory only.
    pub events_dir: Option<std::path::PathBuf>,
}

impl Default for V1Config {
    fn default() -> Self {
        Self {
            default_rate: 100,
            currency: "EUR".to_owned(),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            webhook_retry_base: Duration::from_secs(10),
            webhook_retry_max: Duration::from_secs(3600),
            webhook_retry_window: Duration::from_secs(72 * 3600),
            webhook_timeout: Duration::from_secs(10),
            webhook_poll: Duration::from_millis(500),
            events_dir: None,
        }
    }
}

/// The state of the v1 routes.
#[derive(Clone)]
pub struct V1 {
    inner: Arc<Inner>,
}

struct Inner {
    gateway: Arc<Gateway>,
    db: Arc<Db>,
    config: V1Config,
    guard: Arc<AccessGuard>,
    key_cache: Mutex<HashMap<String, (Arc<ApiKey>, Instant)>>,
    buckets: Mutex<HashMap<String, TokenBucket>>,
    hooks: webhooks::HookCache,
    hub: ws::Hub,
    /// Cancelled with the token given to [`V1::spawn_tasks`]: WebSockets close.
    stop: CancellationToken,
    /// Receipts of records being written ([`sms::follow_receipts`]).
    early: sms::Early,
    /// Records of accepted messages on their way to the database.
    unwritten: Mutex<sms::Unwritten>,
    written: tokio::sync::Notify,
    /// Idempotency claims and answers on their way to the database.
    idem: sms::IdemQueue,
}

impl V1 {
    pub fn new(gateway: Arc<Gateway>, db: Arc<Db>, config: V1Config) -> Self {
        let hub = match &config.events_dir {
            Some(dir) => ws::Hub::persistent(dir),
            None => ws::Hub::default(),
        };
        Self {
            inner: Arc::new(Inner {
                gateway,
                db,
                config,
                guard: AccessGuard::new(GuardConfig::default()),
                key_cache: Mutex::new(HashMap::new()),
                buckets: Mutex::new(HashMap::new()),
                hooks: webhooks::HookCache::default(),
                hub,
                stop: CancellationToken::new(),
                early: sms::Early::default(),
                unwritten: Mutex::new(sms::Unwritten::default()),
                written: tokio::sync::Notify::new(),
                idem: sms::IdemQueue::default(),
            }),
        }
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.inner.gateway
    }

    pub fn db(&self) -> &Arc<Db> {
        &self.inner.db
    }

    pub fn config(&self) -> &V1Config {
        &self.inner.config
    }

    /// Makes a key for `new.uid` (checked to be a router user); returns it and the
    /// secret, which is never shown again.
    pub async fn create_key(&self, new: NewKey) -> Result<(ApiKey, String), Problem> {
        if !self
            .gateway()
            .snapshot()
            .directory
            .by_uid
            .contains_key(new.uid.as_str())
        {
            return Err(Problem::invalid(format!("no router user {:?}", new.uid)));
        }
        create_key(self.db(), new).await.map_err(Problem::internal)
    }

    /// Background work: message states from receipts, the purge of idempotency
    /// answers older than their time, and reading back earlier WebSocket events. Ends when `shutdown` is cancelled.
    pub fn spawn_tasks(&self, shutdown: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        // Every receipt and MO, held back at the operator until stored here.
        let observed = self.gateway().observe(OBSERVER_QUEUE);
        // Records a crash left in the journal only, back before their messages go out.
        let v1 = Arc::downgrade(&self.inner);
        self.gateway().take_annexes(move |annexes| {
            if let Some(inner) = v1.upgrade() {
                sms::restage(&V1 { inner }, annexes);
            }
        });
        vec![
            tokio::spawn(sms::follow_receipts(
                self.clone(),
                observed.receipts,
                shutdown.clone(),
            )),
            tokio::spawn(sms::follow_mo(self.clone(), observed.mo, shutdown.clone())),
            tokio::spawn(sms::write_records(self.clone(), shutdown.clone())),
            tokio::spawn(sms::write_idempotency(self.clone(), shutdown.clone())),
            tokio::spawn(sms::purge_idempotency(self.clone(), shutdown.clone())),
            tokio::spawn(webhooks::run(self.clone(), shutdown.clone())),
            // The WebSocket events of earlier processes, read back off the async threads.
            tokio::task::spawn_blocking({
                let v1 = self.clone();
                move || v1.inner.hub.restore()
            }),
            tokio::spawn({
                let stop = self.inner.stop.clone();
                async move {
                    shutdown.cancelled().await;
                    stop.cancel();
                }
            }),
        ]
    }
}

/// Makes a key in `db` (the CLI uses this without a running gateway).
pub async fn create_key(db: &Db, new: NewKey) -> Result<(ApiKey, String), StoreError> {
    let secret = keys::new_secret();
    let key = ApiKey {
        id: format!("key_{}", uuid::Uuid::new_v4().simple()),
        uid: new.uid,
        name: new.name,
        prefix: secret.chars().take(keys::SECRET_PREFIX.len() + 6).collect(),
        scopes: new.scopes,
        cidrs: new.cidrs,
        rate: new.rate,
        created_at: time::now_us(),
        expires_at: new.expires_at,
        revoked_at: None,
    };
    db.insert_key(&key, &keys::hash_secret(&secret)).await?;
    Ok((key, secret))
}

/// Every v1 endpoint: method, path, handler. [`routes`] serves exactly these, and the
/// tests check that each is in the OpenAPI description.
pub fn endpoints() -> Vec<(&'static str, &'static str, MethodRouter<V1>)> {
    vec![
        ("POST", "/api/v1/sms/send", post(sms::send)),
        ("GET", "/api/v1/sms", get(sms::list)),
        ("GET", "/api/v1/sms/{id}", get(sms::get_one)),
        ("GET", "/api/v1/account/balance", get(account::balance)),
        ("GET", "/api/v1/account/usage", get(cdr::usage)),
        ("GET", "/api/v1/account/cdr", get(cdr::export)),
        ("POST", "/api/v1/account/keys", post(account::create_key)),
        ("GET", "/api/v1/account/keys", get(account::list_keys)),
        (
            "DELETE",
            "/api/v1/account/keys/{id}",
            delete(account::revoke_key),
        ),
        ("POST", "/api/v1/account/webhooks", post(webhooks::create)),
        ("GET", "/api/v1/account/webhooks", get(webhooks::list)),
        (
            "DELETE",
            "/api/v1/account/webhooks/{id}",
            delete(webhooks::delete),
        ),
        (
            "GET",
            "/api/v1/account/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        ),
        ("GET", "/api/v1/notifications/dlr", get(ws::dlr)),
        ("GET", "/api/v1/openapi.json", get(openapi::openapi_json)),
        ("GET", "/api/v1/docs", get(openapi::docs)),
    ]
}

/// The v1 routes, for merging with the rest of the listener's.
pub fn routes(v1: V1) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in endpoints() {
        router = router.route(path, handler);
    }
    router
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(v1)
}

async fn not_found(request: Request) -> Response {
    if request.uri().path().starts_with("/api/v1") {
        Problem::new(404, "not_found", "no such endpoint").into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// The caller's address (the listener provides it).
pub(crate) fn peer(connect: SocketAddr) -> IpAddr {
    connect.ip()
}

pub(crate) fn json(status: u16, value: &serde_json::Value) -> Response {
    json_text(status, value.to_string())
}

pub(crate) fn json_text(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Money for JSON: a decimal string of micro-units (`"0.020000"`), never a float.
pub fn money(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
}

/// The query string's parameters (percent-decoded); a parameter given twice keeps the
/// last value.
pub(crate) fn query_params(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn money_is_decimal_text() {
        assert_eq!(super::money(20_000), "0.020000");
        assert_eq!(super::money(12_345_678), "12.345678");
        assert_eq!(super::money(-5), "-0.000005");
    }
}
