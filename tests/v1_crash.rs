//! A REST v1 send is answered once its message and its record are in the journal; the
//! record's database write follows behind. Proved with a real `smsgw` process: while
//! another connection holds the database's write lock (the record cannot be written),
//! sends are still answered 202; the gateway is then killed with SIGKILL, and after a
//! restart every answered message has its record and reached the operator.

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use smpp_testkit::sim::SimConfig;
use sqlx::{Connection, Executor, SqliteConnection};
use tokio_util::sync::CancellationToken;

mod support;
use support::*;

const SENDS: usize = 20;

fn create_key(config: &Path) -> String {
    let (ok, out) = smsgw_cli(
        config,
        &[
            "apikey",
            "create",
            "--user",
            "bank",
            "--scopes",
            "sms:send,sms:read",
            "--rate",
            "1000000",
        ],
    );
    assert!(ok, "{out}");
    shown_secret(&out)
}

fn recipient(n: usize) -> String {
    format!("99891{n:07}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_sends_keep_their_records_across_a_kill_while_the_database_is_locked() {
    let (_dir, root) = test_dir();
    let sim_stop = CancellationToken::new();
    let (operator, reached) = start_operator(&sim_stop, SimConfig::default()).await;
    let http_addr = free_port();
    let config = write_config(
        &root,
        free_port(),
        operator,
        "sqlite://billing.db",
        http_addr,
    );
    let mut gateway = Gateway::start(&config, &root.join("first.log"));
    wait_live(http_addr);
    let key = create_key(&config);

    // Another writer holds the database: the API cannot write its records.
    let mut lock =
        SqliteConnection::connect(&format!("sqlite://{}", root.join("billing.db").display()))
            .await
            .unwrap();
    lock.execute("BEGIN IMMEDIATE").await.unwrap();

    let mut ids = Vec::new();
    for n in 0..SENDS {
        let body = format!(
            r#"{{"to":"{}","from":"BANK","text":"OTP {n}"}}"#,
            recipient(n)
        );
        let (status, answer) = tokio::task::block_in_place(|| {
            http(http_addr, "POST", "/api/v1/sms/send", &key, &body)
        })
        .expect("an answer");
        assert_eq!(status, 202, "{answer}");
        ids.push(first_id(&answer));
    }
    gateway.kill();
    drop(lock);

    let mut gateway = Gateway::start(&config, &root.join("second.log"));
    tokio::task::block_in_place(|| wait_live(http_addr));
    assert_records(http_addr, &key, &ids).await;
    wait_until("every answered message at the operator", || {
        let reached = destinations(&reached);
        (0..SENDS).all(|n| reached.contains(&recipient(n)))
    })
    .await;

    // Once written to the database, the records leave the journal: a third start finds
    // them in the database and restores none.
    tokio::time::sleep(Duration::from_millis(500)).await;
    gateway.terminate();
    let _gateway = Gateway::start(&config, &root.join("third.log"));
    tokio::task::block_in_place(|| wait_live(http_addr));
    assert_records(http_addr, &key, &ids).await;
    let third = std::fs::read_to_string(root.join("third.log")).unwrap();
    assert!(
        !third.contains("records restored from the journal"),
        "{third}"
    );
    sim_stop.cancel();
}

/// Each of `ids` has its record (GET waits for a replay to restore it).
async fn assert_records(http_addr: SocketAddr, key: &str, ids: &[String]) {
    for id in ids {
        let path = format!("/api/v1/sms/{id}");
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, body) =
                tokio::task::block_in_place(|| http(http_addr, "GET", &path, key, ""))
                    .expect("an answer");
            if status == 200 {
                assert!(body.contains(&format!("\"id\":\"{id}\"")), "{body}");
                break;
            }
            assert_eq!(status, 404, "{body}");
            assert!(Instant::now() < deadline, "the record of {id} was lost");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
