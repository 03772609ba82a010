//! REST v1 loses no receipt and no MO, over real sockets: a burst of messages larger
//! than any in-memory hand-off, whose receipts arrive while the API's database is
//! locked by another connection (a slow consumer), must end with every message in its
//! final state and every webhook event delivered; and an MO is answered to the
//! operator only once its `sms.mo` event is stored (what makes a kill -9 lose none).

mod common;

use std::{
    collections::HashSet,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use api::v1::{NewKey, Scope};
use common::{Reply, Setup, receiver::Receiver};
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use smpp_testkit::sim::SimStats;
use sqlx::{Connection, Executor, SqliteConnection};

/// More messages than the 4096 receipts a broadcast hand-off kept.
const MESSAGES: usize = 6000;
const RECIPIENTS_PER_SEND: usize = 1000;
/// How long a whole burst may take to settle (debug builds on a shared machine).
const SETTLE: Duration = Duration::from_secs(120);

async fn key(s: &Setup, uid: &str) -> String {
    let v1 = s.v1.as_ref().expect("v1");
    let (_, secret) = api::v1::create_key(
        v1.db(),
        NewKey {
            uid: uid.into(),
            name: "burst".into(),
            scopes: Scope::ALL.to_vec(),
            cidrs: vec![],
            // No request rate limit: the test sends and reads at full speed.
            rate: 1_000_000,
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

async fn register(s: &Setup, key: &str, url: &str, events: &[&str]) {
    let body = json!({"url": url, "events": events}).to_string();
    let reply = call(s, "POST", "/api/v1/account/webhooks", key, &body).await;
    assert_eq!(reply.status, 201, "{reply:?}");
}

/// Takes the API database's write lock from a connection of the test's own: every
/// writer of the gateway waits (up to SQLite's busy timeout) until `release`.
async fn lock_database(s: &Setup) -> SqliteConnection {
    let path = s.dir.as_ref().expect("dir").path().join("api.db");
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("second connection");
    conn.execute("BEGIN IMMEDIATE").await.expect("write lock");
    conn
}

async fn release(mut conn: SqliteConnection) {
    conn.execute("COMMIT").await.expect("unlock");
}

/// Distinct message ids of the `event` webhook events the receiver got at `path`.
fn ids_of(receiver: &Receiver, path: &str, event: &str) -> HashSet<String> {
    receiver
        .at(path)
        .iter()
        .filter_map(|g| serde_json::from_str::<Value>(&g.body).ok())
        .filter(|e| e["type"] == event)
        .filter_map(|e| e["data"]["message_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_receipts_behind_a_slow_database_loses_none() {
    let s = Setup::start_v1().await;
    // `short` has no balance or count quota: thousands of messages are fine.
    let key = key(&s, "u3").await;
    let receiver = Receiver::start(&s.shutdown, 200).await;
    register(
        &s,
        &key,
        &format!("{}/hook", receiver.base),
        &["sms.delivered", "sms.failed"],
    )
    .await;

    // The consumer of receipts is made slow: its database is locked while the whole
    // burst is sent and its receipts come back. The sends are answered at once (their
    // records are in the journal), their messages go out, and their receipts come back
    // and wait: a receipt is answered only once its record is stored.
    let lock = lock_database(&s).await;
    let locked_at = Instant::now();
    let bodies: Vec<String> = (0..MESSAGES / RECIPIENTS_PER_SEND)
        .map(|n| {
            let to: Vec<String> = (0..RECIPIENTS_PER_SEND)
                .map(|i| format!("2557{:08}", n * RECIPIENTS_PER_SEND + i))
                .collect();
            json!({"to": to, "text": "burst"}).to_string()
        })
        .collect();
    let sends = stream::iter(&bodies)
        .map(|body| call(&s, "POST", "/api/v1/sms/send", &key, body))
        .buffer_unordered(bodies.len())
        .collect::<Vec<Reply>>();
    // Hold the lock until more receipts than a 4096 hand-off holds have come back,
    // or for at most 4 s (below SQLite's 5 s busy timeout: the gateway's writers wait
    // rather than fail, and below the sends' wait for their records). Held back at the
    // operator, they may not all come.
    let op1 = s.gateway.connector("op1").expect("op1").clone();
    let hold = async {
        while op1.counters.receipts.load(Ordering::Relaxed) < 5000
            && locked_at.elapsed() < Duration::from_secs(4)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let received = op1.counters.receipts.load(Ordering::Relaxed);
        release(lock).await;
        received
    };
    let (replies, received_while_locked) = tokio::join!(sends, hold);
    let mut ids = Vec::with_capacity(MESSAGES);
    for reply in &replies {
        assert_eq!(reply.status, 202, "{reply:?}");
        for m in reply.json()["messages"].as_array().expect("messages") {
            ids.push(m["id"].as_str().expect("accepted").to_owned());
        }
    }
    assert_eq!(ids.len(), MESSAGES);
    eprintln!(
        "receipts matched while the database was locked: {received_while_locked} \
         (operator receipts answered: {})",
        SimStats::get(&s.sim.receipts_sent)
    );

    // Every message reaches its final state in the API's records (done_at is only set
    // by a stored receipt), and every one gets its webhook event.
    let deadline = Instant::now() + SETTLE;
    let want: HashSet<String> = ids.iter().cloned().collect();
    loop {
        let delivered = ids_of(&receiver, "/hook", "sms.delivered");
        if want.is_subset(&delivered) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "webhook events for {} of {MESSAGES} messages (of {} receipts sent by the \
             operator)",
            want.intersection(&delivered).count(),
            SimStats::get(&s.sim.receipts_sent)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let key = Arc::new(key);
    let s = &s;
    let not_final: Vec<String> = stream::iter(ids.iter())
        .map(|id| {
            let key = key.clone();
            async move {
                let reply = call(s, "GET", &format!("/api/v1/sms/{id}"), &key, "").await;
                assert_eq!(reply.status, 200, "{reply:?}");
                let m = reply.json();
                (m["status"] != "delivered" || m["done_at"].is_null()).then(|| m.to_string())
            }
        })
        .buffer_unordered(16)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    assert!(
        not_final.is_empty(),
        "{} messages not final, e.g. {:?}",
        not_final.len(),
        not_final.first()
    );
    // Each message's event once per webhook, not more.
    let events = receiver.at("/hook").len();
    assert!(events >= MESSAGES, "{events}");
}

/// A send is answered before its record reaches the database; a receipt that comes
/// before it does moves the record in memory, and is answered to the operator only
/// once the record is stored with it (the journal holds the record only as accepted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_is_answered_only_once_its_record_is_stored() {
    let s = Setup::start_v1().await;
    let key = key(&s, "u3").await;
    let lock = lock_database(&s).await;
    let reply = call(
        &s,
        "POST",
        "/api/v1/sms/send",
        &key,
        r#"{"to":"255700000042","text":"held"}"#,
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let id = reply.json()["messages"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let op1 = s.gateway.connector("op1").expect("op1").clone();
    let deadline = Instant::now() + SETTLE;
    while op1.counters.receipts.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "no receipt came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Well below SQLite's 5 s busy timeout: the writer still waits for the lock.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        SimStats::get(&s.sim.receipts_sent),
        0,
        "a receipt was answered before its record was stored"
    );
    release(lock).await;
    while SimStats::get(&s.sim.receipts_sent) == 0 {
        assert!(Instant::now() < deadline, "the receipt was never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row = s.v1.as_ref().expect("v1").db().message("u3", &id).await;
    let row = row.expect("query").expect("stored");
    assert_eq!(row.status, "delivered", "{row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mo_is_answered_only_once_its_webhook_event_is_stored() {
    let s = Setup::start_v1_with_mo(50.0).await;
    let key = key(&s, "u1").await;
    let receiver = Receiver::start(&s.shutdown, 200).await;
    register(&s, &key, &format!("{}/mo", receiver.base), &["sms.mo"]).await;
    let stats = s.sim.clone();
    // MO answered before the webhook existed have no event: counted from here on.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before_webhook = SimStats::get(&stats.mo_acked);
    common::wait_until(|| SimStats::get(&stats.mo_acked) >= before_webhook + 3).await;

    // While its event cannot be written, no MO is answered: a crash now would leave
    // them with the operator, who sends them again, rather than lose their events.
    let lock = lock_database(&s).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked_at_lock = SimStats::get(&stats.mo_acked);
    let sent_at_lock = SimStats::get(&stats.mo_sent);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent_while_locked = SimStats::get(&stats.mo_sent) - sent_at_lock;
    let acked_while_locked = SimStats::get(&stats.mo_acked) - acked_at_lock;
    release(lock).await;
    assert!(sent_while_locked >= 10, "the operator kept sending MO");
    assert_eq!(
        acked_while_locked, 0,
        "MO answered while their webhook events could not be stored"
    );

    // Once written, they are answered, and every MO answered has its event.
    common::wait_until(|| SimStats::get(&stats.mo_acked) >= acked_at_lock + sent_while_locked)
        .await;
    let acked = (SimStats::get(&stats.mo_acked) - before_webhook) as usize;
    let path = s.dir.as_ref().expect("dir").path().join("api.db");
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connection");
    let stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM api_webhook_events WHERE event = 'sms.mo'")
            .fetch_one(&mut conn)
            .await
            .expect("count");
    assert!(
        stored as usize >= acked,
        "{acked} MO answered, {stored} events stored"
    );
    common::wait_until(|| receiver.at("/mo").len() >= acked).await;
}
