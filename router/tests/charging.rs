//! The money path through the real billing engine on SQLite: what a long message costs,
//! what a free route records, and that the ledger reconciles afterwards.

mod common;

use std::sync::Arc;

use billing::{
    BillingConfig, BillingEngine, ChargeStatus, EngineCharging, UserAccount, ledger::now_micros,
    reconcile::reconcile,
};
use common::{Sim, http_message, start_gateway_with, wait_until};
use router::{Deps, Gateway, charging::Charging, credentials::Requested};
use smpp_testkit::sim::SimConfig;
use tokio_util::sync::CancellationToken;

const RATE: i64 = 20_000; // "0.02" per part

fn config(op_port: u16, rate: &str) -> String {
    format!(
        r#"
[[groups]]
gid = "g1"
[[users]]
uid = "u1"
username = "bank"
password = "secret"
gid = "g1"
quotas = {{ balance = "10", sms_count = 100 }}
[[connectors]]
cid = "op1"
port = {op_port}
con_fail_delay_secs = 0.1
[[mt_routes]]
order = 0
type = "DefaultRoute"
connector = "op1"
rate = "{rate}"
"#
    )
}

struct Billed {
    gateway: Arc<Gateway>,
    charging: Arc<EngineCharging>,
    engine: BillingEngine,
    sim: Sim,
    _dir: tempfile::TempDir,
}

async fn start(shutdown: &CancellationToken, rate: &str) -> Billed {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("billing.db").display());
    let engine = BillingEngine::open(BillingConfig {
        url,
        ..BillingConfig::default()
    })
    .await
    .expect("billing");
    let user = UserAccount {
        uid: "u1".into(),
        balance: Some(10_000_000),
        sms_count: Some(100),
    };
    let charging = Arc::new(
        EngineCharging::attach(engine.clone(), [user], "EUR")
            .await
            .expect("account"),
    );
    let sim = Sim::start(shutdown, SimConfig::default()).await;
    let deps = Deps {
        charging: Some(charging.clone()),
        ..Deps::default()
    };
    let (gateway, _) = start_gateway_with(shutdown, &config(sim.port, rate), deps).await;
    Billed {
        gateway,
        charging,
        engine,
        sim,
        _dir: dir,
    }
}

async fn send(b: &mut Billed, content: &[u8], parts: usize) {
    let user = b.gateway.snapshot().directory.by_uid["u1"].clone();
    let mut msg = http_message(content);
    msg.split_long = true;
    b.gateway
        .submit(&user, msg, Requested::default())
        .await
        .expect("accepted");
    for _ in 0..parts {
        b.sim.next_submit().await;
    }
    let gateway = b.gateway.clone();
    wait_until(move || gateway.in_flight() == 0).await;
    b.engine.flush().await.expect("flush");
}

#[tokio::test]
async fn a_message_split_in_three_costs_three_parts_and_three_of_sms_count() {
    let shutdown = CancellationToken::new();
    let mut b = start(&shutdown, "0.02").await;
    // 400 GSM-7 characters: three parts of 153.
    send(&mut b, &b"a".repeat(400), 3).await;

    let balance = b.charging.balance("u1").await.expect("balance");
    assert_eq!(balance.balance, Some(10_000_000 - 3 * RATE));
    assert_eq!(balance.sms_count, Some(97));
    let account = b.charging.account_of("u1").expect("account");
    let lines = b
        .engine
        .store()
        .invoice_lines(account, 0, now_micros() + 1)
        .await
        .expect("cdr");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].charge_status, ChargeStatus::Charged);
    assert_eq!(
        lines[0].price_per_part.0, RATE,
        "each part at the route rate"
    );
    assert_eq!(lines[0].parts, 3);
    assert_eq!(lines[0].amount.0, 3 * RATE);
    let report = reconcile(b.engine.store().as_ref())
        .await
        .expect("reconcile");
    assert!(report.is_clean(), "{report}");
    shutdown.cancel();
}

#[tokio::test]
async fn a_message_payload_is_charged_for_the_sms_it_makes() {
    let shutdown = CancellationToken::new();
    let b = start(&shutdown, "0.02").await;
    let user = b.gateway.snapshot().directory.by_uid["u1"].clone();
    // One submit_sm whose message_payload the operator splits into three SMS.
    let mut msg = http_message(&b"a".repeat(400));
    msg.payload_tlv = true;
    b.gateway
        .submit(&user, msg, Requested::default())
        .await
        .expect("accepted");
    b.sim.next_submit().await;
    let gateway = b.gateway.clone();
    wait_until(move || gateway.in_flight() == 0).await;
    let balance = b.charging.balance("u1").await.expect("balance");
    assert_eq!(balance.balance, Some(10_000_000 - 3 * RATE));
    assert_eq!(balance.sms_count, Some(97));
    shutdown.cancel();
}

#[tokio::test]
async fn a_free_route_is_accepted_counted_and_recorded_at_zero() {
    let shutdown = CancellationToken::new();
    let mut b = start(&shutdown, "0.00").await;
    send(&mut b, b"your code is 1234", 1).await;

    let balance = b.charging.balance("u1").await.expect("balance");
    assert_eq!(balance.balance, Some(10_000_000), "nothing charged");
    assert_eq!(balance.sms_count, Some(99), "still counted");
    // Its CDR row is there, charged at zero.
    let mut rows = Vec::new();
    b.engine
        .store()
        .audit_references(&mut |r| {
            if r.cdr_status.is_some() {
                rows.push(r)
            }
        })
        .await
        .expect("cdr");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].cdr_status, Some(ChargeStatus::Charged));
    assert_eq!((rows[0].cdr_total.0, rows[0].cdr_charged.0), (0, 0));
    let report = reconcile(b.engine.store().as_ref())
        .await
        .expect("reconcile");
    assert!(report.is_clean(), "{report}");
    shutdown.cancel();
}
