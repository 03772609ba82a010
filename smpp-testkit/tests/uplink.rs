//! smpp-core's client (our uplink) against the kit's SMSC simulator over real sockets:
//! binds, windowed submits, receipts and MO, throttling retried without loss, reconnect
//! after the simulator is killed (a real process, SIGKILL) and restarted.
//!
//! These are smpp-core's tests; they live here because the kit depends on smpp-core, and
//! smpp-core dev-depending on the kit would make a cycle.

use std::{
    collections::HashMap,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use smpp_core::{
    BindKind,
    client::{
        Inbound, LinkState, SubmitOutcome, SubmitRequest, SubmitResult, Uplink, UplinkConfig,
        UplinkHandler,
    },
    rusmpp::{
        CommandStatus,
        pdus::SubmitSm,
        types::{COctetString, OctetString},
        values::RegisteredDelivery,
    },
};
use smpp_testkit::{
    LONG_WAIT as WAIT,
    sim::{SimConfig, SimStats, Simulator},
    wait_for,
};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Recorder {
    results: Mutex<HashMap<u64, Vec<SubmitOutcome>>>,
    receipts: Mutex<Vec<String>>,
    mo: Mutex<Vec<Vec<u8>>>,
    states: Mutex<Vec<LinkState>>,
}

impl UplinkHandler for Recorder {
    fn on_submit_result(&self, result: SubmitResult) {
        self.results
            .lock()
            .unwrap()
            .entry(result.tag)
            .or_default()
            .push(result.outcome);
    }

    async fn on_inbound(&self, inbound: Inbound) -> CommandStatus {
        let Inbound::DeliverSm(pdu) = inbound else {
            return CommandStatus::EsmeRok;
        };
        let text = pdu.short_message().as_ref().to_vec();
        if u8::from(pdu.esm_class) & 0x04 != 0 {
            self.receipts
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&text).into_owned());
        } else {
            self.mo.lock().unwrap().push(text);
        }
        CommandStatus::EsmeRok
    }

    fn on_state(&self, state: LinkState) {
        self.states.lock().unwrap().push(state);
    }
}

impl Recorder {
    fn result_count(&self) -> usize {
        self.results.lock().unwrap().len()
    }

    async fn wait_for(&self, what: &str, done: impl Fn(&Self) -> bool) {
        wait_for(what, WAIT, || done(self)).await;
    }
}

fn submit(n: u64, receipt: bool) -> SubmitRequest {
    let pdu = SubmitSm::builder()
        .source_addr(COctetString::from_string("BANK".to_owned()).unwrap())
        .destination_addr(COctetString::from_string(format!("99890{n:07}")).unwrap())
        .registered_delivery(RegisteredDelivery::from(u8::from(receipt)))
        .short_message(OctetString::from_vec(format!("code {n}").into_bytes()).unwrap())
        .build();
    SubmitRequest::new(n, pdu)
}

async fn start_sim(config: SimConfig) -> (SocketAddr, Arc<SimStats>, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sim = Simulator::new(config);
    let stats = sim.stats();
    let shutdown = CancellationToken::new();
    tokio::spawn(sim.run(listener, shutdown.clone()));
    (addr, stats, shutdown)
}

fn uplink_config(addr: SocketAddr, bind: BindKind) -> UplinkConfig {
    UplinkConfig {
        id: "test".into(),
        address: addr.to_string(),
        system_id: "op".into(),
        password: "pw".into(),
        bind,
        window: 16,
        reconnect_on_loss_delay: Duration::from_millis(50),
        reconnect_on_failure_delay: Duration::from_millis(50),
        max_reconnect_delay: Duration::from_millis(400),
        throttle_pause: Duration::from_millis(5),
        max_throttle_pause: Duration::from_millis(50),
        response_timeout: Duration::from_secs(2),
        ..UplinkConfig::default()
    }
}

fn start_uplink(
    config: UplinkConfig,
) -> (
    mpsc::Sender<SubmitRequest>,
    Arc<Recorder>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(10_000);
    let recorder = Arc::new(Recorder::default());
    let shutdown = CancellationToken::new();
    let uplink = Uplink::new(config, rx, recorder.clone());
    let task = tokio::spawn(uplink.run(shutdown.clone()));
    (tx, recorder, shutdown, task)
}

#[tokio::test]
async fn windowed_submits_get_ids_and_every_receipt_arrives() {
    let (addr, sim, _stop) = start_sim(SimConfig::default()).await;
    let (tx, recorder, shutdown, task) = start_uplink(uplink_config(addr, BindKind::Transceiver));
    for n in 0..2_000 {
        tx.send(submit(n, true)).await.unwrap();
    }
    recorder
        .wait_for("2000 results", |r| r.result_count() == 2_000)
        .await;
    recorder
        .wait_for("2000 receipts", |r| {
            r.receipts.lock().unwrap().len() == 2_000
        })
        .await;
    let mut ids: Vec<String> = recorder
        .results
        .lock()
        .unwrap()
        .values()
        .map(|outcomes| {
            assert_eq!(outcomes.len(), 1, "one result per message");
            match &outcomes[0] {
                SubmitOutcome::Accepted { message_id } => message_id.clone(),
                other => panic!("unexpected outcome {other:?}"),
            }
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2_000, "operator ids are unique");
    assert_eq!(SimStats::get(&sim.submits), 2_000);
    assert!(recorder.receipts.lock().unwrap()[0].contains("stat:DELIVRD"));
    shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}

#[tokio::test]
async fn every_bind_kind_binds_and_a_receiver_gets_mo() {
    let (addr, sim, _stop) = start_sim(SimConfig {
        mo_rate: 200.0,
        ..SimConfig::default()
    })
    .await;
    for kind in [
        BindKind::Transmitter,
        BindKind::Transceiver,
        BindKind::Receiver,
    ] {
        let (_tx, recorder, shutdown, task) = start_uplink(uplink_config(addr, kind));
        recorder
            .wait_for("bound", |r| {
                r.states.lock().unwrap().contains(&LinkState::Bound)
            })
            .await;
        if kind.can_receive() {
            recorder
                .wait_for("MO", |r| !r.mo.lock().unwrap().is_empty())
                .await;
            assert!(recorder.mo.lock().unwrap()[0].starts_with(b"MO test"));
        }
        shutdown.cancel();
        tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    }
    assert!(SimStats::get(&sim.mo_sent) > 0);
}

#[tokio::test]
async fn wrong_credentials_keep_retrying_with_backoff() {
    let (addr, _sim, _stop) = start_sim(SimConfig {
        credentials: Some(("op".into(), "right".into())),
        ..SimConfig::default()
    })
    .await;
    let (_tx, recorder, shutdown, task) = start_uplink(uplink_config(addr, BindKind::Transceiver));
    recorder
        .wait_for("three failed binds", |r| {
            r.states
                .lock()
                .unwrap()
                .iter()
                .filter(|s| matches!(s, LinkState::Disconnected { reason } if reason.contains("EsmeRinvpaswd")))
                .count()
                >= 3
        })
        .await;
    shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    assert_eq!(
        recorder.states.lock().unwrap().last(),
        Some(&LinkState::Stopped)
    );
}

#[tokio::test]
async fn throttled_submits_are_retried_without_loss_or_duplicates() {
    let (addr, sim, _stop) = start_sim(SimConfig {
        throttle_fraction: 0.3,
        ..SimConfig::default()
    })
    .await;
    let (tx, recorder, shutdown, task) = start_uplink(uplink_config(addr, BindKind::Transceiver));
    for n in 0..1_000 {
        tx.send(submit(n, false)).await.unwrap();
    }
    recorder
        .wait_for("1000 results", |r| r.result_count() == 1_000)
        .await;
    for outcomes in recorder.results.lock().unwrap().values() {
        assert_eq!(outcomes.len(), 1);
        assert!(matches!(outcomes[0], SubmitOutcome::Accepted { .. }));
    }
    assert!(
        SimStats::get(&sim.throttled) > 0,
        "the simulator did throttle"
    );
    assert_eq!(SimStats::get(&sim.accepted), 1_000);
    shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_stalled_operator_times_out_and_the_message_is_reported() {
    let (addr, _sim, _stop) = start_sim(SimConfig {
        stall: true,
        ..SimConfig::default()
    })
    .await;
    let config = UplinkConfig {
        response_timeout: Duration::from_millis(100),
        max_attempts: 2,
        ..uplink_config(addr, BindKind::Transmitter)
    };
    let (tx, recorder, shutdown, task) = start_uplink(config);
    tx.send(submit(1, false)).await.unwrap();
    recorder
        .wait_for("a result", |r| r.result_count() == 1)
        .await;
    assert_eq!(
        recorder.results.lock().unwrap()[&1],
        vec![SubmitOutcome::TimedOut]
    );
    shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}

/// Set in the environment of this test binary started again as the simulator process.
const SIM_PROCESS_LISTEN: &str = "SMPP_TESTKIT_SIM_PROCESS_LISTEN";

/// Not a test of its own: the body of the simulator process (what `smsc-sim --listen
/// <addr> --ack-delay-ms 2` runs). Without the variable it returns at once.
#[test]
fn simulator_process() {
    let Ok(listen) = std::env::var(SIM_PROCESS_LISTEN) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let listener = TcpListener::bind(&listen).await.expect("bind");
        let config = SimConfig {
            ack_delay: Duration::from_millis(2),
            ..SimConfig::default()
        };
        let _ = Simulator::new(config)
            .run(listener, CancellationToken::new())
            .await;
    });
}

/// The simulator in a process of its own: this test binary, running only
/// `simulator_process`.
struct SimProcess(Child);

impl SimProcess {
    fn start(addr: SocketAddr) -> Self {
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "simulator_process", "--nocapture"])
            .env(SIM_PROCESS_LISTEN, addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the simulator process");
        Self(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn reconnects_after_the_simulator_is_killed_and_loses_nothing() {
    // Reserve a port for the simulator process.
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let mut sim = SimProcess::start(addr);
    let (tx, recorder, shutdown, task) = start_uplink(uplink_config(addr, BindKind::Transceiver));
    recorder
        .wait_for("bound", |r| {
            r.states.lock().unwrap().contains(&LinkState::Bound)
        })
        .await;
    for n in 0..500 {
        tx.send(submit(n, false)).await.unwrap();
    }
    recorder
        .wait_for("some results", |r| r.result_count() >= 50)
        .await;
    sim.kill();
    for n in 500..1_000 {
        tx.send(submit(n, false)).await.unwrap();
    }
    recorder
        .wait_for("the link loss", |r| {
            r.states
                .lock()
                .unwrap()
                .iter()
                .any(|s| matches!(s, LinkState::Disconnected { .. }))
        })
        .await;
    let _sim = SimProcess::start(addr);
    recorder
        .wait_for("1000 results", |r| r.result_count() == 1_000)
        .await;
    for (tag, outcomes) in recorder.results.lock().unwrap().iter() {
        assert!(
            matches!(outcomes.as_slice(), [SubmitOutcome::Accepted { .. }]),
            "message {tag}: {outcomes:?}"
        );
    }
    let binds = recorder
        .states
        .lock()
        .unwrap()
        .iter()
        .filter(|s| **s == LinkState::Bound)
        .count();
    assert!(binds >= 2, "bound again after the restart");
    shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}
