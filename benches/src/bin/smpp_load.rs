//! `smpp-load`: SMPP load generator; prints one JSON line of figures.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use benches::load::{self, LoadConfig};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    about = "SMPP load generator: N sessions × window W; prints throughput and latency as JSON"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:2775")]
    target: String,
    #[arg(long, default_value = "load")]
    system_id: String,
    #[arg(long, default_value = "load")]
    password: String,
    #[arg(long, default_value_t = 4)]
    sessions: usize,
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Total submits per second (no cap by default).
    #[arg(long)]
    rate: Option<f64>,
    /// Number of submits (default 100000 unless --duration is given).
    #[arg(long)]
    count: Option<u64>,
    /// Run for this many seconds instead of a count.
    #[arg(long)]
    duration: Option<f64>,
    /// Ask for delivery receipts and wait for them.
    #[arg(long)]
    registered_delivery: bool,
    /// Send UCS-2 text.
    #[arg(long)]
    ucs2: bool,
    /// Send a long text as concatenated (UDH) parts.
    #[arg(long)]
    long: bool,
    #[arg(long, default_value_t = 10.0)]
    receipt_wait: f64,
    /// Offer --rate on a fixed schedule, answered or not, and measure each message's
    /// latency from the time it was due; report the p99 of every second.
    #[arg(long, requires = "rate")]
    open_loop: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let duration = args.duration.map(Duration::from_secs_f64);
    let config = LoadConfig {
        target: args.target,
        system_id: args.system_id,
        password: args.password,
        sessions: args.sessions,
        window: args.window,
        rate: args.rate,
        count: args.count.or(if duration.is_some() {
            None
        } else {
            Some(100_000)
        }),
        duration,
        registered_delivery: args.registered_delivery,
        ucs2: args.ucs2,
        long: args.long,
        receipt_wait: Duration::from_secs_f64(args.receipt_wait),
        open_loop: args.open_loop,
        ..LoadConfig::default()
    };
    let report = load::run(config).await?;
    println!("{}", report.to_json());
    Ok(())
}
