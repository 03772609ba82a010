//! Jasmin's REST API (`/secure/*`, docs/jasmin-compat.md §1.8) over real sockets: Basic auth,
//! JSON bodies and `{"data": …}` / `{"message": …}` answers.

mod common;

use common::Setup;
use serde_json::json;

/// `bank:pw` in base64.
const BANK: &str = "Basic YmFuazpwdw==";
/// `bank:no` in base64.
const BANK_WRONG: &str = "Basic YmFuazpubw==";

#[tokio::test]
async fn secure_send_with_basic_auth() {
    let mut s = Setup::start().await;
    let headers = [
        ("authorization", BANK),
        ("content-type", "application/json"),
    ];
    let body = r#"{"to":"255700000009","from":"BANK","content":"rest hello","dlr":"no"}"#;
    let reply = s.request("POST", "/secure/send", &headers, body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.content_type, "application/json");
    let data = reply.json()["data"].as_str().unwrap_or_default().to_owned();
    // Jasmin's proxy strips the closing quote.
    let id = data.strip_prefix("Success \"").unwrap_or_default();
    assert_eq!(id.len(), 36, "{data}");
    let got = s.next_submit().await;
    assert_eq!(got.pdu.destination_addr.as_str(), "255700000009");
    assert_eq!(got.pdu.short_message().as_ref(), b"rest hello");

    // hex_content is read as hex-content.
    let body = r#"{"to":"255700000009","hex_content":"4142","coding":4}"#;
    let reply = s.request("POST", "/secure/send", &headers, body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(s.next_submit().await.pdu.short_message().as_ref(), b"AB");

    let body = r#"{"to":"1234","content":"x"}"#;
    let reply = s.request("POST", "/secure/send", &headers, body).await;
    assert_eq!(
        (reply.status, reply.json()),
        (412, json!({"message": "Error \"No route found"}))
    );
    let wrong = [
        ("authorization", BANK_WRONG),
        ("content-type", "application/json"),
    ];
    let body = r#"{"to":"255700000009","content":"x"}"#;
    let reply = s.request("POST", "/secure/send", &wrong, body).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            403,
            json!({"message": "Error \"Authentication failure for username:bank"})
        )
    );
    let reply = s.request("POST", "/secure/send", &[], body).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["title"], "Authentication required");
    let reply = s
        .request("POST", "/secure/send", &headers, "not json")
        .await;
    assert_eq!(reply.status, 412);
    let xml = [("authorization", BANK), ("accept", "text/xml")];
    let reply = s.request("POST", "/secure/send", &xml, body).await;
    assert_eq!(reply.status, 415);
}

#[tokio::test]
async fn secure_balance_rate_and_ping() {
    let s = Setup::start().await;
    let auth = [("authorization", BANK)];
    let reply = s.request("GET", "/secure/balance", &auth, "").await;
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({"data": {"balance": 10.0, "sms_count": 100}}))
    );
    let reply = s
        .request("GET", "/secure/rate?to=255700000001&content=x", &auth, "")
        .await;
    assert_eq!(
        reply.json(),
        json!({"data": {"submit_sm_count": 1, "unit_rate": 0.02}})
    );
    let reply = s.request("GET", "/secure/ping", &auth, "").await;
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({"data": "Jasmin/PONG"}))
    );
    let wrong = [("authorization", BANK_WRONG)];
    let reply = s.request("GET", "/secure/balance", &wrong, "").await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            403,
            json!({"message": "Authentication failure for username:bank"})
        )
    );
}

#[tokio::test]
async fn secure_sendbatch_fans_out_calls_back_and_schedules() {
    let mut s = Setup::start().await;
    let hook = common::Hook::start(&s.shutdown).await;
    let headers = [
        ("authorization", BANK),
        ("content-type", "application/json"),
    ];
    let body = json!({
        "globals": {"from": "BANK"},
        "messages": [
            {"to": ["255700000011", "255700000012"], "content": "batch hello"},
            {"to": "1234", "content": "no route for this one"},
            {"content": "no destination: skipped"}
        ],
        "batch_config": {
            "callback_url": format!("{}/ok", hook.base),
            "errback_url": format!("{}/err", hook.base)
        }
    })
    .to_string();
    let reply = s
        .request("POST", "/secure/sendbatch", &headers, body.clone())
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let data = reply.json()["data"].clone();
    assert_eq!(data["messageCount"], 3, "{data}");
    let batch_id = data["batchId"].as_str().unwrap_or_default().to_owned();
    assert_eq!(batch_id.len(), 36);
    let mut reached = vec![
        s.next_submit().await.pdu.destination_addr.to_string(),
        s.next_submit().await.pdu.destination_addr.to_string(),
    ];
    reached.sort();
    assert_eq!(reached, ["255700000011", "255700000012"]);
    common::wait_until(|| hook.seen().len() == 3).await;
    let seen = hook.seen();
    let oks: Vec<_> = seen.iter().filter(|c| c.path == "/ok").collect();
    assert_eq!(oks.len(), 2, "{seen:?}");
    for ok in oks {
        assert_eq!(ok.param("batchId").as_deref(), Some(batch_id.as_str()));
        assert_eq!(ok.param("status").as_deref(), Some("1"));
    }
    let err = hook.wait_for("/err").await;
    assert_eq!(err.param("to").as_deref(), Some("1234"));
    assert_eq!(err.param("status").as_deref(), Some("0"));

    // A delayed start is announced and kept.
    let body = json!({
        "messages": [{"to": "255700000013", "content": "later", "from": "BANK"}],
        "batch_config": {"schedule_at": "1s"}
    })
    .to_string();
    let reply = s
        .request("POST", "/secure/sendbatch", &headers, body.clone())
        .await;
    assert_eq!(reply.json()["data"]["scheduled"], "1s", "{reply:?}");
    assert_eq!(
        s.next_submit().await.pdu.destination_addr.to_string(),
        "255700000013"
    );

    // The past, bad credentials and bad JSON are refused before anything is taken.
    let body = r#"{"messages":[{"to":"255700000014","content":"x"}],
                   "batch_config":{"schedule_at":"2001-01-01 00:00:00"}}"#;
    let reply = s.request("POST", "/secure/sendbatch", &headers, body).await;
    assert_eq!(reply.status, 412);
    assert_eq!(reply.json()["title"], "Cannot schedule batch in past date");
    let wrong = [
        ("authorization", BANK_WRONG),
        ("content-type", "application/json"),
    ];
    let body = r#"{"messages":[{"to":"255700000014","content":"x"}]}"#;
    let reply = s.request("POST", "/secure/sendbatch", &wrong, body).await;
    assert_eq!(reply.status, 403, "{reply:?}");
    let reply = s
        .request("POST", "/secure/sendbatch", &headers, "not json")
        .await;
    assert_eq!(reply.status, 412);
    s.no_more_submits().await;
}
