//! What the process tests share: a real `smsgw` process with a config of the test's own,
//! a client bound over SMPP that records what it gets, and the billing CLI. Operators are
//! the test kit's (`smpp-testkit`).

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::{
    collections::{HashMap, HashSet},
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use smpp_core::{
    BindKind,
    client::{
        Inbound, SubmitOutcome, SubmitRequest, SubmitResult, Uplink, UplinkConfig, UplinkHandler,
    },
    receipt,
    rusmpp::{
        CommandStatus,
        pdus::SubmitSm,
        types::{COctetString, OctetString},
        values::RegisteredDelivery,
    },
};
use smpp_testkit::{
    operator::Sim,
    sim::{Record, SimConfig},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(60);

/// A directory for the test's stores and logs, removed with the guard; with
/// `FAULT_KEEP_LOGS` set it is kept (and its path printed) for a look after a failure.
pub fn test_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    if std::env::var("FAULT_KEEP_LOGS").is_ok() {
        std::mem::forget(dir);
        eprintln!("test dir: {}", root.display());
        return (None, root);
    }
    (Some(dir), root)
}

/// One HTTP/1.1 request with a bearer key and `Connection: close`: the status and the
/// body (None while nothing listens).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer.split("\r\n\r\n").nth(1)?.to_owned();
    Some((status, body))
}

/// Waits until something answers HTTP at `addr` (`/health/live`).
pub fn wait_live(addr: SocketAddr) {
    let deadline = Instant::now() + WAIT;
    while http(addr, "GET", "/health/live", "", "").is_none() {
        assert!(Instant::now() < deadline, "smsgw never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The secret `smsgw apikey create` printed.
pub fn shown_secret(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("secret (shown once): "))
        .expect("the secret")
        .to_owned()
}

/// The first `"id"` in a JSON text.
pub fn first_id(json: &str) -> String {
    json.split("\"id\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("an id")
        .to_owned()
}

pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The gateway's configuration for these tests; `storage` is the billing store's URL.
pub fn write_config(
    dir: &Path,
    gateway: SocketAddr,
    operator: SocketAddr,
    storage: &str,
    http: SocketAddr,
) -> std::path::PathBuf {
    write_config_with(dir, gateway, operator, storage, http, "")
}

/// `storage_extra`: more lines for the `[storage]` section.
pub fn write_config_with(
    dir: &Path,
    gateway: SocketAddr,
    operator: SocketAddr,
    storage: &str,
    http: SocketAddr,
    storage_extra: &str,
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

# Tests run several gateways at once: none takes the default admin port.
[admin]
enabled = false

[durability]
mode = "fsync"
dir = "journal"

[storage]
url = "{storage}"
{storage_extra}

[[router.groups]]
gid = "g"

[[router.users]]
uid = "bank"
username = "bank"
password = "secret"
gid = "g"
quotas = {{ balance = "1000.00" }}

[[router.connectors]]
cid = "sim"
host = "127.0.0.1"
port = {port}
con_loss_delay_secs = 0.2
con_fail_delay_secs = 0.2

[[router.mt_routes]]
order = 0
type = "DefaultRoute"
connector = "smppc(sim)"
rate = "0.01"
"#,
            port = operator.port()
        ),
    )
    .unwrap();
    path
}

pub struct Gateway(pub Child);

impl Gateway {
    pub fn start(config: &Path, log: &Path) -> Self {
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_smsgw"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start smsgw");
        Self(child)
    }

    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Default)]
pub struct Client {
    /// message number → our message id, for every ESME_ROK.
    pub accepted: Mutex<HashMap<u64, String>>,
    pub answered: Mutex<HashSet<u64>>,
    pub receipts: Mutex<HashSet<String>>,
    /// Why each connect or bind failed, in order.
    pub failures: Mutex<Vec<String>>,
}

impl UplinkHandler for Client {
    fn on_submit_result(&self, result: SubmitResult) {
        if let SubmitOutcome::Accepted { message_id } = result.outcome {
            self.accepted.lock().unwrap().insert(result.tag, message_id);
        }
        self.answered.lock().unwrap().insert(result.tag);
    }

    async fn on_inbound(&self, inbound: Inbound) -> CommandStatus {
        if let Inbound::DeliverSm(pdu) = inbound
            && let Some(r) = receipt::parse(pdu.short_message().as_ref())
        {
            self.receipts.lock().unwrap().insert(r.id);
        }
        CommandStatus::EsmeRok
    }

    fn on_state(&self, state: smpp_core::client::LinkState) {
        if let smpp_core::client::LinkState::Disconnected { reason } = state {
            self.failures.lock().unwrap().push(reason);
        }
    }
}

pub fn submit(n: u64) -> SubmitRequest {
    let pdu = SubmitSm::builder()
        .source_addr(COctetString::from_string("BANK".to_owned()).unwrap())
        .destination_addr(COctetString::from_string(format!("99890{n:07}")).unwrap())
        .registered_delivery(RegisteredDelivery::from(1))
        .short_message(OctetString::from_vec(format!("OTP {n}").into_bytes()).unwrap())
        .build();
    SubmitRequest::new(n, pdu)
}

/// Polls `done` until it holds; panics after [`WAIT`] (a process takes longer).
pub async fn wait_until(what: &str, done: impl Fn() -> bool) {
    smpp_testkit::wait_for(what, WAIT, done).await;
}

/// What reached an operator (several operators in turn may write to one).
pub type Reached = Record;

/// The test kit's simulator on a free port until `stop`: its address, and its record of
/// what reaches it.
pub async fn start_operator(stop: &CancellationToken, config: SimConfig) -> (SocketAddr, Reached) {
    let sim = Sim::start(stop, config).await;
    (sim.addr(), sim.submits)
}

/// Each destination that reached the operator, and when it first did.
pub fn first_arrivals(reached: &Reached) -> HashMap<String, Instant> {
    reached.with(|all| {
        let mut first = HashMap::new();
        for arrival in all {
            let destination = arrival.submit.pdu.destination_addr.as_str().to_owned();
            first.entry(destination).or_insert(arrival.at);
        }
        first
    })
}

/// The destinations that reached the operator.
pub fn destinations(reached: &Reached) -> HashSet<String> {
    first_arrivals(reached).into_keys().collect()
}

/// Every accepted message number's destination reached the operator.
pub async fn wait_all_reached(accepted: &HashMap<u64, String>, reached: &Reached) {
    wait_until("every accepted message at the operator", || {
        let reached = destinations(reached);
        accepted
            .keys()
            .all(|n| reached.contains(&format!("99890{n:07}")))
    })
    .await;
}

/// `smsgw <args> --config <config>`: success and stdout.
pub fn smsgw_cli(config: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_smsgw"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

pub fn assert_reconciles(config: &Path) {
    let (clean, report) = smsgw_cli(config, &["billing", "reconcile"]);
    assert!(clean, "reconcile found discrepancies:\n{report}");
}

/// A client bound as `kind`, counting what it receives; `rx` feeds its submits.
pub fn bind_client(
    gateway: SocketAddr,
    kind: BindKind,
    rx: mpsc::Receiver<SubmitRequest>,
    client: Arc<Client>,
    stop: &CancellationToken,
) -> (
    tokio::task::JoinHandle<()>,
    Arc<smpp_core::client::UplinkStats>,
) {
    bind_client_as(gateway, kind, ("bank", "secret"), rx, client, stop)
}

/// [`bind_client`] with other credentials: (system_id, password).
pub fn bind_client_as(
    gateway: SocketAddr,
    kind: BindKind,
    (system_id, password): (&str, &str),
    rx: mpsc::Receiver<SubmitRequest>,
    client: Arc<Client>,
    stop: &CancellationToken,
) -> (
    tokio::task::JoinHandle<()>,
    Arc<smpp_core::client::UplinkStats>,
) {
    let uplink = Uplink::new(
        UplinkConfig {
            address: gateway.to_string(),
            system_id: system_id.into(),
            password: password.into(),
            bind: kind,
            window: 32,
            reconnect_on_failure_delay: Duration::from_millis(100),
            ..UplinkConfig::default()
        },
        rx,
        client,
    );
    let stats = uplink.stats();
    (tokio::spawn(uplink.run(stop.clone())), stats)
}
