//! The REST v1 receipts WebSocket over real sockets: live receipts, resuming after a
//! reconnect and after a restart of the gateway, an unknown token, and authentication
//! at the handshake.

mod common;

use std::time::Duration;

use api::v1::{NewKey, Scope};
use common::{Setup, WAIT};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest},
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn make_key(s: &Setup, uid: &str) -> String {
    let v1 = s.v1.as_ref().expect("v1");
    let (_, secret) = api::v1::create_key(
        v1.db(),
        NewKey {
            uid: uid.into(),
            name: "ws".into(),
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

async fn connect(s: &Setup, key: &str, query: &str) -> Socket {
    let mut request = format!("ws://{}/api/v1/notifications/dlr{query}", s.addr)
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("header"),
    );
    let (socket, response) = tokio::time::timeout(WAIT, connect_async(request))
        .await
        .expect("handshake in time")
        .expect("handshake");
    assert_eq!(response.status(), 101);
    socket
}

async fn next_event(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("an event in time")
            .expect("socket open")
            .expect("message");
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).expect("JSON");
        }
    }
}

async fn send(s: &Setup, key: &str, to: &str) -> String {
    let auth = format!("Bearer {key}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let body = json!({"to": to, "text": "ws"}).to_string();
    let reply = s.request("POST", "/api/v1/sms/send", &headers, body).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    reply.json()["messages"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[tokio::test]
async fn receipts_live_and_resumed() {
    let s = Setup::start_v1().await;
    let key = make_key(&s, "u1").await;
    let other = make_key(&s, "u3").await;
    let mut socket = connect(&s, &key, "").await;
    let mut stranger = connect(&s, &other, "").await;

    let first = send(&s, &key, "255700000001").await;
    let event = next_event(&mut socket).await;
    assert_eq!(event["type"], "receipt");
    assert_eq!(event["message_id"], first.as_str());
    assert_eq!(event["status"], "delivered");
    assert_eq!(event["final"], true);
    let token = event["token"].as_str().expect("token").to_owned();
    socket.close(None).await.expect("close");

    // Receipts that arrive while the client is away wait for it.
    let second = send(&s, &key, "255700000002").await;
    let third = send(&s, &key, "255700000003").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut socket = connect(&s, &key, &format!("?resume={token}")).await;
    let mut ids = vec![
        next_event(&mut socket).await["message_id"].clone(),
        next_event(&mut socket).await["message_id"].clone(),
    ];
    ids.sort_by_key(|v| v.to_string());
    let mut want = vec![json!(second), json!(third)];
    want.sort_by_key(|v| v.to_string());
    assert_eq!(ids, want);
    // Then live ones.
    let fourth = send(&s, &key, "255700000004").await;
    assert_eq!(next_event(&mut socket).await["message_id"], fourth.as_str());

    // An unknown token: a reset notice, then live events.
    let mut fresh = connect(&s, &key, "?resume=abc-12").await;
    assert_eq!(next_event(&mut fresh).await["type"], "reset");

    // Another account hears none of it (its first event is its own).
    let own = send(&s, &other, "255700000009").await;
    assert_eq!(next_event(&mut stranger).await["message_id"], own.as_str());
}

#[tokio::test]
async fn a_token_outlives_a_restart() {
    let mut s = Setup::start_v1().await;
    let key = make_key(&s, "u1").await;
    let mut socket = connect(&s, &key, "").await;
    let first = send(&s, &key, "255700000001").await;
    let event = next_event(&mut socket).await;
    assert_eq!(event["message_id"], first.as_str());
    let token = event["token"].as_str().expect("token").to_owned();
    drop(socket);

    // Two receipts the client misses; a watcher sees that they were published.
    let mut watcher = connect(&s, &key, "").await;
    let missed = [
        send(&s, &key, "255700000002").await,
        send(&s, &key, "255700000003").await,
    ];
    let mut seen = vec![
        next_event(&mut watcher).await["message_id"].clone(),
        next_event(&mut watcher).await["message_id"].clone(),
    ];
    drop(watcher);

    // The gateway restarts on the same directory (the key is stored there too).
    let dir = s.dir.take().expect("dir");
    drop(s);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = Setup::start_v1_in(dir).await;
    let mut socket = connect(&s, &key, &format!("?resume={token}")).await;
    let mut resumed = vec![next_event(&mut socket).await, next_event(&mut socket).await];
    assert!(
        resumed.iter().all(|e| e["type"] == "receipt"),
        "no reset: {resumed:?}"
    );
    let mut want: Vec<Value> = missed.iter().map(|id| json!(id)).collect();
    want.sort_by_key(|v| v.to_string());
    seen.sort_by_key(|v| v.to_string());
    assert_eq!(seen, want);
    resumed.sort_by_key(|e| e["message_id"].to_string());
    let ids: Vec<Value> = resumed.iter().map(|e| e["message_id"].clone()).collect();
    assert_eq!(ids, want, "the missed receipts, once each");
    // Then live ones, with tokens that keep growing past the old process's.
    let after = send(&s, &key, "255700000004").await;
    let live = next_event(&mut socket).await;
    assert_eq!(live["message_id"], after.as_str());
    let seq = |e: &Value| -> u64 {
        let token = e["token"].as_str().expect("token");
        token
            .split_once('-')
            .expect("epoch-seq")
            .1
            .parse()
            .expect("seq")
    };
    assert!(resumed.iter().all(|e| seq(e) < seq(&live)));
}

#[tokio::test]
async fn handshake_needs_a_key() {
    let s = Setup::start_v1().await;
    let request = format!("ws://{}/api/v1/notifications/dlr", s.addr)
        .into_client_request()
        .expect("request");
    match connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected 401, got {other:?}"),
    }
    let key = make_key(&s, "u1").await;
    let auth = format!("Bearer {key}");
    // Plain HTTP on the WebSocket endpoint.
    let reply = s
        .request(
            "GET",
            "/api/v1/notifications/dlr",
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(reply.status, 426);
}
