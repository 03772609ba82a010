//! `POST /api/v1/sms/send`, `GET /api/v1/sms/{id}`, `GET /api/v1/sms`, and the
//! background tasks that record messages and follow receipts and MO into them.
//!
//! A send goes through `Gateway::submit`, one message per recipient, exactly like
//! Jasmin's `/send`: the key's user's credentials, filters, throughput, routes and
//! balance apply. The answer quotes parts and cost from the route the message takes
//! (the route's rate × parts, as `/rate` does; a user without a balance quota pays 0).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::{ConnectInfo, Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
};
use futures_util::{StreamExt, stream};
use router::{Message, Refusal, credentials::Requested, receipts::ReceiptEvent, user::User};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use smpp_core::rusmpp::values::MessageState;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{
    V1, json, json_text,
    keys::{Scope, hex},
    money, peer,
    problem::Problem,
    query_params,
    store::{IdemOp, MessageFilter, MessageRow},
    time::{now_us, parse as parse_time, rfc3339},
};

/// Recipients submitted at once within one request.
const CONCURRENCY: usize = 32;
/// How long a retry waits for the first request with its Idempotency-Key to finish.
const IDEMPOTENCY_WAIT: Duration = Duration::from_secs(10);
/// Longest `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The price of one part on the route `message` takes (0 for a user without a balance).
fn unit_rate(v1: &V1, user: &User, message: &Message) -> i64 {
    if user.balance.is_none() {
        return 0;
    }
    let mut m = message.clone();
    m.uid = user.uid.clone();
    m.gid = user.gid.clone();
    if m.source.addr.is_empty()
        && let Some(default) = &user.default_src_addr
    {
        m.source.addr = default.clone();
    }
    v1.gateway()
        .snapshot()
        .mt
        .select(&m)
        .map_or(0, |route| route.rate)
}

/// Sends to every recipient; the answer's status and body.
///
/// Each message's record is staged, under an id chosen here, before the message is
/// submitted: its receipt can come back before the send is answered, and then finds
/// the record (see `records`). Records of refused messages are dropped again.
///
/// Without `idempotency`, each record rides in the journal as its message's annex,
/// so the 202 waits for nothing more than the messages do. With it (the user's uid and
/// the key it holds), the records and the 202 answer are written in one transaction
/// before the answer; the last value tells whether that was done.
async fn run_send(
    v1: &V1,
    user: &Arc<User>,
    c: &Checked,
    idempotency: Option<(&str, &str)>,
) -> (u16, String, bool) {
    let now = now_us();
    let currency = v1.config().currency.clone();
    let annexed = idempotency.is_none();
    // Each recipient's message is made once: its record, its quote and its submit.
    let (rows, messages): (Vec<MessageRow>, Vec<(Message, Requested)>) = c
        .recipients
        .iter()
        .map(|to| {
            let (mut message, requested) = message(c, to);
            message.id = router::new_message_id();
            let row = MessageRow {
                id: message.id.to_string(),
                uid: user.uid.to_string(),
                client_reference: c.client_reference.clone(),
                sender: c.from.clone().unwrap_or_default(),
                recipient: to.clone(),
                encoding: c.encoding.to_owned(),
                parts: c.parts as i64,
                cost: unit_rate(v1, user, &message).saturating_mul(c.parts as i64),
                currency: currency.clone(),
                webhook_url: c.webhook_url.clone(),
                status: "queued".to_owned(),
                error_code: None,
                connector: None,
                created_at: now,
                scheduled_at: c.schedule.as_ref().map(|(at, _)| *at),
                sent_at: None,
                done_at: None,
            };
            if annexed {
                message.annex = annex(&row);
            }
            (row, (message, requested))
        })
        .unzip();
    let annexed = annexed && messages.iter().all(|(m, _)| m.annex.is_some());
    stage(v1, &rows, annexed);
    let results: Vec<Result<(), Refusal>> = stream::iter(messages)
        .map(|(message, requested)| async move {
            v1.gateway()
                .submit(user, message, requested)
                .await
                .map(|_| ())
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    let mut out = Vec::with_capacity(results.len());
    let mut total = 0i64;
    let mut first_refusal = None;
    for (row, result) in rows.iter().zip(results) {
        match result {
            Ok(()) => {
                total = total.saturating_add(row.cost);
                out.push(json!({
                    "id": row.id,
                    "to": row.recipient,
                    "status": "queued",
                    "parts": c.parts,
                    "cost": money(row.cost),
                    "currency": currency,
                }));
                accepted.push(row.id.clone());
            }
            Err(refusal) => {
                let p = super::problem::Problem::from(refusal);
                out.push(json!({
                    "to": row.recipient,
                    "status": "rejected",
                    "error": {"code": p.code, "detail": p.detail},
                }));
                first_refusal.get_or_insert(p);
                refused.push(row.id.clone());
            }
        }
    }
    unstage(v1, &refused);
    if accepted.is_empty() {
        let p = first_refusal.unwrap_or_else(|| Problem::internal("nothing sent"));
        return (p.status, p.to_json().to_string(), false);
    }
    let body = json!({
        "messages": out,
        "encoding": c.encoding,
        "parts": c.parts,
        "total_cost": money(total),
        "currency": currency,
        "client_reference": c.client_reference,
    })
    .to_string();
    if annexed {
        // Durable already, in the journal; the database write follows behind.
        if let Err(accepted) = hand_over(v1, accepted) {
            record(v1, accepted, None).await;
        }
        return (202, body, false);
    }
    let answer = idempotency.map(|(uid, key)| IdemOp::Complete {
        uid: uid.to_owned(),
        key: key.to_owned(),
        status: 202,
        body: body.clone(),
    });
    let answering = answer.is_some();
    // Durable before the 202: a crash after the answer keeps the record.
    let written = record(v1, accepted, answer).await;
    (202, body, answering && written)
}

fn answer(status: u16, body: String, replayed: bool) -> Response {
    let mut response = json_text(status, body);
    if status >= 400 {
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
    }
    if status == 429 || status == 503 {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(1u32));
    }
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Send one text to one or more recipients (at most 1,000), each as its own message.
#[utoipa::path(post, path = "/api/v1/sms/send", operation_id = "sendSms", tag = "sms", request_body = SendRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key within 24 h get the first answer and send nothing")),
    responses((status = 202, description = "Accepted (per recipient: queued or rejected)", body = super::openapi::SendAnswer), (status = 402, description = "Insufficient funds", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 409, description = "Same Idempotency-Key still running", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 422, description = "Invalid request, no route, key reused with another body", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 401, description = "No valid API key", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing scope or address not allowed", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = ["sms:send"])))]
pub async fn send(
    State(v1): State<V1>,
    ConnectInfo(connect): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match send_inner(v1, connect, headers, body).await {
        Ok(r) => r,
        Err(p) => p.into_response(),
    }
}

async fn send_inner(
    v1: V1,
    connect: SocketAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let principal = v1
        .authenticate(&headers, peer(connect), Scope::SmsSend)
        .await?;
    if let Some(ct) = headers.get(CONTENT_TYPE)
        && !ct.to_str().is_ok_and(|t| t.starts_with("application/json"))
    {
        return Err(Problem::new(
            415,
            "unsupported_media_type",
            "send JSON (Content-Type: application/json)",
        ));
    }
    let idem_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY => Some(k.to_owned()),
            _ => {
                return Err(Problem::bad_request(
                    "invalid_idempotency_key",
                    format!(
                        "Idempotency-Key takes 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                    ),
                ));
            }
        },
    };
    let checked = check(&body)?;
    let user = principal.user.clone();
    if checked.webhook_url.is_some()
        && !super::webhooks::can_sign(&v1, &user.uid)
            .await
            .map_err(Problem::internal)?
    {
        return Err(Problem::new(
            422,
            "webhook_required",
            "a per-message webhook_url is signed with the secret of one of the account's \
             webhooks: register one first (POST /api/v1/account/webhooks)",
        ));
    }
    let Some(key) = idem_key else {
        let (status, body, _) = run_send(&v1, &user, &checked, None).await;
        return Ok(answer(status, body, false));
    };
    let uid = user.uid.to_string();
    let request_hash = hex(&Sha256::digest(&body));
    let checked = Arc::new(checked);
    let ttl = i64::try_from(v1.config().idempotency_ttl.as_micros()).unwrap_or(i64::MAX);
    loop {
        let now = now_us();
        let claimed = idempotency::write(
            &v1,
            IdemOp::Claim {
                uid: uid.clone(),
                key: key.clone(),
                request_hash: request_hash.clone(),
                now,
                expired_before: now.saturating_sub(ttl),
            },
        )
        .await?;
        if claimed {
            // Finished even if the client goes away, so the claim never stays open.
            let (v1, user, checked) = (v1.clone(), user.clone(), checked.clone());
            let (uid, key) = (uid.clone(), key.clone());
            let task = tokio::spawn(async move {
                let (status, body, stored) =
                    run_send(&v1, &user, &checked, Some((&uid, &key))).await;
                if stored {
                    return (status, body);
                }
                let op = if status == 429 || status >= 500 {
                    // Nothing was sent: a retry with the same key may try again.
                    IdemOp::Release { uid, key }
                } else {
                    IdemOp::Complete {
                        uid,
                        key,
                        status,
                        body: body.clone(),
                    }
                };
                if let Err(problem) = idempotency::write(&v1, op).await {
                    warn!(detail = %problem.detail, "idempotency answer not stored");
                }
                (status, body)
            });
            let (status, body) = task.await.map_err(Problem::internal)?;
            return Ok(answer(status, body, false));
        }
        let deadline = tokio::time::Instant::now() + IDEMPOTENCY_WAIT;
        loop {
            let record = v1
                .db()
                .idem_get(&uid, &key)
                .await
                .map_err(Problem::internal)?;
            match record {
                Some(r) if r.request_hash != request_hash => {
                    return Err(Problem::new(
                        422,
                        "idempotency_key_reused",
                        "this Idempotency-Key was used with a different request body",
                    ));
                }
                Some(r) if r.status != 0 => {
                    let status = u16::try_from(r.status).unwrap_or(500);
                    return Ok(answer(status, r.body, true));
                }
                // The first request sent nothing and let the key go: claim it again.
                None => break,
                Some(_) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                let mut p = Problem::new(
                    409,
                    "idempotency_in_progress",
                    "a request with this Idempotency-Key is still running; retry later",
                );
                p.retry_after = Some(1);
                return Err(p);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Message state names of the API.
fn state_name(state: MessageState) -> &'static str {
    match state {
        MessageState::Enroute | MessageState::Accepted | MessageState::Scheduled => "sent",
        MessageState::Delivered => "delivered",
        MessageState::Expired => "expired",
        MessageState::Rejected => "rejected",
        _ => "failed",
    }
}

/// A receipt's `stat:` as the API's state, and whether it is final.
pub fn stat_state(stat: &str) -> (&'static str, bool) {
    match stat {
        "DELIVRD" => ("delivered", true),
        "EXPIRED" => ("expired", true),
        "REJECTD" => ("rejected", true),
        "UNDELIV" | "DELETED" | "UNKNOWN" => ("failed", true),
        _ => ("sent", false),
    }
}

fn is_final_state(status: &str) -> bool {
    matches!(status, "delivered" | "expired" | "rejected" | "failed")
}

/// The row's state, completed from the gateway's view while no final state is stored.
fn current(v1: &V1, mut row: MessageRow) -> MessageRow {
    if is_final_state(&row.status) {
        return row;
    }
    let gateway = v1.gateway();
    if gateway.is_in_flight(&row.id, &row.uid) {
        row.status = "queued".to_owned();
    } else if let Some(status) = gateway.query(&row.id, &row.uid) {
        let name = state_name(status.state);
        if name != "sent" {
            row.error_code = Some(format!("{:03}", status.error_code));
        }
        row.status = name.to_owned();
    }
    row
}

fn message_json(row: &MessageRow) -> Value {
    json!({
        "id": row.id,
        "to": row.recipient,
        "from": row.sender,
        "status": row.status,
        "encoding": row.encoding,
        "parts": row.parts,
        "cost": money(row.cost),
        "currency": row.currency,
        "client_reference": row.client_reference,
        "connector": row.connector,
        "error_code": row.error_code,
        "created_at": rfc3339(row.created_at),
        "scheduled_at": row.scheduled_at.map(rfc3339),
        "sent_at": row.sent_at.map(rfc3339),
        "done_at": row.done_at.map(rfc3339),
    })
}

/// A message's state, parts, cost, connector and error code.
#[utoipa::path(get, path = "/api/v1/sms/{id}", operation_id = "getMessage", tag = "sms",
    params(("id" = String, Path, description = "Message id from the send's answer")),
    responses((status = 200, description = "The message", body = super::openapi::MessageView), (status = 404, description = "No such message of this account", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 401, description = "No valid API key", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing scope or address not allowed", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = ["sms:read"])))]
pub async fn get_one(
    State(v1): State<V1>,
    ConnectInfo(connect): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let p = v1
            .authenticate(&headers, peer(connect), Scope::SmsRead)
            .await?;
        let row = match unwritten(&v1, &p.user.uid, &id) {
            Some(row) => row,
            None => v1
                .db()
                .message(&p.user.uid, &id)
                .await
                .map_err(Problem::internal)?
                .ok_or_else(|| Problem::not_found("message"))?,
        };
        Ok::<_, Problem>(json(200, &message_json(&current(&v1, row))))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// Page size of lists when `limit` is not given, and its largest value.
pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 1000;

pub(crate) fn page_limit(
    params: &std::collections::HashMap<String, String>,
) -> Result<i64, Problem> {
    match params.get("limit") {
        None => Ok(DEFAULT_PAGE),
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| Problem::invalid(format!("`limit` takes 1 to {MAX_PAGE}"))),
    }
}

pub(crate) fn time_param(
    params: &std::collections::HashMap<String, String>,
    name: &str,
) -> Result<Option<i64>, Problem> {
    params
        .get(name)
        .map(|t| {
            parse_time(t).ok_or_else(|| {
                Problem::invalid(format!("`{name}` must be an RFC 3339 time or a date"))
            })
        })
        .transpose()
}

/// The opaque cursor of a list: where the next page starts.
fn cursor_of(row: &MessageRow) -> String {
    format!("{}.{}", row.created_at, row.id)
}

fn parse_cursor(text: &str) -> Option<(i64, String)> {
    let (at, id) = text.split_once('.')?;
    Some((at.parse().ok()?, id.to_owned()))
}

/// The account's messages, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/sms", operation_id = "listMessages", tag = "sms",
    params(
        ("client_reference" = Option<String>, Query, description = "Only messages sent with this reference"),
        ("from" = Option<String>, Query, description = "Sent at or after (RFC 3339 or date)"),
        ("to" = Option<String>, Query, description = "Sent before (RFC 3339 or date)"),
        ("status" = Option<String>, Query, description = "queued, sent, delivered, failed, expired, rejected (as last recorded)"),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, description = "A page", body = super::openapi::MessagePage), (status = 401, description = "No valid API key", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing scope or address not allowed", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = ["sms:read"])))]
pub async fn list(
    State(v1): State<V1>,
    ConnectInfo(connect): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let p = v1
            .authenticate(&headers, peer(connect), Scope::SmsRead)
            .await?;
        let params = query_params(query.as_deref());
        let status = params.get("status").cloned();
        if let Some(s) = &status
            && !matches!(
                s.as_str(),
                "queued" | "sent" | "delivered" | "failed" | "expired" | "rejected"
            )
        {
            return Err(Problem::invalid(format!("unknown status {s:?}")));
        }
        let limit = page_limit(&params)?;
        let before = params
            .get("cursor")
            .map(|c| parse_cursor(c).ok_or_else(|| Problem::invalid("invalid `cursor`")))
            .transpose()?;
        let filter = MessageFilter {
            client_reference: params.get("client_reference").cloned(),
            from: time_param(&params, "from")?,
            to: time_param(&params, "to")?,
            status,
            before,
            limit: limit + 1,
        };
        let mut rows = v1
            .db()
            .list_messages(&p.user.uid, &filter)
            .await
            .map_err(Problem::internal)?;
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let next = if more {
            rows.last().map(cursor_of)
        } else {
            None
        };
        // The recorded state: completing each row from the gateway's in-flight table
        // would scan it once per row.
        let data: Vec<Value> = rows.iter().map(message_json).collect();
        Ok(json(200, &json!({ "data": data, "next_cursor": next })))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

mod apply;
mod follow;
mod idempotency;
mod records;
mod request;
pub use follow::{follow_mo, follow_receipts};
pub(crate) use idempotency::IdemQueue;
pub use idempotency::write_idempotency;
pub use records::*;
use request::{Checked, check, message};
pub use request::{Encoding, MAX_RECIPIENTS, Recipients, SendRequest};
