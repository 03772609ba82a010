//! `/metrics` over a real socket: it parses as Prometheus text, and its counters move as
//! messages flow through the gateway to the simulated operator.

mod common;

use common::{Setup, WAIT, success_id, wait_until};
use prometheus_parse::{Scrape, Value};

/// One scrape, parsed.
async fn scrape(s: &Setup) -> Scrape {
    let reply = s.get("/metrics").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply
            .content_type
            .starts_with("application/openmetrics-text"),
        "{reply:?}"
    );
    Scrape::parse(reply.body.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text")
}

/// The value of the series `name` whose labels include `labels`; 0 if there is none.
/// For a histogram, its count (the +Inf bucket).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

fn exists(scrape: &Scrape, name: &str) -> bool {
    scrape.samples.iter().any(|s| s.metric == name)
}

/// A series (name, labels) and the value it must reach.
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

#[tokio::test]
async fn counters_move_as_messages_flow() {
    let mut s = Setup::start().await;
    let before = scrape(&s).await;
    let user = [("user", "u1")];
    let op1 = [("connector", "op1")];

    for n in 0..3 {
        let reply = s
            .get(&format!(
                "/send?username=bank&password=pw&to=25570000000{n}&content=hello"
            ))
            .await;
        success_id(&reply);
        s.next_submit().await;
    }
    // The operator's submit_sm_resp is counted when the uplink has read it.
    let gateway = s.gateway.clone();
    wait_until(|| {
        gateway.connector("op1").is_some_and(|c| {
            c.counters
                .submitted
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 3
        })
    })
    .await;
    // No route for this number: refused, by reason.
    let refused = s
        .get("/send?username=bank&password=pw&to=33600000000&content=hello")
        .await;
    assert_ne!(refused.status, 200, "{refused:?}");

    // Counters move on their own tasks (the uplink's reader, the billing writer):
    // scrape until every expected figure is there, then name any that never came.
    let expected: [Expected; 9] = [
        ("smsgw_messages_submitted_total", &user, 4.0),
        ("smsgw_messages_accepted_total", &user, 3.0),
        (
            "smsgw_messages_refused_total",
            &[("user", "u1"), ("reason", "no_route")],
            1.0,
        ),
        ("smsgw_connector_queued_total", &op1, 3.0),
        ("smsgw_connector_sent_total", &op1, 3.0),
        ("smsgw_connector_failed_total", &op1, 0.0),
        ("smsgw_submit_response_seconds", &op1, 3.0),
        (
            "smsgw_http_requests_total",
            &[("route", "/send"), ("status", "200")],
            3.0,
        ),
        ("smsgw_connector_queue_depth", &op1, 0.0),
    ];
    let deadline = std::time::Instant::now() + WAIT;
    let (after, wrong) = loop {
        let after = scrape(&s).await;
        let wrong: Vec<String> = expected
            .iter()
            .filter_map(|(name, labels, want)| {
                // Gauges are read as they are; counters as the change since `before`.
                let base = if name.ends_with("_depth") {
                    0.0
                } else {
                    value(&before, name, labels)
                };
                let got = value(&after, name, labels) - base;
                (got != *want).then(|| format!("{name}{labels:?}: {got}, want {want}"))
            })
            .collect();
        if wrong.is_empty() || std::time::Instant::now() > deadline {
            break (after, wrong);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(value(&after, "smsgw_connector_bound", &op1), 1.0);
    for name in [
        "smsgw_smpp_connections",
        "smsgw_messages_in_flight",
        "smsgw_billing_buffer_fill",
        "smsgw_billing_store_healthy",
        "smsgw_journal_fsync_seconds",
        "smsgw_uplink_binds_total",
    ] {
        assert!(exists(&after, name), "{name} missing from /metrics");
    }
}

#[tokio::test]
async fn metrics_text_is_well_formed_before_any_traffic() {
    let s = Setup::start().await;
    let body = s.get("/metrics").await.body;
    // Each family is described once, and the exposition ends as OpenMetrics requires.
    assert!(
        body.contains("# TYPE smsgw_messages_submitted counter"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE smsgw_submit_response_seconds histogram"),
        "{body}"
    );
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    let parsed = Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    assert!(exists(&parsed, "smsgw_connector_bound"));
    // Least-cost routing: the health of connectors in the cost table only.
    let s = &s;
    wait_until(|| s.gateway.connector("lcr1").is_some_and(|c| c.is_bound())).await;
    let parsed = scrape(s).await;
    let lcr1 = [("connector", "lcr1")];
    assert_eq!(value(&parsed, "smsgw_connector_health_score", &lcr1), 100.0);
    assert_eq!(
        value(
            &parsed,
            "smsgw_connector_health_score",
            &[("connector", "op1")]
        ),
        0.0
    );
    let healthy = [("connector", "lcr1"), ("state", "HEALTHY")];
    assert_eq!(
        value(&parsed, "smsgw_connector_health_state", &healthy),
        1.0
    );
    let failed = [("connector", "lcr1"), ("state", "FAILED")];
    assert_eq!(value(&parsed, "smsgw_connector_health_state", &failed), 0.0);
    assert_eq!(value(&parsed, "smsgw_connector_breaker_open", &lcr1), 0.0);
    assert!(exists(&parsed, "smsgw_connector_health_transitions_total"));
    assert!(exists(&parsed, "smsgw_connector_breaker_openings_total"));
}
