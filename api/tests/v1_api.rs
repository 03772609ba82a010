//! The REST API v1 over real sockets: a gateway with the SMSC simulator, hyper clients,
//! keys made in the store as an admin would (`smsgw apikey create`).

mod common;

use std::time::Duration;

use api::v1::{NewKey, Scope};
use common::{Reply, Setup};
use serde_json::{Value, json};

/// Makes a key for `uid` directly in the store; returns its secret.
async fn key_for(s: &Setup, uid: &str, scopes: &[Scope], cidrs: &[&str], rate: u32) -> String {
    let v1 = s.v1.as_ref().expect("v1 started");
    let (_, secret) = api::v1::create_key(
        v1.db(),
        NewKey {
            uid: uid.to_owned(),
            name: "test".to_owned(),
            scopes: scopes.to_vec(),
            cidrs: cidrs.iter().map(|c| c.parse().expect("cidr")).collect(),
            rate,
            expires_at: None,
        },
    )
    .await
    .expect("key");
    secret
}

async fn call(s: &Setup, method: &str, path: &str, key: &str, body: &str) -> Reply {
    let auth = format!("Bearer {key}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    s.request(method, path, &headers, body.to_owned()).await
}

fn assert_problem(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.content_type, "application/problem+json", "{reply:?}");
    let body = reply.json();
    assert_eq!(body["code"], code, "{reply:?}");
    assert_eq!(body["status"], status);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn keys_are_managed_and_checked() {
    let s = Setup::start_v1().await;
    let admin = key_for(&s, "u1", &Scope::ALL, &[], 0).await;

    // A send-only key, made through the API; its secret is shown once.
    let reply = call(
        &s,
        "POST",
        "/api/v1/account/keys",
        &admin,
        r#"{"name":"sender","scopes":["sms:send"]}"#,
    )
    .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let created = reply.json();
    let sender = created["secret"].as_str().expect("secret").to_owned();
    let sender_id = created["id"].as_str().expect("id").to_owned();
    assert!(sender.starts_with("sk_live_"));
    assert_eq!(created["scopes"], json!(["sms:send"]));

    let reply = call(&s, "GET", "/api/v1/account/keys", &admin, "").await;
    assert_eq!(reply.status, 200);
    let listed = reply.json();
    let data = listed["data"].as_array().expect("list");
    assert_eq!(data.len(), 2);
    assert!(!reply.body.contains(&sender), "a secret is never listed");

    // Scopes: the sender key sends but cannot read or manage keys.
    let send = r#"{"to":"255700000001","text":"hi"}"#;
    let reply = call(&s, "POST", "/api/v1/sms/send", &sender, send).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let reply = call(&s, "GET", "/api/v1/account/balance", &sender, "").await;
    assert_problem(&reply, 403, "insufficient_scope");
    let reply = call(&s, "GET", "/api/v1/account/keys", &sender, "").await;
    assert_problem(&reply, 403, "insufficient_scope");
    // A key cannot grant what it lacks.
    let reply = call(
        &s,
        "POST",
        "/api/v1/account/keys",
        &admin,
        r#"{"scopes":["sms:send"],"allowed_cidrs":["bad"]}"#,
    )
    .await;
    assert_problem(&reply, 422, "invalid_request");

    // Unknown, missing, malformed and revoked keys get one answer.
    let unknown = call(
        &s,
        "GET",
        "/api/v1/account/balance",
        &format!("sk_live_{}", "0".repeat(64)),
        "",
    )
    .await;
    assert_problem(&unknown, 401, "unauthenticated");
    let missing = s.get("/api/v1/account/balance").await;
    assert_eq!(
        (missing.status, missing.body.clone()),
        (401, unknown.body.clone())
    );
    let reply = call(
        &s,
        "DELETE",
        &format!("/api/v1/account/keys/{sender_id}"),
        &admin,
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let revoked = call(&s, "POST", "/api/v1/sms/send", &sender, send).await;
    assert_eq!(
        (revoked.status, revoked.body.clone()),
        (401, unknown.body.clone())
    );
    let reply = call(
        &s,
        "DELETE",
        &format!("/api/v1/account/keys/{sender_id}"),
        &admin,
        "",
    )
    .await;
    assert_problem(&reply, 404, "not_found");
}

#[tokio::test]
async fn expiry_allowlist_and_rate_limit() {
    let s = Setup::start_v1().await;
    let v1 = s.v1.as_ref().expect("v1");
    // Expired: made with an expiry in the past straight in the store.
    let (_, expired) = api::v1::create_key(
        v1.db(),
        NewKey {
            uid: "u1".into(),
            name: "old".into(),
            scopes: Scope::ALL.to_vec(),
            cidrs: vec![],
            rate: 0,
            expires_at: Some(api::v1::time::now_us() - 1_000_000),
        },
    )
    .await
    .expect("key");
    let reply = call(&s, "GET", "/api/v1/account/balance", &expired, "").await;
    assert_problem(&reply, 401, "unauthenticated");

    let elsewhere = key_for(&s, "u1", &Scope::ALL, &["10.0.0.0/8"], 0).await;
    let reply = call(&s, "GET", "/api/v1/account/balance", &elsewhere, "").await;
    assert_problem(&reply, 403, "ip_not_allowed");
    let local = key_for(&s, "u1", &Scope::ALL, &["127.0.0.0/8", "::1"], 0).await;
    let reply = call(&s, "GET", "/api/v1/account/balance", &local, "").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["balance"], "10.000000");
    assert_eq!(reply.json()["sms_count"], 100);

    // Two requests per second: the third in a row is refused with Retry-After.
    let slow = key_for(&s, "u1", &Scope::ALL, &[], 2).await;
    let mut limited = None;
    for _ in 0..5 {
        let auth = format!("Bearer {slow}");
        let reply = s
            .request_full(
                "GET",
                "/api/v1/account/balance",
                &[("authorization", &auth)],
                "",
            )
            .await;
        if reply.0.status == 429 {
            limited = Some(reply);
            break;
        }
    }
    let (reply, retry_after) = limited.expect("a 429 within 5 requests");
    assert_problem(&reply, 429, "rate_limited");
    let secs: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!(secs >= 1);
}

#[tokio::test]
async fn send_reports_parts_cost_and_status() {
    let mut s = Setup::start_v1().await;
    let key = key_for(&s, "u1", &Scope::ALL, &[], 0).await;
    let body = json!({
        "to": ["255700000001", "+255700000002"],
        "from": "BANK",
        "text": "x".repeat(200),
        "client_reference": "order-42",
    });
    let reply = call(&s, "POST", "/api/v1/sms/send", &key, &body.to_string()).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let sent = reply.json();
    assert_eq!(sent["encoding"], "gsm7");
    assert_eq!(sent["parts"], 2);
    assert_eq!(sent["total_cost"], "0.080000");
    let messages = sent["messages"].as_array().expect("messages").clone();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["cost"], "0.040000");
    assert_eq!(messages[0]["status"], "queued");
    // Four parts reach the operator, from an alphanumeric sender.
    for _ in 0..4 {
        let got = s.next_submit().await;
        assert_eq!(got.pdu.source_addr.as_str(), "BANK");
    }
    let id = messages[0]["id"].as_str().expect("id").to_owned();

    // The simulator's receipts move the message to delivered.
    let mut last = Value::Null;
    let deadline = common::Deadline::after(common::LONG_WAIT);
    while deadline.pending() {
        let reply = call(&s, "GET", &format!("/api/v1/sms/{id}"), &key, "").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        last = reply.json();
        // The gateway knows first; the stored record follows with the connector.
        if last["status"] == "delivered" && last["connector"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(last["status"], "delivered", "{last}");
    assert_eq!(last["to"], "255700000001");
    assert_eq!(last["parts"], 2);
    assert_eq!(last["connector"], "op1");
    assert!(last["done_at"].is_string() && last["created_at"].is_string());

    // Another user cannot see it.
    let other = key_for(&s, "u3", &Scope::ALL, &[], 0).await;
    let reply = call(&s, "GET", &format!("/api/v1/sms/{id}"), &other, "").await;
    assert_problem(&reply, 404, "not_found");

    // Lists: by client reference, one per page with a cursor.
    let reply = call(
        &s,
        "POST",
        "/api/v1/sms/send",
        &key,
        r#"{"to":"255700000003","text":"other"}"#,
    )
    .await;
    assert_eq!(reply.status, 202);
    let reply = call(
        &s,
        "GET",
        "/api/v1/sms?client_reference=order-42&limit=1",
        &key,
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let page = reply.json();
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let reply = call(
        &s,
        "GET",
        &format!("/api/v1/sms?client_reference=order-42&limit=1&cursor={cursor}"),
        &key,
        "",
    )
    .await;
    let page2 = reply.json();
    assert_eq!(page2["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(page2["next_cursor"], Value::Null);
    let mut seen: Vec<String> = [&page, &page2]
        .iter()
        .map(|p| p["data"][0]["to"].as_str().unwrap_or_default().to_owned())
        .collect();
    seen.sort();
    assert_eq!(seen, ["+255700000002", "255700000001"]);
    // Lists read the database, which the records reach a moment after the answer.
    let mut listed = 0;
    let deadline = common::Deadline::after(common::LONG_WAIT);
    while deadline.pending() {
        let reply = call(&s, "GET", "/api/v1/sms?limit=10", &key, "").await;
        listed = reply.json()["data"].as_array().map_or(0, Vec::len);
        if listed == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(listed, 3);
    let reply = call(&s, "GET", "/api/v1/sms?status=delivered&limit=10", &key, "").await;
    assert!(
        reply.json()["data"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    );
    let reply = call(&s, "GET", "/api/v1/sms?status=nonsense", &key, "").await;
    assert_problem(&reply, 422, "invalid_request");
}

#[tokio::test]
async fn refusals_are_problem_documents() {
    let mut s = Setup::start_v1().await;
    let poor = key_for(&s, "u2", &Scope::ALL, &[], 0).await;
    let reply = call(
        &s,
        "POST",
        "/api/v1/sms/send",
        &poor,
        r#"{"to":"255700000001","text":"hi"}"#,
    )
    .await;
    assert_problem(&reply, 402, "insufficient_funds");
    let key = key_for(&s, "u1", &Scope::ALL, &[], 0).await;
    let reply = call(
        &s,
        "POST",
        "/api/v1/sms/send",
        &key,
        r#"{"to":"1234","text":"hi"}"#,
    )
    .await;
    assert_problem(&reply, 422, "no_route");
    let reply = call(&s, "POST", "/api/v1/sms/send", &key, r#"{"to":"1234""#).await;
    assert_problem(&reply, 400, "malformed_json");
    let reply = call(
        &s,
        "POST",
        "/api/v1/sms/send",
        &key,
        r#"{"to":"255700000001","text":"привет","encoding":"gsm7"}"#,
    )
    .await;
    assert_problem(&reply, 422, "invalid_request");
    // One good and one unroutable recipient: the good one goes, the other is reported.
    let reply = call(
        &s,
        "POST",
        "/api/v1/sms/send",
        &key,
        r#"{"to":["255700000001","1234"],"text":"привет"}"#,
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let body = reply.json();
    assert_eq!(body["encoding"], "ucs2");
    assert_eq!(body["messages"][1]["status"], "rejected");
    assert_eq!(body["messages"][1]["error"]["code"], "no_route");
    assert_eq!(s.next_submit().await.pdu.data_coding, 8.into());
    s.no_more_submits().await;
    let reply = call(&s, "GET", "/api/v1/nothing", &key, "").await;
    assert_problem(&reply, 404, "not_found");
}

#[tokio::test]
async fn idempotent_retries_send_once() {
    let mut s = Setup::start_v1().await;
    let key = key_for(&s, "u1", &Scope::ALL, &[], 0).await;
    let auth = format!("Bearer {key}");
    let body = r#"{"to":"255700000001","text":"once"}"#;
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", "k-1"),
    ];
    // Ten concurrent retries of one request.
    let replies = futures_util::future::join_all(
        (0..10).map(|_| s.request("POST", "/api/v1/sms/send", &headers, body)),
    )
    .await;
    let ids: Vec<String> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, 202, "{r:?}");
            r.json()["messages"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(
        ids.iter().all(|id| id == &ids[0] && id.len() == 36),
        "{ids:?}"
    );
    s.next_submit().await;
    s.no_more_submits().await;
    // The same key with another body is refused.
    let other = r#"{"to":"255700000001","text":"twice"}"#;
    let reply = s.request("POST", "/api/v1/sms/send", &headers, other).await;
    assert_problem(&reply, 422, "idempotency_key_reused");
    // The answer survives a restart of the gateway on the same store.
    let dir = s.dir.take().expect("dir");
    drop(s);
    let mut s = Setup::start_v1_in(dir).await;
    let reply = s.request("POST", "/api/v1/sms/send", &headers, body).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(
        reply.json()["messages"][0]["id"].as_str(),
        Some(ids[0].as_str())
    );
    s.no_more_submits().await;
    // Another key sends.
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", "k-2"),
    ];
    let reply = s.request("POST", "/api/v1/sms/send", &headers, body).await;
    assert_eq!(reply.status, 202);
    s.next_submit().await;
}

/// With an Idempotency-Key, a 202 means the message's record is in the store, with the
/// answer: a crash right after the answer loses neither. Concurrent sends share the
/// writer's transactions. (Without a key the record is durable in the journal instead,
/// as its message's annex: `tests/v1_crash.rs` at the workspace root.)
#[tokio::test]
async fn with_an_idempotency_key_the_record_is_stored_before_the_send_is_answered() {
    let s = Setup::start_v1().await;
    let key = key_for(&s, "u1", &Scope::ALL, &[], 0).await;
    let db = s.v1.as_ref().expect("v1").db();
    let sends = (0..24).map(|n| {
        let (s, key) = (&s, &key);
        async move {
            let body =
                format!(r#"{{"to":["25570000{n:04}","25571000{n:04}"],"text":"durable {n}"}}"#);
            let auth = format!("Bearer {key}");
            let idempotency = format!("durable-{n}");
            let headers = [
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
                ("idempotency-key", idempotency.as_str()),
            ];
            let reply = s.request("POST", "/api/v1/sms/send", &headers, body).await;
            assert_eq!(reply.status, 202, "{reply:?}");
            let ids: Vec<String> = reply.json()["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .map(|m| m["id"].as_str().expect("id").to_owned())
                .collect();
            assert_eq!(ids.len(), 2);
            // Straight after the answer, from the store itself (not the in-memory
            // records GET also looks at).
            for id in ids {
                let row = db.message("u1", &id).await.expect("query");
                let row = row.unwrap_or_else(|| panic!("{id} answered 202 but not stored"));
                assert_eq!(row.uid, "u1");
            }
        }
    });
    futures_util::future::join_all(sends).await;
}
