use super::*;

fn settings() -> HealthSettings {
    HealthSettings {
        min_receipts: 10,
        window_messages: 100,
        probe_percent: 0.0,
        ..HealthSettings::default()
    }
}

#[test]
fn the_formula() {
    let h = Health::new(&settings(), None, Some(100.0));
    assert_eq!(h.compute(false).score, 0.0, "unbound");
    // No receipts yet: full marks for delivery and latency, no load.
    assert!((h.compute(true).score - 100.0).abs() < 1e-9);
    for i in 0..100 {
        h.receipt(i % 10 < 3, Duration::from_millis(1500));
    }
    let p = h.compute(true);
    assert_eq!(p.dlr_rate, Some(0.3));
    assert_eq!(p.avg_latency_ms, Some(1500.0));
    let expected = 0.3 / 0.95 * 50.0 + 0.5 * 30.0 + 20.0;
    assert!((p.score - expected).abs() < 1e-9, "{p:?}");
    // The window keeps the last 100 receipts.
    for _ in 0..100 {
        h.receipt(true, Duration::ZERO);
    }
    assert_eq!(h.compute(true).dlr_rate, Some(1.0));
    assert!((h.compute(true).score - 100.0).abs() < 1e-9);
}

#[test]
fn states_have_hysteresis() {
    let h = Health::new(&settings(), Some(1.0), None);
    let feed = |delivered: usize| {
        for i in 0..100 {
            h.receipt(i < delivered, Duration::ZERO);
        }
    };
    // dlr 0.35: 17.5 + 30 + 20 = 67.5 → DEGRADED.
    feed(35);
    assert_eq!(
        h.evaluate(true).map(|(a, b, _)| (a, b)),
        Some((HealthState::Healthy, HealthState::Degraded))
    );
    // 0.42: 71 is above 70 but below 75: stays DEGRADED.
    feed(42);
    assert_eq!(h.evaluate(true), None);
    assert_eq!(h.state(), HealthState::Degraded);
    // 0.0: 50 is not below 50; 0.0 and 2 s latency would be. Use no delivery → 50.
    feed(0);
    assert_eq!(h.evaluate(true), None);
    for _ in 0..100 {
        h.receipt(false, Duration::from_millis(600));
    }
    assert_eq!(
        h.evaluate(true).map(|(_, b, _)| b),
        Some(HealthState::Failed)
    );
    feed(50);
    assert_eq!(
        h.evaluate(true).map(|(_, b, _)| b),
        Some(HealthState::Healthy)
    );
}

#[test]
fn breaker_opens_on_consecutive_errors_and_half_opens() {
    let s = HealthSettings {
        breaker_errors: 3,
        breaker_open_ms: 50,
        ..settings()
    };
    let h = Health::new(&s, None, None);
    assert!(!h.submit_answer(false));
    assert!(!h.submit_answer(true), "an answer resets the count");
    assert!(!h.submit_answer(false));
    assert!(!h.submit_answer(false));
    assert!(h.submit_answer(false));
    assert!(h.breaker_open());
    std::thread::sleep(Duration::from_millis(80));
    assert!(!h.breaker_open());
    assert!(h.submit_answer(false), "half open: one more error reopens");
}

#[test]
fn ranking_drops_and_orders() {
    let s = settings();
    let healthy_cheap = Health::new(&s, None, None);
    let healthy_dear = Health::new(&s, None, None);
    let degraded_cheapest = Health::new(&s, None, None);
    degraded_cheapest
        .state
        .store(HealthState::Degraded as u8, Ordering::Relaxed);
    let failed = Health::new(&s, None, None);
    failed
        .state
        .store(HealthState::Failed as u8, Ordering::Relaxed);
    let broken = Health::new(&s, None, None);
    broken.open_breaker();
    let capped = Health::new(&s, None, Some(1.0));
    capped.routed();
    let serving: Vec<(Arc<str>, i64)> = [
        ("degraded", 1),
        ("failed", 2),
        ("cheap", 3),
        ("down", 3),
        ("broken", 3),
        ("capped", 3),
        ("dear", 5),
        ("ghost", 1),
    ]
    .into_iter()
    .map(|(c, cost)| (Arc::from(c), cost))
    .collect();
    let view = |cid: &str| {
        let (bound, health) = match cid {
            "degraded" => (true, &degraded_cheapest),
            "failed" => (true, &failed),
            "cheap" => (true, &healthy_cheap),
            "down" => (false, &healthy_cheap),
            "broken" => (true, &broken),
            "capped" => (true, &capped),
            "dear" => (true, &healthy_dear),
            _ => return None,
        };
        Some(CandidateFacts {
            started: true,
            bound,
            queue_full: false,
            health,
        })
    };
    let ranked = rank(&serving, &view);
    let order: Vec<(&str, Verdict)> = ranked.iter().map(|c| (&*c.connector, c.verdict)).collect();
    assert_eq!(
        order[..3],
        [
            ("cheap", Verdict::Kept),
            ("dear", Verdict::Kept),
            ("degraded", Verdict::Kept)
        ]
    );
    let verdict = |name: &str| order.iter().find(|(c, _)| *c == name).map(|(_, v)| *v);
    assert_eq!(verdict("failed"), Some(Verdict::Failed));
    assert_eq!(verdict("down"), Some(Verdict::Unbound));
    assert_eq!(verdict("broken"), Some(Verdict::BreakerOpen));
    assert_eq!(verdict("capped"), Some(Verdict::Overloaded));
    assert_eq!(verdict("ghost"), Some(Verdict::Unknown));
}

#[test]
fn probes_take_the_configured_share() {
    let s = HealthSettings {
        probe_percent: 10.0,
        ..settings()
    };
    let h = Health::new(&s, None, None);
    let n = (0..1000).filter(|_| h.probe_due()).count();
    assert_eq!(n, 100);
}

#[test]
fn relative_files_are_relative_to_the_config() {
    let mut c = LcrConfig {
        prefix_files: vec!["mccmnc/uz.csv".into(), "/abs/x.csv".into()],
        portability_file: Some("ported.csv".into()),
        ..LcrConfig::default()
    };
    c.resolve_paths(std::path::Path::new("/etc/smsgw"));
    assert_eq!(c.prefix_files, ["/etc/smsgw/mccmnc/uz.csv", "/abs/x.csv"]);
    assert_eq!(c.portability_file.as_deref(), Some("/etc/smsgw/ported.csv"));
    assert_eq!(c.countries_file, None);
}

#[test]
fn cost_table_sorts_and_checks() {
    let c = |cid: &str, mnc, cost: &str| CostConfig {
        connector: cid.into(),
        mcc: 434,
        mnc,
        cost: cost.into(),
    };
    let known = |cid: &str| cid != "nope";
    let t = CostTable::build(
        &[c("b", 4, "0.02"), c("a", 4, "0.01"), c("a", 5, "0.5")],
        &known,
    )
    .expect("builds");
    let names: Vec<&str> = t.serving(434, 4).iter().map(|(c, _)| &**c).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(t.cost("a", 434, 5), Some(500_000));
    assert!(t.serving(434, 7).is_empty());
    assert!(CostTable::build(&[c("nope", 4, "1")], &known).is_err());
    assert!(CostTable::build(&[c("a", 4, "-1")], &known).is_err());
    assert!(CostTable::build(&[c("a", 4, "1"), c("a", 4, "2")], &known).is_err());
}
