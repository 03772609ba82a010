//! Test helper for the crash test: opens the store at `argv[1]`, creates an account and
//! funds it, then reserves, commits and refunds forever. After each flush it prints
//! `durable <charged messages> <charged micros>`: what the store is known to hold.
//! The test kills it with SIGKILL at an arbitrary point.

use std::io::Write;

use billing::{
    AccountKind, BillingConfig, BillingEngine, Currency, LedgerRequest, MessageMeta, Micros,
    NewAccount, QuotaOptions, ReserveRequest,
};

const PRICE: i64 = 12_345;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: billing-crash-child <store-url>")?;
    let engine = BillingEngine::open(BillingConfig::with_url(url)).await?;
    let eur = Currency::new("EUR")?;
    let account = engine
        .create_account(NewAccount {
            parent_id: None,
            kind: AccountKind::Client,
            name: "crash".into(),
            currency: eur,
            quota: QuotaOptions::default(),
            credit_limit: Micros(0),
        })
        .await?
        .id;
    engine
        .top_up(LedgerRequest {
            account,
            amount: Micros::units(1_000_000),
            currency: eur,
            sms_count: 0,
            reference: "funds".into(),
            actor: "crash-test".into(),
            origin: "test".into(),
            reason: "funds".into(),
        })
        .await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "account {}", account.0)?;
    out.flush()?;
    let (mut charged_msgs, mut charged_micros) = (0u64, 0i64);
    for i in 0u64.. {
        if i % 500 == 0 && i > 0 {
            engine.flush().await?;
            writeln!(out, "durable {charged_msgs} {charged_micros}")?;
            out.flush()?;
        } else if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
        let reference = format!("crash-{i}");
        let request = ReserveRequest {
            account,
            reference: reference.clone(),
            amount: Micros(PRICE),
            currency: eur,
            meta: MessageMeta {
                parts: 1,
                destination: "+15550000".into(),
                ..MessageMeta::default()
            },
        };
        if let Err(e) = engine.reserve(request.clone()) {
            if !e.is_store_fault() {
                return Err(e.into());
            }
            // The writer is behind: let it catch up, then go on.
            engine.flush().await?;
            engine.reserve(request)?;
        }
        // Every fifth reservation stays open for a while: some are open at the kill.
        if i % 5 == 4 {
            continue;
        }
        if i % 3 == 0 {
            engine.refund(account, &reference, "REJECTD")?;
        } else {
            engine.commit(account, &reference, Some("op"))?;
            charged_msgs += 1;
            charged_micros += PRICE;
        }
        if i % 10 == 8 {
            // Close the one left open four messages ago (those ending in 9 stay open).
            engine.commit(account, &format!("crash-{}", i - 4), Some("op"))?;
            charged_msgs += 1;
            charged_micros += PRICE;
        }
    }
    Ok(())
}
