//! In-memory reserve+commit pairs on one core (a current-thread runtime: the write-behind
//! task only runs between timed chunks, when the bench flushes to an in-memory SQLite).
//! What is timed is the engine's own work per message: checks, balance arithmetic,
//! reservation map, and building the ledger entries and CDR rows for the writer.

use std::time::{Duration, Instant};

use billing::{
    AccountKind, BillingConfig, BillingEngine, Currency, LedgerRequest, MessageMeta, Micros,
    NewAccount, QuotaOptions, ReserveRequest,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Pairs between flushes: about one 10 ms group commit at 200k messages/s, so the
/// buffers stay cache-sized as they do in service.
const CHUNK: u64 = 2_000;

fn setup(
    rt: &tokio::runtime::Runtime,
    accounts: usize,
) -> (BillingEngine, Vec<billing::AccountId>) {
    rt.block_on(async {
        let engine = BillingEngine::open(BillingConfig {
            buffer_capacity: 10_000_000,
            ..BillingConfig::with_url("sqlite::memory:")
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let eur = Currency::new("EUR").unwrap_or_else(|e| panic!("{e}"));
        let mut ids = Vec::new();
        for i in 0..accounts {
            let id = engine
                .create_account(NewAccount {
                    parent_id: None,
                    kind: AccountKind::Client,
                    name: format!("a{i}"),
                    currency: eur,
                    quota: QuotaOptions::default(),
                    credit_limit: Micros(0),
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .id;
            engine
                .top_up(LedgerRequest {
                    account: id,
                    amount: Micros::units(1_000_000_000),
                    currency: eur,
                    sms_count: 0,
                    reference: "bench".into(),
                    actor: "bench".into(),
                    origin: "bench".into(),
                    reason: String::new(),
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            ids.push(id);
        }
        (engine, ids)
    })
}

fn pairs(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let eur = Currency::new("EUR").unwrap_or_else(|e| panic!("{e}"));
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
    let mut group = c.benchmark_group("billing");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    for accounts in [1usize, 1_000] {
        let (engine, ids) = setup(&rt, accounts);
        let mut seq = 0u64;
        group.bench_function(format!("reserve+commit/{accounts}-accounts"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(CHUNK);
                    left -= n;
                    // Requests are built untimed: the router builds them anyway.
                    let reqs: Vec<ReserveRequest> = (0..n)
                        .map(|i| {
                            seq += 1;
                            ReserveRequest {
                                account: ids[(i as usize) % ids.len()],
                                reference: format!("{seq:036}"),
                                amount: Micros(12_500),
                                currency: eur,
                                meta: meta.clone(),
                            }
                        })
                        .collect();
                    let refs: Vec<(billing::AccountId, String)> = reqs
                        .iter()
                        .map(|r| (r.account, r.reference.clone()))
                        .collect();
                    let start = Instant::now();
                    for (req, (acc, reference)) in reqs.into_iter().zip(&refs) {
                        let r = engine.reserve(req);
                        let c = engine.commit(*acc, reference, Some("op-id"));
                        std::hint::black_box((r.is_ok(), c.is_ok()));
                    }
                    total += start.elapsed();
                    // Untimed: let the writer drain to SQLite so the buffer never fills.
                    rt.block_on(engine.flush())
                        .unwrap_or_else(|e| panic!("{e}"));
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pairs);
criterion_main!(benches);
