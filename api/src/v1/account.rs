//! `/api/v1/account/…`: the balance, and the management of API keys (`keys:write`).

use std::net::SocketAddr;

use axum::{
    body::Bytes,
    extract::{ConnectInfo, Path, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use proto::charging::ChargeError;
use serde::Deserialize;
use serde_json::json;

use super::{
    NewKey, V1, json,
    keys::{Scope, parse_cidrs},
    money, peer,
    problem::Problem,
    time::{now_us, parse as parse_time, rfc3339},
};

/// The account's balance and SMS count.
#[utoipa::path(get, path = "/api/v1/account/balance", operation_id = "getBalance", tag = "account",
    responses((status = 200, description = "Balance", body = super::openapi::BalanceView), (status = 401, description = "No valid API key", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing scope or address not allowed", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = ["account:read"])))]
pub async fn balance(
    State(v1): State<V1>,
    ConnectInfo(connect): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let p = v1
            .authenticate(&headers, peer(connect), Scope::AccountRead)
            .await?;
        let b = v1
            .gateway()
            .charging()
            .balance(&p.user.uid)
            .await
            .map_err(|e| match e {
                ChargeError::Busy(_) => {
                    let mut p = Problem::new(503, "temporarily_unavailable", "billing is busy");
                    p.retry_after = Some(1);
                    p
                }
                other => Problem::internal(other),
            })?;
        Ok::<_, Problem>(json(
            200,
            &json!({
                "user": p.user.uid.as_ref(),
                "balance": b.balance.map(money),
                "balance_micros": b.balance,
                "currency": v1.config().currency,
                "sms_count": b.sms_count,
                "unlimited": b.balance.is_none(),
            }),
        ))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// The body of `POST /api/v1/account/keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: Option<String>,
    scopes: Vec<Scope>,
    #[serde(default)]
    allowed_cidrs: Vec<String>,
    /// RFC 3339.
    expires_at: Option<String>,
    /// Requests per second; at most the creating key's own.
    rate_limit: Option<u32>,
}

/// Make an API key (with at most the scopes of the calling key); its secret is shown once.
#[utoipa::path(post, path = "/api/v1/account/keys", operation_id = "createKey", tag = "account", request_body = CreateKey,
    responses((status = 201, description = "The key, with its secret", body = super::openapi::KeyView), (status = 401, description = "No valid API key", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing scope or address not allowed", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = ["keys:write"])))]
pub async fn create_key(
    State(v1): State<V1>,
    ConnectInfo(connect): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let p = v1
            .authenticate(&headers, peer(connect), Scope::KeysWrite)
            .await?;
        let req: CreateKey = serde_json::from_slice(&body).map_err(|e| {
            Problem::bad_request("malformed_json", format!("invalid request body: {e}"))
        })?;
        if req.scopes.is_empty() {
            return Err(Problem::invalid("`scopes` must name at least one scope"));
        }
        // A key cannot make a key stronger than itself.
        if let Some(extra) = req.scopes.iter().find(|s| !p.key.allows(**s)) {
            return Err(Problem::new(
                403,
                "insufficient_scope",
                format!("a key cannot grant {extra}, which it does not have"),
            ));
        }
        let cidrs = parse_cidrs(&req.allowed_cidrs).map_err(|e| Problem::invalid(e.to_string()))?;
        let expires_at = req
            .expires_at
            .as_deref()
            .map(|t| {
                parse_time(t)
                    .ok_or_else(|| Problem::invalid("`expires_at` must be an RFC 3339 time"))
            })
            .transpose()?;
        if expires_at.is_some_and(|e| e <= now_us()) {
            return Err(Problem::invalid("`expires_at` is in the past"));
        }
        let name = req.name.unwrap_or_default();
        if name.len() > 100 {
            return Err(Problem::invalid("`name` takes at most 100 bytes"));
        }
        let (key, secret) = v1
            .create_key(NewKey {
                uid: p.user.uid.to_string(),
                name,
                scopes: req.scopes,
                cidrs,
                rate: req.rate_limit.unwrap_or(0),
                expires_at,
            })
            .await?;
        let mut body = key.to_json();
        body["secret"] = json!(secret);
        Ok(json(201, &body))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// The account's live keys (never their secrets).
#[utoipa::path(get, path = "/api/v1/account/keys", operation_id = "listKeys", tag = "account",
    responses((status = 200, description = "Keys: {{data: [...]}}", body = Vec<super::openapi::KeyView>), (status = 401, description = "No valid API key", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing scope or address not allowed", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = ["keys:write"])))]
pub async fn list_keys(
    State(v1): State<V1>,
    ConnectInfo(connect): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let p = v1
            .authenticate(&headers, peer(connect), Scope::KeysWrite)
            .await?;
        let keys = v1
            .db()
            .list_keys(&p.user.uid)
            .await
            .map_err(Problem::internal)?;
        let now = now_us();
        let data: Vec<_> = keys
            .iter()
            .map(|k| {
                let mut j = k.to_json();
                j["expired"] = json!(!k.usable_at(now));
                j
            })
            .collect();
        Ok::<_, Problem>(json(200, &json!({ "data": data })))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// Revoke a key; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/account/keys/{id}", operation_id = "revokeKey", tag = "account",
    params(("id" = String, Path, description = "Key id (key_…)")),
    responses((status = 200, description = "Revoked"), (status = 404, description = "No such live key", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 401, description = "No valid API key", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing scope or address not allowed", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = ["keys:write"])))]
pub async fn revoke_key(
    State(v1): State<V1>,
    ConnectInfo(connect): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let p = v1
            .authenticate(&headers, peer(connect), Scope::KeysWrite)
            .await?;
        let now = now_us();
        let revoked = v1
            .db()
            .revoke_key(Some(&p.user.uid), &id, now)
            .await
            .map_err(Problem::internal)?;
        if !revoked {
            return Err(Problem::not_found("API key"));
        }
        v1.forget_key(&id);
        Ok(json(200, &json!({ "id": id, "revoked_at": rfc3339(now) })))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}
