//! End to end over real sockets: an ESME binds to the gateway, the gateway's uplink binds
//! to an in-test SMSC (built on smpp_core's server), receipts and MO flow back.

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::{
    Sim, WAIT, billing_for, connect_esme, connect_esme_with, start_gateway, start_gateway_with,
    start_smsc, submit_sm, ucs2_three_parts, udh_part, wait_until,
};
use router::{Deps, RouterConfig, charging::Charging};
use smpp_core::{
    client::{SubmitOutcome, SubmitRequest},
    rusmpp::{
        CommandStatus, Pdu,
        pdus::DeliverSm,
        types::{COctetString, OctetString},
        values::{DataCoding, EsmClass},
    },
    server::Outbound,
};
use smpp_testkit::sim::SimConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn base_config(op_port: u16, extra: &str) -> String {
    format!(
        r#"
[settings]
http_retry_delay_ms = 50
[[groups]]
gid = "g1"
[[users]]
uid = "u1"
username = "bank"
password = "secret"
gid = "g1"
[[connectors]]
cid = "op1"
port = {op_port}
con_fail_delay_secs = 0.1
con_loss_delay_secs = 0.1
{extra}
"#
    )
}

#[tokio::test]
async fn submit_reaches_operator_and_receipt_comes_back_with_our_id() {
    let shutdown = CancellationToken::new();
    let (smsc, op_port) = start_smsc(&shutdown, true).await;
    let config = base_config(
        op_port,
        "[[mt_routes]]\norder = 0\ntype = \"DefaultRoute\"\nconnector = \"smppc(op1)\"\n",
    );
    let (gw, port) = start_gateway(&shutdown, &config).await;
    wait_until(|| gw.connector("op1").is_some_and(|c| c.is_bound())).await;
    let mut esme = connect_esme(&shutdown, port, "bank", "secret").await;

    let outcome = esme
        .send(submit_sm("BANK", "255700000001", b"code 1234", 1, 0))
        .await;
    let SubmitOutcome::Accepted { message_id } = outcome else {
        panic!("refused: {outcome:?}")
    };
    assert!(
        uuid::Uuid::parse_str(&message_id).is_ok(),
        "our id is a UUID: {message_id}"
    );

    wait_until(|| !smsc.submits.is_empty()).await;
    {
        let submits = smsc.submits.pdus();
        assert_eq!(submits[0].destination_addr.as_str(), "255700000001");
        assert_eq!(submits[0].source_addr.as_str(), "BANK");
        assert_eq!(submits[0].short_message().as_ref(), b"code 1234");
        assert_eq!(u8::from(submits[0].registered_delivery), 1);
    }

    let receipt = esme.receive().await;
    let text = String::from_utf8_lossy(receipt.short_message().as_ref()).into_owned();
    assert!(
        text.contains(&format!("id:{message_id}")),
        "receipt text has our id: {text}"
    );
    assert!(text.contains("stat:DELIVRD"), "{text}");
    assert_eq!(u8::from(receipt.esm_class) & 0x3C, 0x04);
    assert_eq!(receipt.destination_addr.as_str(), "BANK");
    shutdown.cancel();
}

#[tokio::test]
async fn refusals_map_to_smpp_statuses() {
    let shutdown = CancellationToken::new();
    let (_smsc, op_port) = start_smsc(&shutdown, false).await;
    let extra = r#"
[[users]]
uid = "u2"
username = "strict"
password = "pw"
gid = "g1"
value_filters = { src_addr = "^BANK$" }
quotas = { smpps_throughput = 1.0 }
[[users]]
uid = "u3"
username = "nosrc"
password = "pw"
gid = "g1"
authorizations = { src_addr = false }
[[filters]]
fid = "tz"
type = "DestinationAddrFilter"
destination_addr = "255"
[[filters]]
fid = "reject"
type = "DestinationAddrFilter"
destination_addr = "2559"
[[filters]]
fid = "broken"
type = "DestinationAddrFilter"
destination_addr = "2558"
[[mt_routes]]
order = 10
type = "StaticMTRoute"
connector = "op1"
filters = ["tz"]
[[mt_interceptors]]
order = 20
type = "StaticMTInterceptor"
filters = ["reject"]
script = "smpp_status = 0x45;"
[[mt_interceptors]]
order = 10
type = "StaticMTInterceptor"
filters = ["broken"]
script = "let x = message.nothing.len(); "
[[mt_interceptors]]
order = 5
type = "StaticMTInterceptor"
filters = ["tz"]
script = 'if message.source_addr == "OLD" { message.source_addr = "NEW"; }'
"#;
    let (gw, port) = start_gateway(&shutdown, &base_config(op_port, extra)).await;
    wait_until(|| gw.connector("op1").is_some_and(|c| c.is_bound())).await;
    let mut bank = connect_esme(&shutdown, port, "bank", "secret").await;
    // No route for this destination.
    assert_eq!(
        bank.send(submit_sm("X", "100", b"a", 0, 0)).await,
        SubmitOutcome::Rejected(CommandStatus::EsmeRinvdstadr)
    );
    // Interceptors: reject with the script's status, a script error, a rewrite.
    assert_eq!(
        bank.send(submit_sm("X", "25590", b"a", 0, 0)).await,
        SubmitOutcome::Rejected(CommandStatus::EsmeRsubmitfail)
    );
    assert_eq!(
        bank.send(submit_sm("X", "25580", b"a", 0, 0)).await,
        SubmitOutcome::Rejected(CommandStatus::EsmeRsyserr)
    );
    assert!(matches!(
        bank.send(submit_sm("OLD", "25570", b"a", 0, 0)).await,
        SubmitOutcome::Accepted { .. }
    ));
    wait_until(|| {
        _smsc
            .submits
            .pdus()
            .iter()
            .any(|s| s.source_addr.as_str() == "NEW")
    })
    .await;

    let mut strict = connect_esme(&shutdown, port, "strict", "pw").await;
    assert_eq!(
        strict.send(submit_sm("OTHER", "25570", b"a", 0, 0)).await,
        SubmitOutcome::Rejected(CommandStatus::EsmeRinvsrcadr)
    );
    assert!(matches!(
        strict.send(submit_sm("BANK", "25570", b"a", 0, 0)).await,
        SubmitOutcome::Accepted { .. }
    ));
    // One per second: the next one at once is answered ESME_RTHROTTLED; the client
    // (smpp-core's uplink) retries it after a pause and it goes through.
    let throttled_before = gw.user_counters("u2").throttled.load(Ordering::Relaxed);
    assert!(matches!(
        strict.send(submit_sm("BANK", "25570", b"a", 0, 0)).await,
        SubmitOutcome::Accepted { .. }
    ));
    assert!(gw.user_counters("u2").throttled.load(Ordering::Relaxed) > throttled_before);

    let mut nosrc = connect_esme(&shutdown, port, "nosrc", "pw").await;
    assert_eq!(
        nosrc.send(submit_sm("ME", "25570", b"a", 0, 0)).await,
        SubmitOutcome::Rejected(CommandStatus::EsmeRinvsysid)
    );
    assert!(matches!(
        nosrc.send(submit_sm("", "25570", b"a", 0, 0)).await,
        SubmitOutcome::Accepted { .. }
    ));
    shutdown.cancel();
}

#[tokio::test]
async fn mo_three_part_ucs2_reaches_smpp_user() {
    let shutdown = CancellationToken::new();
    let (smsc, op_port) = start_smsc(&shutdown, false).await;
    let extra = "[[mo_routes]]\norder = 0\ntype = \"DefaultRoute\"\nconnector = \"smpps(bank)\"\n";
    let (gw, port) = start_gateway(&shutdown, &base_config(op_port, extra)).await;
    wait_until(|| gw.connector("op1").is_some_and(|c| c.is_bound())).await;
    let mut esme = connect_esme(&shutdown, port, "bank", "secret").await;

    let (text, chunks) = ucs2_three_parts();
    // Out of order: 3, 1, 2.
    for seq in [3u8, 1, 2] {
        let body = udh_part(42, &chunks, seq);
        let pdu = DeliverSm::builder()
            .source_addr(COctetString::from_string("998901234567".into()).unwrap_or_default())
            .destination_addr(COctetString::from_string("7777".into()).unwrap_or_default())
            .esm_class(EsmClass::from(0x40))
            .data_coding(DataCoding::from(8))
            .short_message(OctetString::from_vec(body).unwrap_or_default())
            .build();
        let result = smsc
            .registry
            .deliver("smppclient", Outbound::new(Pdu::DeliverSm(pdu)));
        assert!(result.is_ok());
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let p = esme.receive().await;
        got.extend_from_slice(&p.short_message().as_ref()[6..]);
    }
    assert_eq!(got, text);
    shutdown.cancel();
}

#[tokio::test]
async fn failover_skips_down_uplink_and_round_robin_alternates() {
    let shutdown = CancellationToken::new();
    let (a, port_a) = start_smsc(&shutdown, false).await;
    let (b, port_b) = start_smsc(&shutdown, false).await;
    // op_down points at a port nobody listens on.
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead_port = dead.local_addr().expect("addr").port();
    drop(dead);
    let extra = format!(
        r#"
[[connectors]]
cid = "opb"
port = {port_b}
[[connectors]]
cid = "op_down"
port = {dead_port}
con_fail_delay_secs = 5.0
[[filters]]
fid = "rr"
type = "DestinationAddrFilter"
destination_addr = "1"
[[filters]]
fid = "fo"
type = "DestinationAddrFilter"
destination_addr = "2"
[[mt_routes]]
order = 20
type = "RandomRoundrobinMTRoute"
connectors = ["op1", "opb"]
filters = ["rr"]
[[mt_routes]]
order = 10
type = "FailoverMTRoute"
connectors = ["op_down", "opb"]
filters = ["fo"]
"#
    );
    let (gw, port) = start_gateway(&shutdown, &base_config(port_a, &extra)).await;
    wait_until(|| {
        gw.connector("op1").is_some_and(|c| c.is_bound())
            && gw.connector("opb").is_some_and(|c| c.is_bound())
    })
    .await;
    let mut esme = connect_esme(&shutdown, port, "bank", "secret").await;
    for _ in 0..4 {
        assert!(matches!(
            esme.send(submit_sm("S", "100", b"rr", 0, 0)).await,
            SubmitOutcome::Accepted { .. }
        ));
    }
    wait_until(|| a.submits.len() + b.submits.len() == 4).await;
    assert_eq!(a.submits.len(), 2, "round robin is round robin");
    assert_eq!(b.submits.len(), 2);
    assert!(matches!(
        esme.send(submit_sm("S", "200", b"fo", 0, 0)).await,
        SubmitOutcome::Accepted { .. }
    ));
    wait_until(|| {
        b.submits
            .pdus()
            .iter()
            .any(|s| s.short_message().as_ref() == b"fo")
    })
    .await;
    shutdown.cancel();
}

#[tokio::test]
async fn stalled_uplink_fills_queue_then_drains_without_loss_or_double_charge() {
    let shutdown = CancellationToken::new();
    // No operator yet: the uplink cannot bind, so its queue fills.
    let probe = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let op_port = probe.local_addr().expect("addr").port();
    drop(probe);
    let extra = "queue_capacity = 5\n[[mt_routes]]\norder = 0\ntype = \"DefaultRoute\"\nconnector = \"op1\"\nrate = \"0.5\"\n";
    // Balances are read through billing, the gateway's own Charging.
    let config = base_config(op_port, extra).replace(
        "uid = \"u1\"",
        "uid = \"u1\"\nquotas = { balance = \"100\", sms_count = 10 }",
    );
    let charging = billing_for(&RouterConfig::from_toml_str(&config).expect("config")).await;
    let deps = Deps {
        charging: Some(charging.clone()),
        ..Deps::default()
    };
    let (gw, port) = start_gateway_with(&shutdown, &config, deps).await;
    let mut esme = connect_esme(&shutdown, port, "bank", "secret").await;
    let mut accepted = 0;
    for i in 0..5 {
        let outcome = esme
            .send(submit_sm("S", "255", format!("m{i}").as_bytes(), 0, 0))
            .await;
        assert!(
            matches!(outcome, SubmitOutcome::Accepted { .. }),
            "{outcome:?}"
        );
        accepted += 1;
    }
    // Charged when accepted (reserved), before the operator saw anything.
    let account = || {
        futures_util::FutureExt::now_or_never(charging.balance("u1"))
            .expect("in memory")
            .expect("account")
    };
    assert_eq!(account().balance, Some(100_000_000 - 5 * 500_000));
    assert_eq!(account().sms_count, Some(5));
    // The sixth finds the queue full: ESME_RMSGQFUL at once (the client retries it as
    // throttling, so watch the connector's queue and the user's refusals instead).
    esme.next += 1;
    esme.submit
        .send(SubmitRequest::new(
            esme.next,
            submit_sm("S", "255", b"m5", 0, 0),
        ))
        .await
        .expect("queue");
    wait_until(|| gw.user_counters("u1").refused.load(Ordering::Relaxed) > 0).await;
    assert_eq!(gw.connector("op1").map(|c| c.queue.len()), Some(5));
    assert_eq!(
        account().balance,
        Some(100_000_000 - 5 * 500_000),
        "a refused message is not charged"
    );
    // The operator (the test kit's simulator) comes up on that port: everything drains.
    let listener = TcpListener::bind(("127.0.0.1", op_port))
        .await
        .expect("rebind operator port");
    let sim = Sim::start_on(listener, &shutdown, SimConfig::default());
    let _ = tokio::time::timeout(WAIT, esme.results.recv())
        .await
        .expect("sixth answered");
    accepted += 1;
    let mut bodies = Vec::new();
    for _ in 0..accepted {
        bodies.push(
            sim.next_submit()
                .await
                .pdu
                .short_message()
                .as_ref()
                .to_vec(),
        );
    }
    wait_until(|| gw.in_flight() == 0).await;
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 6, "nothing lost, nothing sent twice");
    // Every message charged exactly once, nothing refunded that was delivered.
    assert_eq!(account().balance, Some(100_000_000 - 6 * 500_000));
    assert_eq!(account().sms_count, Some(4));
    assert_eq!(
        charging.engine().open_reservations().len(),
        0,
        "all committed"
    );
    assert!(sim.take_unread().is_empty(), "no duplicate submit_sm");
    shutdown.cancel();
}

#[tokio::test]
async fn every_receipt_reaches_its_message_with_sequential_hex_operator_ids() {
    // The simulator numbers its ids 1, 2, … in hex: "a" (10), "10" (16) and "16" (22)
    // are different messages, although "10" also reads as decimal 10 and as hex 16.
    let shutdown = CancellationToken::new();
    // Receipts held back so that every mapping is live when they come.
    let sim = Sim::start(
        &shutdown,
        SimConfig {
            receipt_delay: Duration::from_millis(300),
            ..SimConfig::default()
        },
    )
    .await;
    let extra = "[[mt_routes]]\norder = 0\ntype = \"DefaultRoute\"\nconnector = \"op1\"\n";
    let (gw, port) = start_gateway(&shutdown, &base_config(sim.port, extra)).await;
    wait_until(|| gw.connector("op1").is_some_and(|c| c.is_bound())).await;
    let mut esme = connect_esme(&shutdown, port, "bank", "secret").await;
    let mut ours = Vec::new();
    for i in 0..40 {
        let pdu = submit_sm("BANK", "255700", format!("m{i}").as_bytes(), 1, 0);
        ours.push(esme.accepted(pdu).await);
    }
    let mut receipted = Vec::new();
    for _ in 0..40 {
        let receipt = esme.receive().await;
        let text = String::from_utf8_lossy(receipt.short_message().as_ref()).into_owned();
        let id = text
            .strip_prefix("id:")
            .and_then(|t| t.split(' ').next())
            .unwrap_or_default()
            .to_owned();
        assert!(text.contains("stat:DELIVRD"), "{text}");
        receipted.push(id);
    }
    ours.sort();
    receipted.sort();
    assert_eq!(
        receipted, ours,
        "one receipt per message, each with its own id"
    );
    assert_eq!(
        gw.connector("op1")
            .map(|c| c.counters.receipts_unmatched.load(Ordering::Relaxed)),
        Some(0)
    );
    shutdown.cancel();
}

/// A receipt for a bound client is relayed: the operator's deliver_sm is answered once the
/// client answered ours. A client that does not answer in time gets it again at its next
/// bind, and the operator is answered anyway (the receipt is then ours to keep).
#[tokio::test]
async fn receipt_relay_answers_the_operator_after_the_client_or_keeps_it() {
    let shutdown = CancellationToken::new();
    let (smsc, op_port) = start_smsc(&shutdown, false).await;
    let config = base_config(
        op_port,
        "[[mt_routes]]\norder = 0\ntype = \"DefaultRoute\"\nconnector = \"smppc(op1)\"\n",
    )
    .replace("[settings]\n", "[settings]\nreceipt_relay_wait_ms = 300\n");
    let (gw, port) = start_gateway(&shutdown, &config).await;
    wait_until(|| gw.connector("op1").is_some_and(|c| c.is_bound())).await;
    let receipt = |n: u64| {
        let text = format!(
            "id:00{:X} sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:",
            1000 + n
        );
        DeliverSm::builder()
            .source_addr(COctetString::from_string("255700000001".into()).unwrap())
            .destination_addr(COctetString::from_string("BANK".into()).unwrap())
            .esm_class(EsmClass::from(0x04))
            .short_message(OctetString::from_string(text).unwrap())
            .build()
    };

    // A client that answers: the operator hears ESME_ROK after it.
    let first_stop = shutdown.child_token();
    let mut esme = connect_esme(&first_stop, port, "bank", "secret").await;
    let first = esme
        .accepted(submit_sm("BANK", "255700000001", b"one", 1, 0))
        .await;
    assert_eq!(
        smsc.deliver("smppclient", receipt(0)).await,
        CommandStatus::EsmeRok
    );
    let got = esme.receive().await;
    assert!(String::from_utf8_lossy(got.short_message().as_ref()).contains(&first));
    first_stop.cancel();
    wait_until(|| gw.registry().receivers("bank") == 0).await;

    // A client that takes the deliver_sm and never answers it.
    let silent_stop = shutdown.child_token();
    let mut silent = connect_esme_with(&silent_stop, port, "bank", "secret", true).await;
    let second = silent
        .accepted(submit_sm("BANK", "255700000002", b"two", 1, 0))
        .await;
    let started = tokio::time::Instant::now();
    assert_eq!(
        smsc.deliver("smppclient", receipt(1)).await,
        CommandStatus::EsmeRok
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the operator waited for the client first"
    );
    let unanswered = silent.receive().await;
    assert!(String::from_utf8_lossy(unanswered.short_message().as_ref()).contains(&second));
    silent_stop.cancel();

    // Kept for the next bind.
    wait_until(|| gw.registry().receivers("bank") == 0).await;
    let mut again = connect_esme(&shutdown, port, "bank", "secret").await;
    let redelivered = again.receive().await;
    assert!(String::from_utf8_lossy(redelivered.short_message().as_ref()).contains(&second));
    shutdown.cancel();
}
