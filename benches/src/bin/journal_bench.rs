//! `journal-bench`: group-commit throughput and latency of the durable log, and replay
//! speed. Prints one JSON line per phase.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use journal::{Durability, Journal, JournalConfig};

#[derive(Parser, Debug)]
#[command(about = "Benchmark the journal: puts/s and put latency, then replay speed")]
struct Args {
    /// Directory for the log (a fresh temporary one by default).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    #[arg(long, default_value = "fsync")]
    durability: String,
    /// Records written (and left pending, to measure replay).
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Concurrent writers (each waits for its own acknowledgement, like client sessions).
    #[arg(long, default_value_t = 256)]
    writers: u64,
    #[arg(long, default_value_t = 250)]
    payload: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let durability: Durability = args.durability.parse().map_err(anyhow::Error::msg)?;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("journal-bench-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let config = JournalConfig::new(&dir, durability);
    let (journal, _) = Journal::open(config.clone())?;
    let payload = Bytes::from(vec![0x5a; args.payload]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    let per_writer = args.records / args.writers.max(1);
    for w in 0..args.writers.max(1) {
        let journal = journal.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut latency = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)?;
            for n in 0..per_writer {
                let t = Instant::now();
                journal
                    .put(u128::from(w) << 64 | u128::from(n), 1, payload.clone())
                    .await?;
                latency.record(t.elapsed().as_micros().max(1) as u64)?;
            }
            anyhow::Ok(latency)
        }));
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)?;
    for task in tasks {
        latency.add(task.await??)?;
    }
    journal.flush().await?;
    let elapsed = started.elapsed();
    let written = per_writer * args.writers.max(1);
    let stats = journal.stats();
    let groups = stats
        .groups
        .load(std::sync::atomic::Ordering::Relaxed)
        .max(1);
    println!(
        "{}",
        serde_json::json!({
            "phase": "write",
            "durability": args.durability,
            "records": written,
            "writers": args.writers,
            "payload_bytes": args.payload,
            "elapsed_s": elapsed.as_secs_f64(),
            "records_per_s": (written as f64 / elapsed.as_secs_f64()).round(),
            "records_per_group": written / groups,
            "syncs": stats.syncs.load(std::sync::atomic::Ordering::Relaxed),
            "put_latency_us": {
                "p50": latency.value_at_quantile(0.5),
                "p99": latency.value_at_quantile(0.99),
                "max": latency.max(),
            },
        })
    );
    drop(journal);
    // Let the writer thread finish its final sync before reopening.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    if durability != Durability::Memory {
        let started = Instant::now();
        let (_journal, live) = Journal::open(config)?;
        let elapsed = started.elapsed();
        let live = Arc::new(live);
        println!(
            "{}",
            serde_json::json!({
                "phase": "replay",
                "records": live.len(),
                "elapsed_s": elapsed.as_secs_f64(),
                "records_per_s": (live.len() as f64 / elapsed.as_secs_f64()).round(),
            })
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
