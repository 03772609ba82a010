//! `journal-fill`: writes a journal of a given size made of the records a busy gateway
//! keeps for a day: receipt waits (the operator took the message, the client wants its
//! receipt). The benchmark then starts `smsgw` on it and times the start until the first
//! bind is accepted. Prints one JSON line.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{sync::Arc, time::Duration};

use clap::Parser;
use journal::{Durability, Journal, JournalConfig};
use router::{
    Address, Origin,
    durable::LogJournal,
    journaling::{Journal as _, JournalRecord},
    receipts::DlrEntry,
};

#[derive(Parser, Debug)]
#[command(about = "Fill a journal directory with receipt waits up to a size")]
struct Args {
    /// The journal directory (`[durability] dir` of the gateway's config).
    #[arg(long)]
    dir: std::path::PathBuf,
    /// Megabytes of records to write.
    #[arg(long, default_value_t = 1024)]
    megabytes: u64,
    /// The connector the records name (the gateway's config must have it).
    #[arg(long, default_value = "sim")]
    connector: String,
    #[arg(long, default_value = "demo")]
    username: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (log, _) = Journal::open(JournalConfig::new(&args.dir, Durability::Batched))?;
    let journal = LogJournal::new(log);
    let target = args.megabytes * 1024 * 1024;
    let connector: Arc<str> = args.connector.as_str().into();
    let username: Arc<str> = args.username.as_str().into();
    let started = std::time::Instant::now();
    let mut records = 0u64;
    loop {
        // Rounds within the writer's queue (65,536): a receipt wait that finds it full
        // is not kept.
        for _ in 0..32_768 {
            let id: Arc<str> = uuid::Uuid::now_v7().to_string().into();
            let entry = DlrEntry {
                id: id.clone(),
                uid: username.clone(),
                username: username.clone(),
                origin: Origin::Smpp { session_id: 0 },
                source: Address::new("BANK", 5, 0),
                destination: Address::new(format!("99890{:07}", records % 10_000_000), 1, 1),
                registered_delivery: 1,
                dlr: None,
                connector: connector.clone(),
                submitted_at: chrono::Local::now(),
                part: 0,
                multipart: None,
                trace: Default::default(),
            };
            let operator_id = format!("{records:016x}");
            journal.append(JournalRecord::AwaitingReceipt {
                entry: &entry,
                operator_id: &operator_id,
                charge_key: &id,
                ttl: Duration::from_secs(86_400),
            });
            records += 1;
        }
        journal.log().flush().await?;
        let bytes = dir_bytes(&args.dir);
        if bytes >= target {
            println!(
                "{}",
                serde_json::json!({
                    "records": records,
                    "bytes": bytes,
                    "seconds": started.elapsed().as_secs_f64(),
                })
            );
            return Ok(());
        }
    }
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
