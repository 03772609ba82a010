//! REST v1 on PostgreSQL (its own SQL for CDR times and money, casts): keys, sends,
//! state, lists, idempotency, webhooks and their log, usage and the CDR export, over
//! real sockets. Runs in a fresh schema of the server named by SMSGW_TEST_POSTGRES_URL;
//! skipped (and says so) when it is unset.

mod common;

use std::time::Duration;

use api::v1::{NewKey, Scope};
use common::{Reply, Setup};
use serde_json::json;

const PG_ENV: &str = "SMSGW_TEST_POSTGRES_URL";

async fn call(
    s: &Setup,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let auth = format!("Bearer {key}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    s.request(method, path, &headers, body.to_owned()).await
}

/// A webhook receiver that answers every request with 503.
async fn refusing_receiver() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_on_postgres() {
    let Ok(base) = std::env::var(PG_ENV) else {
        eprintln!("skipped: {PG_ENV} not set");
        return;
    };
    let schema = format!("v1_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&base)
        .await
        .expect("reach PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .expect("schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options[search_path]={schema}");

    let mut s = Setup::start_v1_on(&url).await;
    let v1 = s.v1.clone().expect("v1");
    let (_, key) = api::v1::create_key(
        v1.db(),
        NewKey {
            uid: "u1".into(),
            name: "pg".into(),
            scopes: Scope::ALL.to_vec(),
            cidrs: vec![
                "127.0.0.0/8".parse().expect("cidr"),
                "::1".parse().expect("cidr"),
            ],
            rate: 0,
            expires_at: None,
        },
    )
    .await
    .expect("key");

    // Keys over the API, revocation.
    let reply = call(
        &s,
        "POST",
        "/api/v1/account/keys",
        &key,
        r#"{"scopes":["sms:read"]}"#,
        &[],
    )
    .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let reader = reply.json()["secret"].as_str().expect("secret").to_owned();
    let reader_id = reply.json()["id"].as_str().expect("id").to_owned();
    let reply = call(&s, "GET", "/api/v1/account/keys", &key, "", &[]).await;
    assert_eq!(reply.json()["data"].as_array().map(Vec::len), Some(2));
    let reply = call(
        &s,
        "DELETE",
        &format!("/api/v1/account/keys/{reader_id}"),
        &key,
        "",
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = call(&s, "GET", "/api/v1/sms", &reader, "", &[]).await;
    assert_eq!(reply.status, 401);

    // A webhook, a send with a reference and an idempotency key, its state. The
    // webhook's receiver answers 503 at once, so every attempt fails and is logged
    // without waiting on a timeout (a fixed port such as 9 may hold a listener that
    // never answers).
    let receiver = refusing_receiver().await;
    let hook = call(
        &s,
        "POST",
        "/api/v1/account/webhooks",
        &key,
        &json!({"url": format!("http://{receiver}/hook")}).to_string(),
        &[],
    )
    .await;
    assert_eq!(hook.status, 201, "{hook:?}");
    let hook_id = hook.json()["id"].as_str().expect("id").to_owned();
    let body = r#"{"to":["255700000001","255700000002"],"text":"pg","client_reference":"pg-1"}"#;
    let first = call(
        &s,
        "POST",
        "/api/v1/sms/send",
        &key,
        body,
        &[("idempotency-key", "pg-k")],
    )
    .await;
    assert_eq!(first.status, 202, "{first:?}");
    let again = call(
        &s,
        "POST",
        "/api/v1/sms/send",
        &key,
        body,
        &[("idempotency-key", "pg-k")],
    )
    .await;
    assert_eq!(again.body, first.body);
    s.next_submit().await;
    s.next_submit().await;
    s.no_more_submits().await;
    let id = first.json()["messages"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut status = String::new();
    let deadline = common::Deadline::after(common::LONG_WAIT);
    while deadline.pending() {
        let m = call(&s, "GET", &format!("/api/v1/sms/{id}"), &key, "", &[])
            .await
            .json();
        status = m["status"].as_str().unwrap_or_default().to_owned();
        if status == "delivered" && m["connector"] == "op1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status, "delivered");
    let page = call(
        &s,
        "GET",
        "/api/v1/sms?client_reference=pg-1&limit=1",
        &key,
        "",
        &[],
    )
    .await
    .json();
    let cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
    let page2 = call(
        &s,
        "GET",
        &format!("/api/v1/sms?client_reference=pg-1&limit=1&cursor={cursor}"),
        &key,
        "",
        &[],
    )
    .await
    .json();
    assert_eq!(page2["data"].as_array().map(Vec::len), Some(1));
    assert_ne!(page["data"][0]["id"], page2["data"][0]["id"]);

    // The webhook's log records the failed attempts.
    let path = format!("/api/v1/account/webhooks/{hook_id}/deliveries");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut log = serde_json::Value::Null;
    while tokio::time::Instant::now() < deadline {
        log = call(&s, "GET", &path, &key, "", &[]).await.json();
        if log["data"].as_array().is_some_and(|d| {
            d.iter().any(|e| {
                e["attempts"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|a| a["status"] == 503))
            })
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        log["data"].to_string().contains("503"),
        "no failed attempt logged: {log}"
    );

    // CDR rows in PostgreSQL's types: usage and the export.
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    let account: i64 = sqlx::query_scalar(
        "INSERT INTO accounts (kind, name, status, currency, created_at) \
         VALUES ('client', 'user:u1', 'active', 'EUR', now()) RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .expect("account");
    for i in 0..5i64 {
        sqlx::query(
            "INSERT INTO cdr (message_id, account_id, user_name, connector, operator, \
             destination, sender, parts, text_length, text_hash, currency, cost_per_part, \
             total, charged, charge_status, accepted_at, final_status) VALUES \
             ($1, $2, 'bank', 'op1', 'op-a', '255700000001', 'BANK', 1, 2, 'h', 'EUR', \
             0.02, 0.02, 0.02, 'CHARGED', \
             timestamptz '2026-11-01 00:00:00+00' + make_interval(secs => $3), 'DELIVRD')",
        )
        .bind(format!("pg{i}"))
        .bind(account)
        .bind(i as f64)
        .execute(&pool)
        .await
        .expect("cdr row");
    }
    let usage = call(
        &s,
        "GET",
        "/api/v1/account/usage?group_by=status&from=2026-11-01&to=2026-11-02",
        &key,
        "",
        &[],
    )
    .await;
    assert_eq!(usage.status, 200, "{usage:?}");
    let usage = usage.json();
    assert_eq!(usage["data"][0]["status"], "delivered");
    assert_eq!(usage["data"][0]["records"], 5);
    assert_eq!(usage["total"]["cost"], "0.100000");
    let reply = call(
        &s,
        "GET",
        "/api/v1/account/cdr?from=2026-11-01&to=2026-11-02&limit=2",
        &key,
        "",
        &[],
    )
    .await;
    let page = reply.json();
    assert_eq!(page["data"][0]["message_id"], "pg0");
    assert_eq!(page["data"][0]["accepted_at"], "2026-11-01T00:00:00.000Z");
    assert_eq!(page["data"][1]["charged"], "0.020000");
    let cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
    let reply = call(
        &s,
        "GET",
        &format!("/api/v1/account/cdr?from=2026-11-01&to=2026-11-02&format=csv&cursor={cursor}"),
        &key,
        "",
        &[],
    )
    .await;
    assert!(reply.content_type.starts_with("text/csv"));
    let lines: Vec<&str> = reply.body.lines().collect();
    assert_eq!(lines.len(), 4, "{}", reply.body);
    assert!(lines[1].starts_with("pg2,2026-11-01T00:00:02.000Z,"));

    drop(s);
    pool.close().await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await;
}
