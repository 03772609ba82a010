//! Bearer authentication with API keys, the per-key token bucket, and scope checks.
//!
//! A missing, malformed, unknown, revoked or expired key, a key whose user is gone or
//! disabled, and an address locked out after repeated failures all get the same 401.
//! Failures are counted per address by the same guard as SMPP binds and Jasmin HTTP.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::http::{HeaderMap, header::AUTHORIZATION};
use router::user::User;

use super::{
    V1,
    keys::{ApiKey, SECRET_PREFIX, Scope, hash_secret},
    problem::Problem,
    time::now_us,
};

/// How long a key read from the store is trusted without reading it again: a key
/// revoked by another process (the CLI) stops working within this time; one revoked
/// through the API stops at once.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// The name failures are counted under in the access guard (per address).
const GUARD_NAME: &str = "api-key";

/// The authenticated caller of one request.
#[derive(Clone)]
pub struct Principal {
    pub key: Arc<ApiKey>,
    pub user: Arc<User>,
}

impl Principal {
    pub fn require(&self, scope: Scope) -> Result<(), Problem> {
        if self.key.allows(scope) {
            Ok(())
        } else {
            Err(Problem::forbidden_scope(scope.as_str()))
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (token.starts_with(SECRET_PREFIX) && token.len() <= 128).then_some(token)
}

impl V1 {
    /// The caller, with `scope` required, within its key's rate.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        ip: IpAddr,
        scope: Scope,
    ) -> Result<Principal, Problem> {
        let principal = self.principal(headers, ip).await?;
        if !principal.key.admits(ip) {
            return Err(Problem::new(
                403,
                "ip_not_allowed",
                format!("this API key is not allowed from {ip}"),
            ));
        }
        self.take_token(&principal.key)?;
        principal.require(scope)?;
        Ok(principal)
    }

    async fn principal(&self, headers: &HeaderMap, ip: IpAddr) -> Result<Principal, Problem> {
        let guard = &self.inner.guard;
        if guard.is_locked(ip, GUARD_NAME) {
            return Err(Problem::unauthenticated());
        }
        let found = match bearer(headers) {
            Some(token) => self.key(&hash_secret(token)).await?,
            None => None,
        };
        let user = found.as_ref().and_then(|key| {
            let user = self
                .inner
                .gateway
                .snapshot()
                .directory
                .by_uid
                .get(key.uid.as_str())
                .cloned()?;
            user.enabled.then_some(user)
        });
        match (found, user) {
            (Some(key), Some(user)) if key.usable_at(now_us()) => {
                guard.cleared(ip, GUARD_NAME);
                Ok(Principal { key, user })
            }
            _ => {
                tokio::time::sleep(guard.failed(ip, GUARD_NAME)).await;
                Err(Problem::unauthenticated())
            }
        }
    }

    /// The key stored under `hash`, from the cache when read recently.
    async fn key(&self, hash: &str) -> Result<Option<Arc<ApiKey>>, Problem> {
        let now = Instant::now();
        if let Some((key, at)) = self.inner.key_cache.lock().get(hash)
            && now.duration_since(*at) < KEY_CACHE_TTL
        {
            return Ok(Some(key.clone()));
        }
        let key = self
            .inner
            .db
            .key_by_hash(hash)
            .await
            .map_err(Problem::internal)?
            .map(Arc::new);
        let mut cache = self.inner.key_cache.lock();
        match &key {
            Some(k) => {
                if cache.len() > 100_000 {
                    cache.clear();
                }
                cache.insert(hash.to_owned(), (k.clone(), now));
            }
            None => {
                cache.remove(hash);
            }
        }
        Ok(key)
    }

    /// Forgets a revoked key at once.
    pub(super) fn forget_key(&self, id: &str) {
        self.inner.key_cache.lock().retain(|_, (k, _)| k.id != id);
        self.inner.buckets.lock().remove(id);
    }

    fn take_token(&self, key: &ApiKey) -> Result<(), Problem> {
        let rate = if key.rate == 0 {
            self.inner.config.default_rate
        } else {
            key.rate
        };
        let now = Instant::now();
        let mut buckets = self.inner.buckets.lock();
        let bucket = buckets
            .entry(key.id.clone())
            .or_insert_with(|| smpp_core::throttle::TokenBucket::new(f64::from(rate.max(1))));
        if bucket.try_take(now) {
            Ok(())
        } else {
            let wait = bucket.wait_time(now);
            Err(Problem::rate_limited(wait.as_secs_f64().ceil() as u64))
        }
    }
}
