//! Write-behind throughput to SQLite (temporary file) and PostgreSQL (a fresh schema on
//! SMSGW_TEST_POSTGRES_URL, skipped when unset): ledger entries per second with their CDR
//! rows, at a few batch sizes and flush intervals. Run with
//! `cargo bench -p billing --bench write_behind` (add `-- --quick` for a short run).
//!
//! A producer offers a fixed load (messages per second, paced every millisecond); each
//! message is RESERVE + CHARGE (2 ledger entries) and its CDR row, inserted PENDING and
//! updated CHARGED when the commit comes LAG_MS later. The writer sustains the load when
//! the buffer stays small and nothing is refused.

use std::time::{Duration, Instant};

use billing::{
    AccountKind, BillingConfig, BillingEngine, BillingError, Currency, LedgerRequest, MessageMeta,
    Micros, NewAccount, QuotaOptions, ReserveRequest,
};

/// Commits trail reservations by this long (an operator's submit_sm_resp round trip),
/// so a message's CDR is normally inserted in one batch and updated in a later one.
const LAG_MS: u64 = 100;

struct Run {
    backend: &'static str,
    batch_max: usize,
    interval_ms: u64,
    /// Offered load in messages per second (each: 2 ledger entries, 2 CDR writes).
    rate: u64,
}

async fn run_one(url: &str, run: &Run, secs: u64) -> Result<String, BillingError> {
    let engine = BillingEngine::open(BillingConfig {
        batch_max: run.batch_max,
        flush_interval_ms: run.interval_ms,
        buffer_capacity: 2_000_000,
        ..BillingConfig::with_url(url)
    })
    .await?;
    let eur = Currency::new("EUR")?;
    let acc = engine
        .create_account(NewAccount {
            parent_id: None,
            kind: AccountKind::Client,
            name: "bench".into(),
            currency: eur,
            quota: QuotaOptions::default(),
            credit_limit: Micros(0),
        })
        .await?
        .id;
    engine
        .top_up(LedgerRequest {
            account: acc,
            amount: Micros::units(1_000_000_000),
            currency: eur,
            sms_count: 0,
            reference: "bench".into(),
            actor: "bench".into(),
            origin: "bench".into(),
            reason: String::new(),
        })
        .await?;
    let before = engine.metrics();
    let meta = MessageMeta {
        user: "u1".into(),
        connector: "smsc-a".into(),
        operator: "250-01".into(),
        destination: "+79001234567".into(),
        sender: "BANK".into(),
        parts: 1,
        text_length: 42,
        text_hash: "0123456789abcdef".into(),
        ..Default::default()
    };
    let per_ms = run.rate / 1_000;
    let total_ms = secs * 1_000;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (mut refused, mut max_buffered) = (0u64, 0usize);
    let start = Instant::now();
    for ms in 0..total_ms + LAG_MS {
        tick.tick().await;
        for k in 0..per_ms {
            if ms < total_ms {
                let req = ReserveRequest {
                    account: acc,
                    reference: format!("{ms}-{k}"),
                    amount: Micros(12_500),
                    currency: eur,
                    meta: meta.clone(),
                };
                if let Err(e) = engine.reserve(req) {
                    if !e.is_store_fault() {
                        return Err(e);
                    }
                    refused += 1;
                    continue;
                }
            }
            if ms >= LAG_MS {
                // Refusals above leave holes; those commits are simply unknown.
                let _ = engine.commit(acc, &format!("{}-{k}", ms - LAG_MS), Some("op"));
            }
        }
        max_buffered = max_buffered.max(engine.metrics().buffered);
    }
    let offered = start.elapsed();
    engine.flush().await?;
    let drained = start.elapsed() - offered;
    let m = engine.metrics();
    let entries = m.flushed_entries - before.flushed_entries;
    let flushes = (m.flushes - before.flushes).max(1);
    Ok(format!(
        "{:<8} batch_max={:<5} interval={:>2}ms offered {:>6} entries/s: wrote {:>7.0} entries/s \
         (+ CDR rows), {:.0} entries/flush, max flush {:.1} ms, max buffered {}, \
         drain after load {:.0} ms, refused {}",
        run.backend,
        run.batch_max,
        run.interval_ms,
        2 * run.rate,
        entries as f64 / (offered + drained).as_secs_f64(),
        entries as f64 / flushes as f64,
        m.max_flush_latency.as_secs_f64() * 1e3,
        max_buffered,
        drained.as_secs_f64() * 1e3,
        refused
    ))
}

async fn pg_schema(base: &str) -> Option<(String, String)> {
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(base).await.ok()?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&pool)
        .await
        .ok()?;
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some((format!("{base}{sep}options[search_path]={schema}"), schema))
}

async fn drop_schema(base: &str, schema: &str) {
    if let Ok(pool) = sqlx::PgPool::connect(base).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&pool)
            .await;
        pool.close().await;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --benches` runs bench targets once with no --bench flag: keep it short.
    let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
    let secs = if quick { 1 } else { 5 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    // (batch_max, flush interval ms, offered messages/s)
    let configs = [
        (1_000, 10, 50_000),
        (10_000, 50, 50_000),
        (200, 2, 50_000),
        (1_000, 10, 100_000),
    ];
    rt.block_on(async {
        for (batch_max, interval_ms, rate) in configs {
            let path =
                std::env::temp_dir().join(format!("billing-bench-{}.db", uuid::Uuid::new_v4()));
            let url = format!("sqlite://{}", path.display());
            let run = Run {
                backend: "sqlite",
                batch_max,
                interval_ms,
                rate,
            };
            match run_one(&url, &run, secs).await {
                Ok(line) => println!("{line}"),
                Err(e) => println!("sqlite batch_max={batch_max}: failed: {e}"),
            }
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        let Ok(base) = std::env::var("SMSGW_TEST_POSTGRES_URL") else {
            eprintln!("postgres: skipped: SMSGW_TEST_POSTGRES_URL not set");
            return;
        };
        for (batch_max, interval_ms, rate) in configs {
            let Some((url, schema)) = pg_schema(&base).await else {
                println!("postgres: cannot create a schema on {base}");
                return;
            };
            let run = Run {
                backend: "postgres",
                batch_max,
                interval_ms,
                rate,
            };
            match run_one(&url, &run, secs).await {
                Ok(line) => println!("{line}"),
                Err(e) => println!("postgres batch_max={batch_max}: failed: {e}"),
            }
            drop_schema(&base, &schema).await;
        }
    });
}
