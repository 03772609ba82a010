//! The load generator's open-loop mode against the simulator over a real socket: every
//! message of the schedule is sent and answered, and each second gets its p99.

use std::time::Duration;

use benches::load::{self, LoadConfig};
use smpp_testkit::sim::{SimConfig, Simulator};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_run_keeps_its_schedule_and_reports_each_second() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    tokio::spawn(Simulator::new(SimConfig::default()).run(listener, shutdown.clone()));

    let started = std::time::Instant::now();
    let report = load::run(LoadConfig {
        target,
        sessions: 2,
        rate: Some(2_000.0),
        count: Some(5_000),
        open_loop: true,
        ..LoadConfig::default()
    })
    .await
    .unwrap();
    shutdown.cancel();

    assert_eq!(report.accepted, 5_000);
    // 5,000 messages at 2,000 a second take 2.5 s of schedule: not sent as fast as
    // possible (which takes a fraction of a second here).
    assert!(
        started.elapsed() >= Duration::from_millis(2_400),
        "{:?}",
        started.elapsed()
    );
    let json = report.to_json();
    let (rate, by_second) = report.open_loop.expect("open-loop figures");
    assert_eq!(rate, 2_000.0);
    assert_eq!(by_second.len(), 3, "seconds 0, 1 and the half second 2");
    assert!(by_second.iter().all(|&p99| p99 > 0));
    assert!(json["open_loop"]["worst_second_p99_us"].as_u64().is_some());
}

#[tokio::test]
async fn an_open_loop_run_needs_a_rate() {
    let error = load::run(LoadConfig {
        open_loop: true,
        rate: None,
        ..LoadConfig::default()
    })
    .await
    .expect_err("refused");
    assert!(error.to_string().contains("rate"), "{error}");
}
