//! `smsgw admin import-jasmin` against a real `smsgw serve`, with the store that Jasmin
//! 0.11.1's own code wrote (tests/fixtures/jasmin): the dry run changes nothing, the
//! import brings users, groups, connectors, filters and routes in as one audited change,
//! a Jasmin user binds with the password it had in Jasmin (Jasmin kept only its MD5),
//! and its message follows the imported routes to the operator.

mod support;

use std::{
    path::Path,
    process::{Command, Output},
    sync::Arc,
};

use smpp_core::{
    BindKind,
    rusmpp::{
        pdus::SubmitSm,
        types::{COctetString, OctetString},
    },
};
use smpp_testkit::sim::SimConfig;
use support::{Client, Gateway, bind_client_as, free_port, start_operator, wait_until};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "import-test-token";

fn admin(endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smsgw"))
        .args(["admin", "--endpoint", endpoint, "--token", TOKEN])
        .args(args)
        .env_remove("SMSGW_ADMIN_TOKEN")
        .output()
        .expect("run smsgw admin")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn uids(endpoint: &str) -> Vec<String> {
    let users: serde_json::Value =
        serde_json::from_str(&ok(&admin(endpoint, &["--json", "user", "list"]))).expect("JSON");
    users
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|u| u["uid"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jasmin_store_is_imported_and_its_user_sends_as_before() {
    let stop = CancellationToken::new();
    let (operator, reached) = start_operator(&stop, SimConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (gateway, admin_addr) = (free_port(), free_port());
    let config = dir.path().join("smsgw.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[smpp]
listen = "{gateway}"
[http]
listen = "{http}"
[admin]
listen = "{admin_addr}"
tokens = [{{ name = "migration", token = "{TOKEN}" }}]
[durability]
mode = "memory"
dir = "journal"
[storage]
url = "sqlite://smsgw.db"
[[router.groups]]
gid = "g"
[[router.users]]
uid = "bank"
username = "bank"
password = "secret"
gid = "g"
"#,
            http = free_port(),
        ),
    )
    .expect("config");
    let _gateway = Gateway::start(&config, &dir.path().join("serve.log"));
    let endpoint = format!("http://{admin_addr}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !admin(&endpoint, &["user", "list"]).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "admin API never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let store = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jasmin");
    let store = store.to_str().expect("path");

    // The dry run: the report and the diff, nothing applied.
    let dry = admin(&endpoint, &["import-jasmin", store, "--dry-run"]);
    let diff = ok(&dry);
    let said = String::from_utf8_lossy(&dry.stderr).into_owned();
    assert!(said.contains("read jcli-prod.router-users"), "{said}");
    assert!(
        said.contains("importing 2 groups, 3 users, 2 SMPP connectors, 1 HTTP connectors"),
        "{said}"
    );
    assert!(
        said.contains("not imported: mt route 40: EvalPyFilter runs Python"),
        "{said}"
    );
    assert!(
        said.contains("connectors smppc01 were started in Jasmin: imported stopped"),
        "{said}"
    );
    assert!(diff.contains("user_1"), "{diff}");
    assert_eq!(uids(&endpoint), ["bank"]);

    // The import.
    let done = ok(&admin(&endpoint, &["import-jasmin", store, "--yes"]));
    assert!(done.contains("applied"), "{done}");
    let mut found = uids(&endpoint);
    found.sort();
    assert_eq!(found, ["bank", "user_1", "user_2", "user_3"]);
    let routes = ok(&admin(&endpoint, &["route", "mt", "list"]));
    assert!(
        routes.contains("FailoverMTRoute") && routes.contains("f_tag_21"),
        "{routes}"
    );

    // Both operators of the store are made this test's simulator (TLS off: it has
    // none), then started: whichever route alice's message takes reaches it.
    for cid in ["smppc01", "smppc02"] {
        ok(&admin(
            &endpoint,
            &[
                "connector",
                "edit",
                "--cid",
                cid,
                "--host",
                "127.0.0.1",
                "--port",
                &operator.port().to_string(),
                "--config-json",
                r#"{"tls": false}"#,
            ],
        ));
        ok(&admin(&endpoint, &["connector", "start", "--cid", cid]));
    }

    // alice binds with her Jasmin password; a wrong one is refused.
    let (tx, rx) = mpsc::channel(8);
    let client = Arc::new(Client::default());
    let (_task, stats) = bind_client_as(
        gateway,
        BindKind::Transceiver,
        ("alice", "alicepwd"),
        rx,
        client.clone(),
        &stop,
    );
    // Her value filters: destination 33 or 216, sender ACME, plain text.
    let pdu = SubmitSm::builder()
        .source_addr(COctetString::from_string("ACME".to_owned()).expect("addr"))
        .destination_addr(COctetString::from_string("21612345678".to_owned()).expect("addr"))
        .short_message(OctetString::from_vec(b"Hello from Jasmin".to_vec()).expect("text"))
        .build();
    tx.send(smpp_core::client::SubmitRequest::new(1, pdu))
        .await
        .expect("queue");
    wait_until("alice's submit answered", || {
        !client.answered.lock().unwrap().is_empty()
    })
    .await;
    assert!(
        client.accepted.lock().unwrap().contains_key(&1),
        "refused: {stats:?}"
    );
    wait_until("the operator got it", || reached.len() == 1).await;

    let (tx_bad, rx_bad) = mpsc::channel(1);
    let refused = Arc::new(Client::default());
    let (_bad, bad_stats) = bind_client_as(
        gateway,
        BindKind::Transceiver,
        ("alice", "alicepwd2"),
        rx_bad,
        refused.clone(),
        &stop,
    );
    wait_until("the wrong password refused", || {
        !refused.failures.lock().unwrap().is_empty()
    })
    .await;
    assert!(
        !bad_stats.bound.load(std::sync::atomic::Ordering::Relaxed),
        "a wrong password binds"
    );
    drop(tx_bad);
    stop.cancel();
}
