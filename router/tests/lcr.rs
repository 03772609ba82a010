//! Least-cost routing over real sockets: three simulators as three operators of one
//! network (Beeline, 434-04) with different costs.

mod common;

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::*;
use parking_lot::Mutex;
use router::{Deps, RouterConfig, lcr::HealthState};
use smpp_core::client::SubmitOutcome;
use smpp_testkit::sim::SimConfig;

const TO: &str = "998901234567";

fn config(ports: [u16; 3], health: &str) -> String {
    let mut s = String::from(
        r#"
[[groups]]
gid = "g1"
[[users]]
uid = "u1"
username = "bank"
password = "secret"
gid = "g1"
quotas = { balance = "1000" }
"#,
    );
    for (cid, port) in ["opa", "opb", "opc"].iter().zip(ports) {
        s.push_str(&connector_toml(cid, cid, port));
        s.push_str("res_to_secs = 2\n");
    }
    s.push_str(&format!(
        r#"
[[mt_routes]]
order = 10
type = "LcrRoute"
rate = "0.05"
[lcr]
default_country = "UZ"
[[lcr.costs]]
connector = "opa"
mcc = 434
mnc = 4
cost = "0.010"
[[lcr.costs]]
connector = "opb"
mcc = 434
mnc = 4
cost = "0.020"
[[lcr.costs]]
connector = "opc"
mcc = 434
mnc = 4
cost = "0.030"
[lcr.health]
{health}
"#
    ));
    s
}

fn texts(sim: &Sim) -> Vec<String> {
    sim.take_unread()
        .into_iter()
        .map(|s| String::from_utf8_lossy(s.pdu.short_message().as_ref()).into_owned())
        .collect()
}

async fn send(esme: &mut Client, n: &mut u32, count: u32) {
    for _ in 0..count {
        *n += 1;
        let outcome = esme
            .send(submit_sm("BANK", TO, format!("m{n}").as_bytes(), 1, 0))
            .await;
        assert!(
            matches!(outcome, SubmitOutcome::Accepted { .. }),
            "{outcome:?}"
        );
    }
}

fn state(gw: &router::Gateway, cid: &str) -> Option<HealthState> {
    gw.health_snapshot()
        .into_iter()
        .find(|h| &*h.0 == cid)
        .map(|h| h.2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_goes_to_the_cheapest_leaves_it_when_it_degrades_and_returns() {
    let shutdown = Shutdown::new();
    let sim = || SimConfig {
        receipt_delay: Duration::from_millis(5),
        ..SimConfig::default()
    };
    let a = Sim::start(&shutdown, sim()).await;
    let b = Sim::start(&shutdown, sim()).await;
    let c = Sim::start(&shutdown, sim()).await;
    let toml = config(
        [a.port, b.port, c.port],
        "window_messages = 40\nmin_receipts = 10\nprobe_percent = 10.0",
    );
    let (gw, port) = start_gateway(&shutdown, &toml).await;
    wait_bound(&gw, &["opa", "opb", "opc"]).await;
    let mut esme = connect_esme(&shutdown, port, "bank", "secret").await;
    let mut n = 0u32;
    // 1. The cheapest takes everything.
    send(&mut esme, &mut n, 20).await;
    wait_until(|| a.stats.accepted.load(Ordering::Relaxed) == 20).await;
    assert_eq!(texts(&a).len(), 20);
    assert!(texts(&b).is_empty() && texts(&c).is_empty());

    // 2. Its receipts turn to 30 % delivered: its score falls below 70, traffic moves.
    a.stats.undeliverable_ppm.store(700_000, Ordering::Relaxed);
    let started = Instant::now();
    let mut rounds = 0;
    while state(&gw, "opa") == Some(HealthState::Healthy) {
        rounds += 1;
        assert!(
            rounds < 100,
            "opa never degraded: {:?}",
            gw.health_snapshot()
        );
        send(&mut esme, &mut n, 5).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "opa DEGRADED after {} messages, {:?}: {:?}",
        rounds * 5,
        started.elapsed(),
        gw.health_snapshot()
    );
    let _ = (texts(&a), texts(&b));
    send(&mut esme, &mut n, 40).await;
    wait_until(|| {
        a.stats.submits.load(Ordering::Relaxed)
            + b.stats.submits.load(Ordering::Relaxed)
            + c.stats.submits.load(Ordering::Relaxed)
            >= u64::from(n)
    })
    .await;
    let (to_a, to_b, to_c) = (texts(&a).len(), texts(&b).len(), texts(&c).len());
    eprintln!("after degradation: opa {to_a} (probes), opb {to_b}, opc {to_c}");
    assert!(to_b >= 30, "the next cheapest takes the traffic: {to_b}");
    assert!(to_a <= 10, "only probes reach the degraded one: {to_a}");
    assert_eq!(to_c, 0, "the dearest is not needed");

    // 3. It recovers: the probes' receipts lift its score and traffic returns.
    a.stats.undeliverable_ppm.store(0, Ordering::Relaxed);
    let mut rounds = 0;
    while state(&gw, "opa") != Some(HealthState::Healthy) {
        rounds += 1;
        assert!(
            rounds < 200,
            "opa never recovered: {:?}",
            gw.health_snapshot()
        );
        send(&mut esme, &mut n, 10).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Counted by text: a probe of the loop above may still be on its way.
    let first_new = n + 1;
    send(&mut esme, &mut n, 20).await;
    let wanted: HashSet<String> = (first_new..=n).map(|i| format!("m{i}")).collect();
    let (mut at_a, mut at_b, mut at_c) = (HashSet::new(), HashSet::new(), HashSet::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline
        && !wanted
            .iter()
            .all(|t| at_a.contains(t) || at_b.contains(t) || at_c.contains(t))
    {
        at_a.extend(texts(&a));
        at_b.extend(texts(&b));
        at_c.extend(texts(&c));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let count = |seen: &HashSet<String>| wanted.iter().filter(|t| seen.contains(*t)).count();
    let (to_a, to_b, to_c) = (count(&at_a), count(&at_b), count(&at_c));
    eprintln!("after recovery: opa {to_a}, opb {to_b}, opc {to_c}");
    assert_eq!(
        (to_a, to_b, to_c),
        (20, 0, 0),
        "traffic is back on the cheapest"
    );

    // The explanation says the same.
    let e = gw.explain("bank", "+998 90 123 45 67");
    assert_eq!(e.mcc_mnc, Some((434, 4)));
    assert_eq!(e.choice.as_deref(), Some("opa"));
    let names: Vec<&str> = e.candidates.iter().map(|c| c.connector.as_str()).collect();
    assert_eq!(names, ["opa", "opb", "opc"]);
    eprintln!("{e}");
}

/// The messages' texts that reached `operator`.
fn reached_texts(operator: &Operator) -> HashSet<String> {
    operator.record.with(|all| {
        all.iter()
            .map(|r| String::from_utf8_lossy(r.submit.pdu.short_message().as_ref()).into_owned())
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cheapest_operator_hands_everything_to_the_next_within_a_second() {
    let shutdown = Shutdown::new();
    // The cheapest answers slowly, so that its window holds unanswered messages.
    let (mut a, port_a) = Operator::start_free(SimConfig {
        ack_delay: Duration::from_millis(50),
        ..SimConfig::default()
    });
    let (b, port_b) = Operator::start_free(SimConfig::default());
    let (c, port_c) = Operator::start_free(SimConfig::default());
    let toml = config([port_a, port_b, port_c], "");
    let router_config = RouterConfig::from_toml_str(&toml).expect("config");
    let charging = billing_for(&router_config).await;
    let deps = Deps {
        charging: Some(charging.clone()),
        ..Deps::default()
    };
    let (gw, port) = start_gateway_with(&shutdown, &toml, deps).await;
    wait_bound(&gw, &["opa", "opb", "opc"]).await;
    let mut esme = connect_esme(&shutdown, port, "bank", "secret").await;

    // Under load: a steady stream, the operator killed in the middle of it.
    let accepted: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let accepted = accepted.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 2000 {
                n += 1;
                let text = format!("k{n}");
                if let SubmitOutcome::Accepted { .. } = esme
                    .send(submit_sm("BANK", TO, text.as_bytes(), 0, 0))
                    .await
                {
                    accepted.lock().push((text, Instant::now()));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    wait_until(|| a.record.len() >= 50).await;
    let killed_at = Instant::now();
    a.kill();
    // Everything accepted before the kill reaches an operator: when?
    let before: Vec<String> = accepted
        .lock()
        .iter()
        .filter(|(_, at)| *at <= killed_at)
        .map(|(t, _)| t.clone())
        .collect();
    let reached_a = reached_texts(&a);
    let unanswered = before.iter().filter(|t| !reached_a.contains(*t)).count();
    let all_placed = loop {
        // The killed operator's record is read again: its last moments may land after the
        // snapshot above (what it answered before dying stays with it, rightly).
        let (ra, rb, rc) = (reached_texts(&a), reached_texts(&b), reached_texts(&c));
        if before
            .iter()
            .all(|t| ra.contains(t) || rb.contains(t) || rc.contains(t))
        {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < WAIT,
            "messages accepted before the kill lost"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    // Let the stream run on a little past the kill.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    sender.await.expect("sender");
    let accepted: Vec<String> = accepted.lock().iter().map(|(t, _)| t.clone()).collect();

    // Every accepted message reached an operator (the killed one only if it took it
    // before it died; those it held unanswered went to the next one as well).
    // The killed operator's record is read again here too: a message it took in its last
    // moments, after the snapshot, stays with it and is not sent to another.
    wait_until(|| {
        let (ra, rb, rc) = (reached_texts(&a), reached_texts(&b), reached_texts(&c));
        accepted
            .iter()
            .all(|t| ra.contains(t) || rb.contains(t) || rc.contains(t))
    })
    .await;
    wait_until(|| gw.in_flight() == 0).await;
    let first_at_b = b
        .record
        .with(|all| all.iter().map(|r| r.at).filter(|at| *at >= killed_at).min())
        .expect("the next operator took messages after the kill");
    let failover = first_at_b - killed_at;
    let moved = reached_a.intersection(&reached_texts(&b)).count();
    eprintln!(
        "failover: first message at the next operator {failover:?} after the kill; the \
         {} accepted before the kill ({unanswered} of them unanswered or queued for opa) \
         all at an operator {all_placed:?} after it; {} accepted in all, {} taken by opa, \
         {moved} of those also re-sent to opb, {} at opc",
        before.len(),
        accepted.len(),
        reached_a.len(),
        reached_texts(&c).len()
    );
    assert!(
        failover < Duration::from_secs(3) && all_placed < Duration::from_secs(3),
        "failover took {failover:?} / {all_placed:?} (target: under 1 s)"
    );
    assert!(
        reached_texts(&c).is_empty(),
        "opb is cheaper than opc and healthy"
    );

    // Billing: every accepted message charged exactly once, nothing left reserved.
    let engine = charging.engine();
    engine.flush().await.expect("flush");
    assert!(
        engine.open_reservations().is_empty(),
        "nothing left reserved"
    );
    let balance = futures_util::FutureExt::now_or_never(router::charging::Charging::balance(
        charging.as_ref(),
        "u1",
    ))
    .expect("in memory")
    .expect("account");
    assert_eq!(
        balance.balance,
        Some(1_000_000_000 - accepted.len() as i64 * 50_000),
        "each accepted message charged once at the route's rate"
    );
    drop(shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_but_bound_cheapest_is_dropped_within_a_second() {
    let shutdown = Shutdown::new();
    // Bound, answers enquire_link, never answers submit_sm.
    let (a, port_a) = Operator::start_free(SimConfig {
        stall: true,
        ..SimConfig::default()
    });
    let (b, port_b) = Operator::start_free(SimConfig::default());
    let (_c, port_c) = Operator::start_free(SimConfig::default());
    let (gw, port) = start_gateway(&shutdown, &config([port_a, port_b, port_c], "")).await;
    wait_bound(&gw, &["opa", "opb", "opc"]).await;
    let mut esme = connect_esme(&shutdown, port, "bank", "secret").await;
    let started = Instant::now();
    let mut sent = Vec::new();
    let mut n = 0;
    while b.record.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "opa never dropped"
        );
        n += 1;
        let text = format!("d{n}");
        let outcome = esme
            .send(submit_sm("BANK", TO, text.as_bytes(), 0, 0))
            .await;
        assert!(
            matches!(outcome, SubmitOutcome::Accepted { .. }),
            "{outcome:?}"
        );
        sent.push(text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dropped_after = started.elapsed();
    let breaker = gw
        .health_snapshot()
        .into_iter()
        .find(|h| &*h.0 == "opa")
        .map(|h| h.3);
    assert_eq!(breaker, Some(true), "opa's breaker is open");
    // What opa holds unanswered moves on after its submit_sm_resp timeout (2 s here).
    wait_until(|| {
        let at_b = reached_texts(&b);
        sent.iter().all(|t| at_b.contains(t))
    })
    .await;
    eprintln!(
        "dead-but-bound opa: traffic at opb {dropped_after:?} after the first message; \
         all {} messages at opb after {:?}; opa saw {}",
        sent.len(),
        started.elapsed(),
        a.record.len()
    );
    assert!(
        dropped_after < Duration::from_secs(3),
        "took {dropped_after:?} (target: about 1 s)"
    );
}

/// The cost table follows admin changes: a connector added live with the lowest cost
/// for the network takes the next messages (its uplink now hands unanswered messages
/// back, as LCR needs); its cost removed, they go back to the cheapest left. A cost for
/// a connector that is not there is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_joins_and_leaves_least_cost_routing_live() {
    let shutdown = Shutdown::new();
    let a = Sim::start(&shutdown, SimConfig::default()).await;
    let b = Sim::start(&shutdown, SimConfig::default()).await;
    let c = Sim::start(&shutdown, SimConfig::default()).await;
    let cheaper = Sim::start(&shutdown, SimConfig::default()).await;
    let toml = config([a.port, b.port, c.port], "");
    let (gw, port) = start_gateway(&shutdown, &toml).await;
    wait_bound(&gw, &["opa", "opb", "opc"]).await;
    let mut esme = connect_esme(&shutdown, port, "bank", "secret").await;
    let mut n = 0u32;
    send(&mut esme, &mut n, 5).await;
    wait_until(|| a.stats.accepted.load(Ordering::Relaxed) == 5).await;

    let mut config = RouterConfig::from_toml_str(&toml).expect("config");
    let refused = {
        let mut bad = config.clone();
        bad.lcr.costs.push(cost("nowhere", "0.001"));
        gw.reconfigure(&bad).await.expect_err("unknown connector")
    };
    assert!(refused.to_string().contains("nowhere"), "{refused}");

    config.connectors.push(
        RouterConfig::from_toml_str(&connector_toml("opd", "opd", cheaper.port))
            .expect("connector")
            .connectors
            .remove(0),
    );
    config.lcr.costs.push(cost("opd", "0.005"));
    gw.reconfigure(&config).await.expect("opd joins");
    wait_bound(&gw, &["opd"]).await;
    assert!(gw.connector("opd").is_some_and(|c| c.lcr_managed));
    let before_a = a.stats.accepted.load(Ordering::Relaxed);
    send(&mut esme, &mut n, 10).await;
    wait_until(|| cheaper.stats.accepted.load(Ordering::Relaxed) == 10).await;
    assert_eq!(a.stats.accepted.load(Ordering::Relaxed), before_a);
    assert_eq!(gw.explain("bank", TO).choice.as_deref(), Some("opd"));

    // Its cost removed: it stays as a plain connector, and LCR leaves it.
    config.lcr.costs.retain(|c| c.connector != "opd");
    gw.reconfigure(&config).await.expect("opd leaves LCR");
    assert!(gw.connector("opd").is_some_and(|c| !c.lcr_managed));
    send(&mut esme, &mut n, 5).await;
    wait_until(|| a.stats.accepted.load(Ordering::Relaxed) == before_a + 5).await;
    assert_eq!(cheaper.stats.accepted.load(Ordering::Relaxed), 10);
}

fn cost(connector: &str, cost: &str) -> router::lcr::CostConfig {
    router::lcr::CostConfig {
        connector: connector.into(),
        mcc: 434,
        mnc: 4,
        cost: cost.into(),
    }
}
