//! `smsc-sim`: a simulated operator SMSC for tests and benchmarks.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use benches::sim::{IdForm, SimConfig, Simulator};
use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(about = "Simulated operator SMSC: acks submit_sm, sends receipts and MO")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:2776")]
    listen: String,
    /// Accept only this system_id/password (any bind otherwise).
    #[arg(long)]
    system_id: Option<String>,
    #[arg(long, requires = "system_id")]
    password: Option<String>,
    /// Delay before each submit_sm_resp, in milliseconds.
    #[arg(long, default_value_t = 0)]
    ack_delay_ms: u64,
    /// Fraction of submits answered ESME_RSUBMITFAIL.
    #[arg(long, default_value_t = 0.0)]
    fail: f64,
    /// Fraction of submits answered ESME_RTHROTTLED.
    #[arg(long, default_value_t = 0.0)]
    throttle: f64,
    /// Fraction of receipt-requesting submits that get a receipt.
    #[arg(long, default_value_t = 1.0)]
    receipts: f64,
    #[arg(long, default_value_t = 0)]
    receipt_delay_ms: u64,
    /// Fraction of receipts that say UNDELIV.
    #[arg(long, default_value_t = 0.0)]
    undeliverable: f64,
    /// Operator message ids in decimal (hex by default).
    #[arg(long)]
    decimal_ids: bool,
    /// MO messages per second to bound receivers.
    #[arg(long, default_value_t = 0.0)]
    mo_rate: f64,
    /// Never answer submit_sm.
    #[arg(long)]
    stall: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let config = SimConfig {
        credentials: args.system_id.zip(args.password),
        ack_delay: Duration::from_millis(args.ack_delay_ms),
        fail_fraction: args.fail,
        throttle_fraction: args.throttle,
        receipt_fraction: args.receipts,
        receipt_delay: Duration::from_millis(args.receipt_delay_ms),
        undeliverable_fraction: args.undeliverable,
        ids: if args.decimal_ids {
            IdForm::Decimal
        } else {
            IdForm::Hex
        },
        mo_rate: args.mo_rate,
        stall: args.stall,
        ..SimConfig::default()
    };
    let listener = TcpListener::bind(&args.listen).await?;
    println!("smsc-sim listening on {}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    let simulator = Simulator::new(config);
    let stats = simulator.stats();
    simulator.run(listener, shutdown).await?;
    // What reached the "operator", for benchmarks that check nothing was lost.
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "submits": count(&stats.submits),
            "accepted": count(&stats.accepted),
            "failed": count(&stats.failed),
            "throttled": count(&stats.throttled),
            "receipts_sent": count(&stats.receipts_sent),
        })
    );
    Ok(())
}
