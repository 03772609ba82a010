//! REST v1 webhooks over real sockets: registration, signed deliveries checked by the
//! receiver, retries after failures, the delivery log, a slow endpoint beside a fast
//! one, and retries that go on after a restart.

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use api::v1::{NewKey, Scope};
use common::{
    Reply, Setup, WAIT,
    receiver::{Receiver, verify},
    wait_until,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

async fn key(s: &Setup) -> String {
    let v1 = s.v1.as_ref().expect("v1");
    let (_, secret) = api::v1::create_key(
        v1.db(),
        NewKey {
            uid: "u1".into(),
            name: "hooks".into(),
            scopes: Scope::ALL.to_vec(),
            cidrs: vec![],
            rate: 0,
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

/// Registers `url`; returns (id, secret).
async fn register(s: &Setup, key: &str, url: &str) -> (String, String) {
    let body = json!({"url": url, "events": ["sms.delivered", "sms.failed"]}).to_string();
    let reply = call(s, "POST", "/api/v1/account/webhooks", key, &body).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let hook = reply.json();
    let secret = hook["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    (hook["id"].as_str().expect("id").to_owned(), secret)
}

async fn send(s: &Setup, key: &str, extra: Value) -> String {
    let mut body = json!({"to": "255700000001", "text": "hook me"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let reply = call(s, "POST", "/api/v1/sms/send", key, &body.to_string()).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    reply.json()["messages"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[tokio::test]
async fn signed_delivery_retried_and_logged() {
    let s = Setup::start_v1().await;
    let key = key(&s).await;
    // A per-message webhook_url needs a registered webhook to sign with.
    let reply = call(
        &s,
        "POST",
        "/api/v1/sms/send",
        &key,
        r#"{"to":"255700000001","text":"x","webhook_url":"http://127.0.0.1:9/x"}"#,
    )
    .await;
    assert_eq!(reply.status, 422, "{reply:?}");
    assert_eq!(reply.json()["code"], "webhook_required");

    let receiver = Receiver::start(&s.shutdown, 500).await;
    let (hook_id, secret) = register(&s, &key, &format!("{}/hook", receiver.base)).await;
    let reply = call(&s, "GET", "/api/v1/account/webhooks", &key, "").await;
    assert_eq!(reply.json()["data"][0]["id"], hook_id.as_str());
    assert!(!reply.body.contains(&secret), "the secret is shown once");

    let id = send(
        &s,
        &key,
        json!({"webhook_url": format!("{}/own", receiver.base)}),
    )
    .await;
    // The endpoint fails first: the event comes again, then is taken.
    wait_until(|| !receiver.at("/hook").is_empty()).await;
    receiver.status.store(200, Ordering::Relaxed);
    wait_until(|| receiver.at("/hook").len() >= 2).await;
    let got = receiver.at("/hook");
    for g in &got {
        assert!(verify(&secret, &g.signature, &g.body), "{g:?}");
        assert!(!verify("whsec_wrong", &g.signature, &g.body));
    }
    let event: Value = serde_json::from_str(&got[0].body).expect("JSON event");
    assert_eq!(event["type"], "sms.delivered");
    assert_eq!(event["data"]["message_id"], id.as_str());
    assert_eq!(event["data"]["status"], "delivered");
    assert_eq!(got[0].body, got[1].body, "a retry sends the same event");
    // The message's own URL got it too, signed with the account's webhook secret.
    wait_until(|| receiver.at("/own").iter().any(|g| g.body == got[0].body)).await;
    let own = receiver.at("/own");
    assert!(verify(&secret, &own[0].signature, &own[0].body));

    // The delivery log: attempts with their answers, the event delivered.
    let path = format!("/api/v1/account/webhooks/{hook_id}/deliveries");
    let mut log = Value::Null;
    let deadline = common::Deadline::after(common::LONG_WAIT);
    while deadline.pending() {
        log = call(&s, "GET", &path, &key, "").await.json();
        if log["data"].as_array().is_some_and(|d| {
            d.iter().any(|e| {
                e["url"].as_str().is_some_and(|u| u.ends_with("/hook")) && e["state"] == "delivered"
            })
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let entry = log["data"]
        .as_array()
        .and_then(|d| {
            d.iter()
                .find(|e| e["url"].as_str().is_some_and(|u| u.ends_with("/hook")))
        })
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(entry["state"], "delivered", "{log}");
    let attempts = entry["attempts"].as_array().cloned().unwrap_or_default();
    assert!(attempts.len() >= 2, "{entry}");
    assert_eq!(attempts[0]["status"], 500);
    assert_eq!(attempts[attempts.len() - 1]["status"], 200);

    // Deleted: no more events for it.
    let reply = call(
        &s,
        "DELETE",
        &format!("/api/v1/account/webhooks/{hook_id}"),
        &key,
        "",
    )
    .await;
    assert_eq!(reply.status, 200);
    let reply = call(&s, "GET", &path, &key, "").await;
    assert_eq!(reply.status, 200, "the log stays readable");
    let reply = call(&s, "GET", "/api/v1/account/webhooks", &key, "").await;
    assert_eq!(reply.json()["data"], json!([]));
}

#[tokio::test]
async fn slow_endpoint_does_not_delay_another() {
    let s = Setup::start_v1().await;
    let key = key(&s).await;
    let slow = Receiver::start(&s.shutdown, 200).await;
    // Longer than the test waits for the fast one.
    slow.delay_ms
        .store(WAIT.as_millis() as u64 * 3, Ordering::Relaxed);
    let fast = Receiver::start(&s.shutdown, 200).await;
    let (slow_id, _) = register(&s, &key, &format!("{}/slow", slow.base)).await;
    let (fast_id, _) = register(&s, &key, &format!("{}/fast", fast.base)).await;
    for _ in 0..3 {
        send(&s, &key, json!({})).await;
    }
    // The slow endpoint holds its events; the fast one gets all three meanwhile.
    let deadline = common::Deadline::after(common::LONG_WAIT);
    while deadline.pending() {
        if fast.at("/fast").len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if fast.at("/fast").len() < 3 {
        for id in [&slow_id, &fast_id] {
            let log = call(
                &s,
                "GET",
                &format!("/api/v1/account/webhooks/{id}/deliveries"),
                &key,
                "",
            )
            .await;
            eprintln!("{id}: {}", log.body);
        }
        eprintln!(
            "msgs: {}",
            call(&s, "GET", "/api/v1/sms", &key, "").await.body
        );
        eprintln!(
            "fast {} slow {}",
            fast.at("/fast").len(),
            slow.at("/slow").len()
        );
    }
    assert!(fast.at("/fast").len() >= 3);
    assert!(slow.at("/slow").len() <= 3);
}

#[tokio::test]
async fn retries_go_on_after_a_restart() {
    let shutdown = CancellationToken::new();
    let receiver = Receiver::start(&shutdown, 503).await;
    let mut s = Setup::start_v1().await;
    let key = key(&s).await;
    let (hook_id, secret) = register(&s, &key, &format!("{}/hook", receiver.base)).await;
    send(&s, &key, json!({})).await;
    wait_until(|| receiver.at("/hook").len() >= 2).await;
    // Stop the gateway while the event is still being retried.
    let dir = s.dir.take().expect("dir");
    drop(s);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = receiver.at("/hook").len();
    receiver.status.store(200, Ordering::Relaxed);
    let s = Setup::start_v1_in(dir).await;
    // The new process finds the event in the outbox and delivers it.
    wait_until(|| receiver.at("/hook").len() > before).await;
    let got = receiver.at("/hook");
    let last = got.last().expect("delivery");
    assert!(verify(&secret, &last.signature, &last.body));
    let path = format!("/api/v1/account/webhooks/{hook_id}/deliveries");
    let mut state = Value::Null;
    let deadline = common::Deadline::after(common::LONG_WAIT);
    while deadline.pending() {
        let log = call(&s, "GET", &path, &key, "").await.json();
        state = log["data"][0]["state"].clone();
        if state == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(state, "delivered");
    shutdown.cancel();
}

#[tokio::test]
async fn mo_messages_become_sms_mo_events() {
    let s = Setup::start_v1_with_mo(20.0).await;
    let key = key(&s).await;
    let receiver = Receiver::start(&s.shutdown, 200).await;
    let body = json!({"url": format!("{}/mo", receiver.base), "events": ["sms.mo"]}).to_string();
    let reply = call(&s, "POST", "/api/v1/account/webhooks", &key, &body).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let secret = reply.json()["secret"].as_str().expect("secret").to_owned();
    wait_until(|| !receiver.at("/mo").is_empty()).await;
    let got = receiver.at("/mo");
    assert!(verify(&secret, &got[0].signature, &got[0].body));
    let event: Value = serde_json::from_str(&got[0].body).expect("JSON");
    assert_eq!(event["type"], "sms.mo");
    assert_eq!(event["data"]["to"], "1234");
    assert!(
        event["data"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("MO test ")),
        "{event}"
    );
    assert!(
        event["data"]["from"]
            .as_str()
            .is_some_and(|f| f.starts_with("99890"))
    );
}
