//! `smsgw admin connector …` against a real `smsgw serve` (fsync journal, SQLite store)
//! and SMSC simulators: a connector added and routed to live carries messages; stopped,
//! it keeps what clients send, journaled, through a restart of the gateway; started
//! again, all of it arrives; a connector a route uses cannot be removed.

mod support;

use std::{
    net::SocketAddr,
    path::Path,
    process::{Command, Output},
    sync::Arc,
    time::{Duration, Instant},
};

use smpp_core::BindKind;
use smpp_testkit::sim::SimConfig;
use support::{Client, Gateway, bind_client, free_port, start_operator, submit, wait_until};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "conn-cli-token";

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

fn write_config(
    dir: &Path,
    gateway: SocketAddr,
    admin: SocketAddr,
    sim_a: u16,
) -> std::path::PathBuf {
    let path = dir.join("smsgw.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[smpp]
listen = "{gateway}"
[http]
listen = "{http}"
[admin]
listen = "{admin}"
tokens = [{{ name = "ops", token = "{TOKEN}" }}]
[durability]
mode = "fsync"
dir = "journal"
[storage]
url = "sqlite://smsgw.db"
[shutdown]
drain_timeout_secs = 1
[[router.groups]]
gid = "g"
[[router.users]]
uid = "bank"
username = "bank"
password = "secret"
gid = "g"
[[router.connectors]]
cid = "sim"
port = {sim_a}
con_loss_delay_secs = 0.2
con_fail_delay_secs = 0.2
[[router.mt_routes]]
order = 0
type = "DefaultRoute"
connector = "sim"
"#,
            http = free_port(),
        ),
    )
    .expect("write config");
    path
}

/// Waits for the admin API, then returns `connector list`'s output.
async fn connectors_when_up(endpoint: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = admin(endpoint, &["connector", "list"]);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "admin API never answered: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `connector list` row of `cid`, split into its cells.
fn row(list: &str, cid: &str) -> Vec<String> {
    list.lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|cells| cells.first().map(String::as_str) == Some(cid))
        .unwrap_or_else(|| panic!("no row for {cid} in\n{list}"))
}

async fn sim(stop: &CancellationToken) -> (u16, support::Reached) {
    let (addr, reached) = start_operator(stop, SimConfig::default()).await;
    (addr.port(), reached)
}

fn reached(reached: &support::Reached, n: u64) -> bool {
    reached.reached(&format!("99890{n:07}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_connector_keeps_messages_through_a_restart_and_delivers_them_when_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sims = CancellationToken::new();
    let _sims = sims.clone().drop_guard();
    let (port_a, at_a) = sim(&sims).await;
    let (port_b, at_b) = sim(&sims).await;
    let (gateway_addr, admin_addr) = (free_port(), free_port());
    let endpoint = format!("http://{admin_addr}");
    let config = write_config(dir.path(), gateway_addr, admin_addr, port_a);
    let mut gateway = Gateway::start(&config, &dir.path().join("serve-1.log"));
    connectors_when_up(&endpoint).await;

    let port_b = port_b.to_string();
    let added = ok(&admin(
        &endpoint,
        &[
            "connector",
            "add",
            "--cid",
            "opb",
            "--host",
            "127.0.0.1",
            "--port",
            &port_b,
            "--username",
            "opb",
            "--password",
            "pw",
            "--config-json",
            r#"{"con_fail_delay_secs": 0.2, "con_loss_delay_secs": 0.2}"#,
        ],
    ));
    assert!(added.contains("opb"), "{added}");
    ok(&admin(
        &endpoint,
        &[
            "filter",
            "add",
            "--fid",
            "uz",
            "--type",
            "DestinationAddrFilter",
            "--value",
            "^99890",
        ],
    ));
    ok(&admin(
        &endpoint,
        &[
            "route",
            "mt",
            "add",
            "--order",
            "10",
            "--type",
            "StaticMTRoute",
            "--connector",
            "opb",
            "--filter",
            "uz",
        ],
    ));

    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let (tx, rx) = mpsc::channel(64);
    let client = Arc::new(Client::default());
    let (_task, stats) = bind_client(
        gateway_addr,
        BindKind::Transceiver,
        rx,
        client.clone(),
        &stop,
    );
    wait_until("the client bound", || stats.is_bound()).await;
    tx.send(submit(1)).await.expect("send");
    wait_until("message 1 at operator B", || reached(&at_b, 1)).await;

    let stopped = ok(&admin(&endpoint, &["connector", "stop", "--cid", "opb"]));
    // cid kind target bind started bound pending …
    assert_eq!(row(&stopped, "opb")[4..6], ["false", "false"], "{stopped}");
    for n in 2..=4 {
        tx.send(submit(n)).await.expect("send");
    }
    wait_until("messages 2-4 accepted", || {
        (2..=4).all(|n| client.accepted.lock().expect("lock").contains_key(&n))
    })
    .await;
    let list = ok(&admin(&endpoint, &["connector", "list"]));
    assert_eq!(row(&list, "opb")[6], "3", "three parts wait:\n{list}");

    // A restart: the stop and the waiting messages are both still there.
    stop.cancel();
    gateway.terminate();
    let mut gateway = Gateway::start(&config, &dir.path().join("serve-2.log"));
    let list = connectors_when_up(&endpoint).await;
    let opb = row(&list, "opb");
    assert_eq!(opb[4], "false", "still stopped:\n{list}");
    assert_eq!(opb[6], "3", "still waiting:\n{list}");
    assert!((2..=4).all(|n| !reached(&at_b, n)) && !reached(&at_a, 2));

    ok(&admin(&endpoint, &["connector", "start", "--cid", "opb"]));
    wait_until("messages 2-4 at operator B", || {
        (2..=4).all(|n| reached(&at_b, n))
    })
    .await;

    let refused = admin(&endpoint, &["connector", "remove", "--cid", "opb"]);
    assert!(!refused.status.success(), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("MT route 10"), "{stderr}");
    let list = ok(&admin(&endpoint, &["connector", "list"]));
    assert_eq!(row(&list, "opb")[4..6], ["true", "true"], "{list}");
    gateway.terminate();
}
