//! Nothing acknowledged is lost: the gateway (a real `smsgw` process) is killed with
//! SIGKILL while a client pushes messages with receipts requested, then started again.
//! Every message that got ESME_ROK must reach the operator (the simulator) at least once,
//! a receipt for every one of them must reach the client, and billing must reconcile.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use benches::sim::{SimConfig, Simulator};
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
use tokio::{net::TcpListener, sync::mpsc};
use tokio_util::sync::CancellationToken;

const MESSAGES: u64 = 3_000;
const WAIT: Duration = Duration::from_secs(60);

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn write_config(dir: &Path, gateway: SocketAddr, operator: SocketAddr) -> std::path::PathBuf {
    let path = dir.join("smsgw.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[smpp]
listen = "{gateway}"

[durability]
mode = "fsync"
dir = "journal"

[storage]
url = "sqlite://billing.db"

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

struct Gateway(Child);

impl Gateway {
    fn start(config: &Path, log: &Path) -> Self {
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

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    fn terminate(&mut self) {
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
struct Client {
    /// message number → our message id, for every ESME_ROK.
    accepted: Mutex<HashMap<u64, String>>,
    answered: Mutex<HashSet<u64>>,
    receipts: Mutex<HashSet<String>>,
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
}

fn submit(n: u64) -> SubmitRequest {
    let pdu = SubmitSm::builder()
        .source_addr(COctetString::from_string("BANK".to_owned()).unwrap())
        .destination_addr(COctetString::from_string(format!("99890{n:07}")).unwrap())
        .registered_delivery(RegisteredDelivery::from(1))
        .short_message(OctetString::from_vec(format!("OTP {n}").into_bytes()).unwrap())
        .build();
    SubmitRequest::new(n, pdu)
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_loses_no_acknowledged_message_nor_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    if std::env::var("FAULT_KEEP_LOGS").is_ok() {
        // Keep the gateway logs and stores for a look after a failure.
        std::mem::forget(dir);
        eprintln!("test dir: {}", root.display());
    }
    // The operator: records what reaches it, sends a receipt for every message.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let operator = listener.local_addr().unwrap();
    let mut sim = Simulator::new(SimConfig {
        receipt_delay: Duration::from_millis(50),
        ..SimConfig::default()
    });
    let mut recorded = sim.record_submits();
    let reached: Arc<Mutex<HashSet<String>>> = Arc::default();
    {
        let reached = reached.clone();
        tokio::spawn(async move {
            while let Some(submit) = recorded.recv().await {
                let destination = submit.pdu.destination_addr.as_str().to_owned();
                reached.lock().unwrap().insert(destination);
            }
        });
    }
    let sim_stop = CancellationToken::new();
    tokio::spawn(sim.run(listener, sim_stop.clone()));

    let gateway_addr = free_port();
    let config = write_config(root.as_path(), gateway_addr, operator);
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

    wait_until("every accepted message at the operator", || {
        let reached = reached.lock().unwrap();
        accepted
            .keys()
            .all(|n| reached.contains(&format!("99890{n:07}")))
    })
    .await;
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

    let reconcile = Command::new(env!("CARGO_BIN_EXE_smsgw"))
        .args(["billing", "reconcile", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&reconcile.stdout);
    assert!(
        reconcile.status.success(),
        "reconcile found discrepancies:\n{report}"
    );
}

/// The operator in a runtime of its own, so that dropping it kills every socket at once,
/// like a crashed SMSC.
struct Operator {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Operator {
    fn start(addr: SocketAddr, reached: Arc<Mutex<HashSet<String>>>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut sim = Simulator::new(SimConfig::default());
        let mut recorded = sim.record_submits();
        // The simulator records a submit before it answers it. The record is drained on a
        // thread outside the operator's runtime, so that killing the runtime cannot drop
        // records of submits the gateway already saw answered.
        std::thread::spawn(move || {
            while let Some(submit) = recorded.blocking_recv() {
                let destination = submit.pdu.destination_addr.as_str().to_owned();
                reached.lock().unwrap().insert(destination);
            }
        });
        runtime.spawn(async move {
            let listener = loop {
                match TcpListener::bind(addr).await {
                    Ok(listener) => break listener,
                    // The old process's port may linger a moment.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            };
            let _ = sim.run(listener, CancellationToken::new()).await;
        });
        Self {
            runtime: Some(runtime),
        }
    }

    fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_operator_delays_messages_but_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let operator_addr = free_port();
    let reached: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut operator = Operator::start(operator_addr, reached.clone());

    let gateway_addr = free_port();
    let config = write_config(&root, gateway_addr, operator_addr);
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
        reached.lock().unwrap().len() as u64 >= MESSAGES / 3
    })
    .await;
    operator.kill();
    // The gateway keeps accepting into its queue while the operator is away.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _operator = Operator::start(operator_addr, reached.clone());

    wait_until("an answer for every message", || {
        client.answered.lock().unwrap().len() as u64 == MESSAGES
    })
    .await;
    let accepted = client.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len() as u64, MESSAGES, "every message accepted");
    wait_until("every accepted message at the operator", || {
        let reached = reached.lock().unwrap();
        accepted
            .keys()
            .all(|n| reached.contains(&format!("99890{n:07}")))
    })
    .await;

    client_stop.cancel();
    let _ = client_task.await;
    gateway.terminate();
    let reconcile = Command::new(env!("CARGO_BIN_EXE_smsgw"))
        .args(["billing", "reconcile", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        reconcile.status.success(),
        "reconcile found discrepancies:\n{}",
        String::from_utf8_lossy(&reconcile.stdout)
    );
}
