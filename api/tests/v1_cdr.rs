//! REST v1 usage and CDR export over real sockets, on CDR rows written into the store
//! the API reads (billing's `cdr` table in the same database).

mod common;

use api::v1::{NewKey, Scope};
use common::Setup;
use sqlx::sqlite::SqlitePoolOptions;

/// 2026-11-01T00:00:00Z in unix microseconds.
const BASE: i64 = 1_793_491_200_000_000;
const ROWS: i64 = 100_000;

async fn key(s: &Setup) -> String {
    let v1 = s.v1.as_ref().expect("v1");
    let (_, secret) = api::v1::create_key(
        v1.db(),
        NewKey {
            uid: "u1".into(),
            name: "cdr".into(),
            scopes: vec![Scope::AccountRead],
            cidrs: vec![],
            rate: 0,
            expires_at: None,
        },
    )
    .await
    .expect("key");
    secret
}

/// `ROWS` CDR rows of u1's account, one a second from BASE: even rows delivered on
/// operator "op-a", odd ones charged without a receipt on "op-b"; 0.02 each.
async fn fill(s: &Setup) {
    let path = s.dir.as_ref().expect("dir").path().join("api.db");
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("pool");
    let mut tx = pool.begin().await.expect("tx");
    let account: i64 = sqlx::query_scalar(
        "INSERT INTO accounts (kind, name, status, currency, created_at) \
         VALUES ('client', 'user:u1', 'active', 'EUR', 0) RETURNING id",
    )
    .fetch_one(&mut *tx)
    .await
    .expect("account");
    // Another user's row, which u1 must not see.
    sqlx::query(
        "INSERT INTO accounts (kind, name, status, currency, created_at) \
         VALUES ('client', 'user:u2', 'active', 'EUR', 0)",
    )
    .execute(&mut *tx)
    .await
    .expect("account 2");
    for i in 0..ROWS {
        let delivered = i % 2 == 0;
        sqlx::query(
            "INSERT INTO cdr (message_id, account_id, user_name, connector, operator, \
             destination, sender, parts, text_length, text_hash, currency, cost_per_part, \
             total, charged, charge_status, accepted_at, submitted_at, operator_msg_id, \
             receipt_at, final_status) VALUES (?, ?, 'bank', 'op1', ?, '255700000001', \
             'BANK, Ltd', 1, 5, 'h', 'EUR', 20000, 20000, 20000, 'CHARGED', ?, ?, 'op-id', ?, ?)",
        )
        .bind(format!("m{i:06}"))
        .bind(account)
        .bind(if delivered { "op-a" } else { "op-b" })
        .bind(BASE + i * 1_000_000)
        .bind(BASE + i * 1_000_000 + 1000)
        .bind(delivered.then_some(BASE + i * 1_000_000 + 5000))
        .bind(delivered.then_some("DELIVRD"))
        .execute(&mut *tx)
        .await
        .expect("cdr row");
    }
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn cdr_csv_of_100k_rows_is_streamed() {
    let s = Setup::start_v1().await;
    fill(&s).await;
    let key = key(&s).await;
    let auth = format!("Bearer {key}");
    let (status, headers, frames) = s
        .stream(
            "/api/v1/account/cdr?from=2026-11-01&to=2026-12-01",
            &[("authorization", &auth), ("accept", "text/csv")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    // Streamed: no length known up front, many chunks none of them the whole file.
    assert!(headers.get("content-length").is_none(), "{headers:?}");
    assert_eq!(headers["transfer-encoding"], "chunked");
    let total: usize = frames.iter().map(|f| f.len()).sum();
    assert!(frames.len() > 100, "{} frames", frames.len());
    assert!(frames.iter().all(|f| f.len() < total / 10));
    let body: Vec<u8> = frames.concat();
    let text = String::from_utf8(body).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as i64, ROWS + 1);
    assert!(lines[0].starts_with("message_id,accepted_at,"));
    assert!(
        lines[1].starts_with("m000000,2026-11-01T00:00:00.000Z,"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains(",\"BANK, Ltd\",") && lines[1].ends_with(",DELIVRD,op-id"));
    assert!(
        lines[2].contains(",0.020000,0.020000,0.020000,CHARGED,,op-id"),
        "{}",
        lines[2]
    );
    assert!(lines[ROWS as usize].starts_with("m099999,"));
}

#[tokio::test]
async fn cdr_json_pages_and_usage() {
    let s = Setup::start_v1().await;
    fill(&s).await;
    let key = key(&s).await;
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str())];
    let reply = s
        .request(
            "GET",
            "/api/v1/account/cdr?limit=3&from=2026-11-01T00:00:10Z",
            &headers,
            "",
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let page = reply.json();
    let ids: Vec<&str> = page["data"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["message_id"].as_str())
        .collect();
    assert_eq!(ids, ["m000010", "m000011", "m000012"]);
    assert_eq!(page["data"][0]["charged"], "0.020000");
    let cursor = page["next_cursor"].as_str().expect("next page").to_owned();
    let reply = s
        .request(
            "GET",
            &format!("/api/v1/account/cdr?limit=2&cursor={cursor}"),
            &headers,
            "",
        )
        .await;
    let page = reply.json();
    assert_eq!(page["data"][0]["message_id"], "m000013");
    assert_eq!(page["data"][1]["message_id"], "m000014");
    // The last page has no cursor.
    let reply = s
        .request(
            "GET",
            "/api/v1/account/cdr?from=2026-11-02T03:46:39Z",
            &headers,
            "",
        )
        .await;
    let page = reply.json();
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    assert!(page["next_cursor"].is_null());

    let reply = s
        .request("GET", "/api/v1/account/usage?group_by=day", &headers, "")
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let usage = reply.json();
    // 86,400 rows on the first day, the rest on the second.
    assert_eq!(usage["data"][0]["day"], "2026-11-01");
    assert_eq!(usage["data"][0]["sms"], 86_400);
    assert_eq!(usage["data"][0]["cost"], "1728.000000");
    assert_eq!(usage["data"][1]["records"], ROWS - 86_400);
    assert_eq!(usage["total"]["cost"], "2000.000000");
    let reply = s
        .request(
            "GET",
            "/api/v1/account/usage?group_by=status&to=2026-11-01T00:00:10Z",
            &headers,
            "",
        )
        .await;
    let usage = reply.json();
    assert_eq!(usage["data"][0]["status"], "delivered");
    assert_eq!(usage["data"][0]["records"], 5);
    assert_eq!(usage["data"][1]["status"], "sent");
    let reply = s
        .request(
            "GET",
            "/api/v1/account/usage?group_by=operator",
            &headers,
            "",
        )
        .await;
    let usage = reply.json();
    assert_eq!(usage["data"][0]["operator"], "op-a");
    assert_eq!(usage["data"][0]["records"], ROWS / 2);
    let reply = s
        .request("GET", "/api/v1/account/usage?group_by=color", &headers, "")
        .await;
    assert_eq!(reply.status, 422);
}
