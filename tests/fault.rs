//! Nothing acknowledged is lost: the gateway (a real `smsgw` process) is killed with
//! SIGKILL while a client pushes messages with receipts requested, then started again.
//! Every message that got ESME_ROK must reach the operator (the simulator) at least once,
//! a receipt for every one of them must reach the client, and billing must reconcile.

use std::{collections::HashSet, net::SocketAddr, process::Command, sync::Arc, time::Duration};

use smpp_core::{
    BindKind,
    client::{Uplink, UplinkConfig},
};
use smpp_testkit::{operator::Operator, sim::SimConfig};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod support;
use support::*;

const MESSAGES: u64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_loses_no_acknowledged_message_nor_receipt() {
    let (_dir, root) = test_dir();
    // The operator: records what reaches it, sends a receipt for every message.
    let sim_stop = CancellationToken::new();
    let (operator, reached) = start_operator(
        &sim_stop,
        SimConfig {
            receipt_delay: Duration::from_millis(50),
            ..SimConfig::default()
        },
    )
    .await;

    let gateway_addr = free_port();
    let config = write_config(
        root.as_path(),
        gateway_addr,
        operator,
        "sqlite://billing.db",
        free_port(),
    );
    let mut gateway = Gateway::start(&config, &root.as_path().join("first.log"));

    let client = Arc::new(Client::default());
    let (tx, rx) = mpsc::channel(MESSAGES as usize);
    let uplink = Uplink::new(
        UplinkConfig {
            address: gateway_addr.to_string(),
            system_id: "bank".into(),
            password: "secret".into(),
            bind: BindKind::Transceiver,
            window: 32,
            reconnect_on_loss_delay: Duration::from_millis(100),
            reconnect_on_failure_delay: Duration::from_millis(100),
            max_reconnect_delay: Duration::from_millis(500),
            response_timeout: Duration::from_secs(5),
            max_attempts: 20,
            ..UplinkConfig::default()
        },
        rx,
        client.clone(),
    );
    let client_stop = CancellationToken::new();
    let client_task = tokio::spawn(uplink.run(client_stop.clone()));
    for n in 0..MESSAGES {
        tx.send(submit(n)).await.unwrap();
    }

    wait_until("a third of the messages accepted", || {
        client.accepted.lock().unwrap().len() as u64 >= MESSAGES / 3
    })
    .await;
    gateway.kill(); // SIGKILL, mid-stream
    let accepted_before_kill = client.accepted.lock().unwrap().len();
    let mut gateway = Gateway::start(&config, &root.as_path().join("second.log"));

    wait_until("an answer for every message", || {
        client.answered.lock().unwrap().len() as u64 == MESSAGES
    })
    .await;
    let accepted = client.accepted.lock().unwrap().clone();
    assert_eq!(
        accepted.len() as u64,
        MESSAGES,
        "every message accepted in the end"
    );
    assert!(accepted_before_kill > 0);

    wait_all_reached(&accepted, &reached).await;
    let missing = || {
        let receipts = client.receipts.lock().unwrap();
        accepted
            .values()
            .filter(|id| !receipts.contains(*id))
            .count()
    };
    let receipts_in =
        async { wait_until("a receipt for every accepted message", || missing() == 0).await };
    if tokio::time::timeout(WAIT, receipts_in).await.is_err() || missing() > 0 {
        panic!("{} of {} receipts never arrived", missing(), accepted.len());
    }

    client_stop.cancel();
    let _ = client_task.await;
    gateway.terminate();
    sim_stop.cancel();

    assert_reconciles(&config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_operator_delays_messages_but_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let operator_addr = free_port();
    let reached = Reached::new();
    let mut operator = Operator::start_into(operator_addr, SimConfig::default(), reached.clone());

    let gateway_addr = free_port();
    let config = write_config(
        &root,
        gateway_addr,
        operator_addr,
        "sqlite://billing.db",
        free_port(),
    );
    let mut gateway = Gateway::start(&config, &root.join("gateway.log"));

    let client = Arc::new(Client::default());
    let (tx, rx) = mpsc::channel(MESSAGES as usize);
    let uplink = Uplink::new(
        UplinkConfig {
            address: gateway_addr.to_string(),
            system_id: "bank".into(),
            password: "secret".into(),
            bind: BindKind::Transceiver,
            window: 32,
            reconnect_on_failure_delay: Duration::from_millis(100),
            max_reconnect_delay: Duration::from_millis(500),
            ..UplinkConfig::default()
        },
        rx,
        client.clone(),
    );
    let client_stop = CancellationToken::new();
    let client_task = tokio::spawn(uplink.run(client_stop.clone()));
    for n in 0..MESSAGES {
        tx.send(submit(n)).await.unwrap();
    }
    wait_until("a third at the operator", || {
        destinations(&reached).len() as u64 >= MESSAGES / 3
    })
    .await;
    operator.kill();
    // The gateway keeps accepting into its queue while the operator is away.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _operator = Operator::start_into(operator_addr, SimConfig::default(), reached.clone());

    wait_until("an answer for every message", || {
        client.answered.lock().unwrap().len() as u64 == MESSAGES
    })
    .await;
    let accepted = client.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len() as u64, MESSAGES, "every message accepted");
    wait_all_reached(&accepted, &reached).await;

    client_stop.cancel();
    let _ = client_task.await;
    gateway.terminate();
    assert_reconciles(&config);
}

/// A PostgreSQL cluster of the test's own, so that it can be stopped and started without
/// touching the server other tests use. Needs the server binaries (initdb, pg_ctl) named
/// by SMSGW_TEST_PG_BINDIR, which `scripts/test` sets.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl PrivatePostgres {
    const BINDIR_ENV: &str = "SMSGW_TEST_PG_BINDIR";

    fn start() -> Option<Self> {
        let Ok(bin) = std::env::var(Self::BINDIR_ENV) else {
            eprintln!("skipped: {} not set", Self::BINDIR_ENV);
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        if running_as_root() {
            // PostgreSQL refuses to run as root: the cluster belongs to `postgres`.
            let status = Command::new("chown")
                .args(["postgres:"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown the cluster directory to postgres");
        }
        let pg = Self {
            dir,
            bin: bin.into(),
            port: free_port().port(),
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        pg.start_server();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Like a crash or a network cut: no clean shutdown of the connections.
    fn stop_server(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// `tool` from the server binaries, as `postgres` when we are root.
    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let output = self
            .command(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        assert!(
            output.status.success(),
            "{tool} {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `GET path` on the gateway's HTTP listener: the status code, or None if unreachable.
async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: smsgw\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.ok()?;
    let answer = String::from_utf8_lossy(&answer);
    answer.split(' ').nth(1)?.parse().ok()
}

async fn wait_for_ready(addr: SocketAddr, want: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = http_status(addr, "/health/ready").await;
        if got == Some(want) {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("/health/ready answered {got:?}, waited for {want}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_reported_and_loses_nothing() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();

    let sim_stop = CancellationToken::new();
    let (operator, reached) = start_operator(&sim_stop, SimConfig::default()).await;

    let gateway_addr = free_port();
    let http = free_port();
    // A small billing buffer, so that the outage fills it and clients are throttled.
    let config = write_config_with(
        &root,
        gateway_addr,
        operator,
        &pg.url(),
        http,
        "buffer_capacity = 2000",
    );
    let mut gateway = Gateway::start(&config, &root.join("gateway.log"));
    wait_for_ready(http, 200).await;

    let client = Arc::new(Client::default());
    let (tx, rx) = mpsc::channel(MESSAGES as usize);
    let uplink = Uplink::new(
        UplinkConfig {
            address: gateway_addr.to_string(),
            system_id: "bank".into(),
            password: "secret".into(),
            bind: BindKind::Transceiver,
            window: 32,
            // Throttled submits are retried until the store is back.
            max_attempts: 10_000,
            max_throttle_pause: Duration::from_millis(300),
            ..UplinkConfig::default()
        },
        rx,
        client.clone(),
    );
    let client_stats = uplink.stats();
    let client_stop = CancellationToken::new();
    let client_task = tokio::spawn(uplink.run(client_stop.clone()));
    let half = MESSAGES / 2;
    let answered = |n: u64| {
        let client = client.clone();
        move || client.answered.lock().unwrap().len() as u64 >= n
    };
    for n in 0..half {
        tx.send(submit(n)).await.unwrap();
    }
    wait_until("answers before the outage", answered(half)).await;
    // Let billing write what the first half left (it flushes every 10 ms).
    tokio::time::sleep(Duration::from_millis(300)).await;

    pg.stop_server();
    for n in half..MESSAGES {
        tx.send(submit(n)).await.unwrap();
    }
    // The gateway keeps accepting within its billing buffer and says it is degraded;
    // once the buffer is full, clients are throttled (and retry), not refused.
    wait_for_ready(http, 503).await;
    wait_until("throttling once the billing buffer is full", || {
        client_stats
            .throttled
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    })
    .await;
    let during = client.accepted.lock().unwrap().len() as u64;
    assert!(
        during > half && during < MESSAGES,
        "accepted within the buffer during the outage: {during}"
    );

    pg.start_server();
    wait_for_ready(http, 200).await;
    wait_until("answers after the outage", answered(MESSAGES)).await;
    assert_eq!(
        client.accepted.lock().unwrap().len() as u64,
        MESSAGES,
        "every message accepted in the end"
    );
    let accepted = client.accepted.lock().unwrap().clone();
    wait_all_reached(&accepted, &reached).await;

    client_stop.cancel();
    let _ = client_task.await;
    gateway.terminate();
    sim_stop.cancel();

    let smsgw = |args: &[&str]| smsgw_cli(&config, args);
    assert_reconciles(&config);
    // Every message of both halves is in the CDR, charged once.
    let (year, month) = billing::recovery::year_month(billing::ledger::now_micros());
    let (ok, invoice) = smsgw(&[
        "billing",
        "invoice",
        "--account",
        "1",
        "--year",
        &year.to_string(),
        "--month",
        &month.to_string(),
    ]);
    assert!(ok, "invoice failed:\n{invoice}");
    let total = invoice
        .lines()
        .find(|l| l.contains(",TOTAL,"))
        .unwrap_or_else(|| panic!("no TOTAL line in:\n{invoice}"));
    let messages: u64 = total.split(',').nth(6).unwrap().parse().unwrap();
    assert_eq!(messages, MESSAGES, "{invoice}");
    // The balance top-up and this start's configuration are in the audit log.
    let (ok, audit) = smsgw(&["billing", "audit"]);
    assert!(ok);
    assert!(audit.contains("\tconfig.loaded\t"), "{audit}");
    assert!(audit.contains("\tbalance.top_up\taccount:1\t"), "{audit}");
}

/// Receipts kept for a client that was not bound go out when it binds, and leave the
/// journal once it answers them: a restart does not send them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_receipts_answered_after_a_bind_are_not_sent_again_after_a_restart() {
    const N: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let sim_stop = CancellationToken::new();
    let (operator, _) = start_operator(&sim_stop, SimConfig::default()).await;
    let gateway_addr = free_port();
    let config = write_config(
        &root,
        gateway_addr,
        operator,
        "sqlite://billing.db",
        free_port(),
    );
    let mut gateway = Gateway::start(&config, &root.join("first.log"));

    // A transmitter submits; no receiver is bound, so every receipt is kept.
    let sender = Arc::new(Client::default());
    let (tx, rx) = mpsc::channel(N as usize);
    let sender_stop = CancellationToken::new();
    let (sender_task, _) = bind_client(
        gateway_addr,
        BindKind::Transmitter,
        rx,
        sender.clone(),
        &sender_stop,
    );
    for n in 0..N {
        tx.send(submit(n)).await.unwrap();
    }
    wait_until("every message accepted", || {
        sender.accepted.lock().unwrap().len() as u64 == N
    })
    .await;
    let accepted: HashSet<String> = sender.accepted.lock().unwrap().values().cloned().collect();

    // A receiver binds and answers every kept receipt.
    let receiver = Arc::new(Client::default());
    let (_none, rx) = mpsc::channel(1);
    let receiver_stop = CancellationToken::new();
    let (receiver_task, _) = bind_client(
        gateway_addr,
        BindKind::Receiver,
        rx,
        receiver.clone(),
        &receiver_stop,
    );
    wait_until("every kept receipt at the receiver", || {
        let receipts = receiver.receipts.lock().unwrap();
        accepted.iter().all(|id| receipts.contains(id))
    })
    .await;
    // Give the answers time to reach the journal, then restart.
    tokio::time::sleep(Duration::from_millis(300)).await;
    receiver_stop.cancel();
    sender_stop.cancel();
    let _ = receiver_task.await;
    let _ = sender_task.await;
    gateway.terminate();
    let mut gateway = Gateway::start(&config, &root.join("second.log"));

    let again = Arc::new(Client::default());
    let (_none, rx) = mpsc::channel(1);
    let again_stop = CancellationToken::new();
    let (again_task, again_stats) = bind_client(
        gateway_addr,
        BindKind::Receiver,
        rx,
        again.clone(),
        &again_stop,
    );
    // Bound (the store is flushed to a bind as it binds), then a moment more.
    wait_until("the receiver bound after the restart", || {
        again_stats.is_bound()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        again.receipts.lock().unwrap().len(),
        0,
        "receipts answered before the restart came again"
    );
    again_stop.cancel();
    let _ = again_task.await;
    gateway.terminate();
    sim_stop.cancel();
}

/// Not a fault: the audit trail of a real process. A certificate reload on SIGHUP and a
/// configuration edited between two starts each leave a line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_reloads_and_configuration_changes_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let write_cert = || {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(root.join("cert.pem"), generated.cert.pem()).unwrap();
        std::fs::write(root.join("key.pem"), generated.signing_key.serialize_pem()).unwrap();
    };
    write_cert();
    let http = free_port();
    let config = root.join("smsgw.toml");
    let text = |window: u32| {
        format!(
            "[smpp]\nlisten = \"{}\"\ntls_listen = \"{}\"\nwindow = {window}\n\n\
             [tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\n[http]\nlisten = \"{http}\"\n\n\
             [storage]\nurl = \"sqlite://billing.db\"\n",
            free_port(),
            free_port(),
        )
    };
    let audit = |action: &str| {
        let (ok, lines) = smsgw_cli(&config, &["billing", "audit", "--action", action]);
        assert!(ok, "smsgw billing audit failed");
        lines
    };

    std::fs::write(&config, text(64)).unwrap();
    let mut gateway = Gateway::start(&config, &root.join("first.log"));
    wait_for_ready(http, 200).await;
    write_cert();
    let status = Command::new("kill")
        .args(["-HUP", &gateway.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_until("the reload in the audit log", || {
        audit("tls.reload").contains("\treloaded")
    })
    .await;
    gateway.terminate();

    // The same file again, then one with another window.
    let mut gateway = Gateway::start(&config, &root.join("second.log"));
    wait_for_ready(http, 200).await;
    gateway.terminate();
    std::fs::write(&config, text(128)).unwrap();
    let mut gateway = Gateway::start(&config, &root.join("third.log"));
    wait_for_ready(http, 200).await;
    gateway.terminate();

    let loads = audit("config.loaded");
    let changed: Vec<&str> = loads
        .lines()
        .map(|l| {
            let detail = l.rsplit('\t').next().unwrap();
            detail.split(' ').next().unwrap()
        })
        .collect();
    // Newest first.
    assert_eq!(
        changed,
        ["changed=smpp", "changed=none", "changed=first-load"],
        "{loads}"
    );
    assert!(!loads.contains("window"), "values are not logged: {loads}");
}
