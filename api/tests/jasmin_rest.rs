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
