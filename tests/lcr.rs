//! Least-cost routing in a real `smsgw` process: three operators (simulators) of one
//! network with different costs; the cheapest is killed under load. Every accepted
//! message reaches another operator, billing reconciles, and the CDR (through the
//! margin report) names the operator that actually carried each message.

mod support;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use smpp_core::BindKind;
use smpp_testkit::{operator::Operator, sim::SimConfig};
use support::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const MESSAGES: u64 = 600;

/// Distinct destinations that reached `operator`.
fn count(operator: &Operator) -> usize {
    first_arrivals(&operator.record).len()
}

fn write_config(dir: &Path, gateway: SocketAddr, ops: [SocketAddr; 3]) -> PathBuf {
    let path = dir.join("smsgw.toml");
    let mut text = format!(
        r#"
[smpp]
listen = "{gateway}"
[http]
listen = "{http}"
[admin]
enabled = false
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

[[router.mt_routes]]
order = 10
type = "LcrRoute"
rate = "0.05"

[router.lcr]
default_country = "UZ"
"#,
        http = free_port(),
    );
    for ((cid, cost), addr) in [("opa", "0.010"), ("opb", "0.020"), ("opc", "0.030")]
        .into_iter()
        .zip(ops)
    {
        text.push_str(&format!(
            r#"
[[router.connectors]]
cid = "{cid}"
host = "127.0.0.1"
port = {port}
con_loss_delay_secs = 0.2
con_fail_delay_secs = 0.2
res_to_secs = 2
[[router.lcr.costs]]
connector = "{cid}"
mcc = 434
mnc = 4
cost = "{cost}"
"#,
            port = addr.port()
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// The current month, UTC, as YYYY-MM.
fn this_month() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_cheapest_operator_under_load_loses_nothing_and_bills_the_carrier() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let ops = [free_port(), free_port(), free_port()];
    // The cheapest answers a little late, so that its window holds unanswered messages.
    let mut a = Operator::start(
        ops[0],
        SimConfig {
            ack_delay: Duration::from_millis(30),
            ..SimConfig::default()
        },
    );
    let b = Operator::start(ops[1], SimConfig::default());
    let c = Operator::start(ops[2], SimConfig::default());
    let gateway_addr = free_port();
    let config = write_config(&root, gateway_addr, ops);
    let mut gateway = Gateway::start(&config, &root.join("gateway.log"));

    let client = Arc::new(Client::default());
    let (tx, rx) = mpsc::channel(MESSAGES as usize);
    let stop = CancellationToken::new();
    let (task, _) = bind_client(
        gateway_addr,
        BindKind::Transceiver,
        rx,
        client.clone(),
        &stop,
    );
    let feeder = tokio::spawn(async move {
        for n in 0..MESSAGES {
            if tx.send(submit(n)).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    });
    wait_until("a third at the cheapest operator", || {
        count(&a) as u64 >= MESSAGES / 3
    })
    .await;
    let killed_at = Instant::now();
    a.kill();
    let _ = feeder.await;
    wait_until("an answer for every message", || {
        client.answered.lock().unwrap().len() as u64 == MESSAGES
    })
    .await;
    let accepted = client.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len() as u64, MESSAGES, "every message accepted");
    let destination = |n: &u64| format!("99890{n:07}");
    wait_until("every accepted message at an operator", || {
        accepted.keys().all(|n| {
            let d = destination(n);
            a.record.reached(&d) || b.record.reached(&d) || c.record.reached(&d)
        })
    })
    .await;
    let first_at_b = first_arrivals(&b.record)
        .values()
        .copied()
        .filter(|at| *at >= killed_at)
        .min()
        .map(|at| at - killed_at);
    let taken_by_a = count(&a);
    eprintln!(
        "kill → first message accepted by opb: {first_at_b:?}; opa took {taken_by_a}, \
         opb {}, opc {}",
        count(&b),
        count(&c)
    );
    assert!(first_at_b.is_some_and(|d| d < Duration::from_secs(3)));
    assert_eq!(count(&c), 0, "opb is cheaper than opc and healthy");

    stop.cancel();
    let _ = task.await;
    gateway.terminate();
    assert_reconciles(&config);

    // The CDR: one charged row per message, on the connector that carried it.
    let (ok, csv) = smsgw_cli(&config, &["billing", "margin", "--month", &this_month()]);
    assert!(ok, "margin report failed:\n{csv}");
    eprintln!("{csv}");
    let count = |connector: &str| -> u64 {
        csv.lines()
            .filter(|l| l.split(',').nth(2) == Some(connector))
            .filter_map(|l| l.split(',').nth(6)?.parse::<u64>().ok())
            .sum()
    };
    let (on_a, on_b) = (count("opa"), count("opb"));
    assert_eq!(on_a + on_b, MESSAGES, "each message charged once");
    assert!(
        on_a <= taken_by_a as u64,
        "opa billed only for what it took"
    );
    assert!(on_b >= MESSAGES - taken_by_a as u64);
    assert!(
        csv.lines().any(|l| l.contains(",opb,Beeline,434,4,")),
        "network and carrier recorded:\n{csv}"
    );
    let total = csv.lines().last().unwrap_or_default().to_owned();
    // revenue 600 × 0.05; cost on_a × 0.01 + on_b × 0.02.
    let cost = on_a * 10_000 + on_b * 20_000;
    let expected = format!(
        ",TOTAL,,,,{MESSAGES},{MESSAGES},30.000000,{}.{:06},{}",
        cost / 1_000_000,
        cost % 1_000_000,
        {
            let m = 30_000_000 - cost;
            format!("{}.{:06}", m / 1_000_000, m % 1_000_000)
        }
    );
    assert!(total.ends_with(&expected), "{total} vs {expected}");
}
