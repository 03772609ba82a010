//! Restart, store outage and crash (SIGKILL) against both stores.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use billing::store::{
    AccountSums, Batch, ClosedRef, InvoiceLine, LedgerStore, PendingCdr, RefAudit,
};
use billing::{
    Account, AccountId, BillingConfig, BillingEngine, BillingError, Micros, QuotaOptions,
    RecoveryPolicy, Tariff, TariffId, open_store,
};
use common::*;

const PRICE: i64 = 10_000;

async fn restart_rebuilds_and_resolves(url: &str) {
    let engine = open(url).await;
    let acc = client(&engine, QuotaOptions::default(), 0).await;
    top_up(&engine, acc, 100 * PRICE, "t1").await;
    for i in 0..6 {
        engine
            .reserve(req(acc, &format!("r{i}"), PRICE, 1))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    engine
        .commit(acc, "r0", Some("op-0"))
        .unwrap_or_else(|e| panic!("{e}"));
    engine
        .refund(acc, "r1", "REJECTD")
        .unwrap_or_else(|e| panic!("{e}"));
    engine.flush().await.unwrap_or_else(|e| panic!("{e}"));
    let before = engine.balance(acc).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(before.reserved, Micros(4 * PRICE));
    // Open reservations are consistent before recovery, not discrepancies.
    let report = assert_reconciles(url).await;
    assert_eq!(report.open_reservations, 4);
    drop(engine);

    // KeepOpen: a durability layer gets them back, balances as they were.
    let keep = BillingEngine::open(BillingConfig {
        recovery: RecoveryPolicy::KeepOpen,
        ..BillingConfig::with_url(url)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(keep.balance(acc).ok(), Some(before));
    let still_open: Vec<String> = keep
        .open_reservations()
        .into_iter()
        .map(|o| o.reference)
        .collect();
    assert_eq!(
        still_open,
        ["r2", "r3", "r4", "r5"].map(String::from).to_vec()
    );
    assert_eq!(keep.recovery_report().kept_open, 4);
    keep.commit(acc, "r2", Some("op-2"))
        .unwrap_or_else(|e| panic!("{e}"));
    keep.flush().await.unwrap_or_else(|e| panic!("{e}"));
    drop(keep);

    // Default: what never went out is refunded by `recovery`.
    let engine = open(url).await;
    let rep = engine.recovery_report();
    assert_eq!((rep.open_found, rep.refunded, rep.committed), (3, 3, 0));
    assert!(engine.open_reservations().is_empty());
    let b = engine.balance(acc).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((b.balance, b.reserved), (Micros(98 * PRICE), Micros(0)));
    assert_eq!(
        engine.commit(acc, "r3", None).err().map(|e| e.to_string()),
        Some("reservation r3 was already refunded; cannot commit it".into())
    );
    drop(engine);
    let report = assert_reconciles(url).await;
    assert_eq!(report.open_reservations, 0);
}
both_backends!(restart_rebuilds_and_resolves);

/// Wraps a real store and fails every batch while `down` is set.
struct FlakyStore {
    inner: Arc<dyn LedgerStore>,
    down: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl LedgerStore for FlakyStore {
    fn backend(&self) -> &'static str {
        "flaky"
    }
    async fn write_batch(&self, batch: &Batch) -> Result<(), BillingError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BillingError::StoreUnavailable(
                "connection refused (test)".into(),
            ));
        }
        self.inner.write_batch(batch).await
    }
    async fn max_ledger_id(&self) -> Result<i64, BillingError> {
        self.inner.max_ledger_id().await
    }
    async fn insert_account(&self, a: &Account) -> Result<AccountId, BillingError> {
        self.inner.insert_account(a).await
    }
    async fn update_account(&self, a: &Account) -> Result<(), BillingError> {
        self.inner.update_account(a).await
    }
    async fn load_accounts(&self) -> Result<Vec<Account>, BillingError> {
        self.inner.load_accounts().await
    }
    async fn ledger_sums(&self) -> Result<Vec<AccountSums>, BillingError> {
        self.inner.ledger_sums().await
    }
    async fn balance_rows(&self) -> Result<Vec<AccountSums>, BillingError> {
        self.inner.balance_rows().await
    }
    async fn pending_cdrs(&self) -> Result<Vec<PendingCdr>, BillingError> {
        self.inner.pending_cdrs().await
    }
    async fn admin_refs(&self) -> Result<Vec<(AccountId, String)>, BillingError> {
        self.inner.admin_refs().await
    }
    async fn recent_closed(&self, since: i64, limit: i64) -> Result<Vec<ClosedRef>, BillingError> {
        self.inner.recent_closed(since, limit).await
    }
    async fn volumes(&self, from: i64, to: i64) -> Result<Vec<(AccountId, u64)>, BillingError> {
        self.inner.volumes(from, to).await
    }
    async fn upsert_tariff(&self, t: &Tariff) -> Result<TariffId, BillingError> {
        self.inner.upsert_tariff(t).await
    }
    async fn delete_tariff(&self, id: TariffId) -> Result<(), BillingError> {
        self.inner.delete_tariff(id).await
    }
    async fn load_tariffs(&self) -> Result<Vec<Tariff>, BillingError> {
        self.inner.load_tariffs().await
    }
    async fn audit_references(
        &self,
        f: &mut (dyn FnMut(RefAudit) + Send),
    ) -> Result<(), BillingError> {
        self.inner.audit_references(f).await
    }
    async fn audit_log(
        &self,
        action: Option<&str>,
        limit: i64,
    ) -> Result<Vec<billing::AuditEvent>, BillingError> {
        self.inner.audit_log(action, limit).await
    }
    async fn invoice_lines(
        &self,
        a: AccountId,
        from: i64,
        to: i64,
    ) -> Result<Vec<InvoiceLine>, BillingError> {
        self.inner.invoice_lines(a, from, to).await
    }
    async fn close(&self) {
        self.inner.close().await
    }
}

async fn store_outage(url: &str) {
    let down = Arc::new(AtomicBool::new(false));
    let store: Arc<dyn LedgerStore> = Arc::new(FlakyStore {
        inner: open_store(url).await.unwrap_or_else(|e| panic!("{e}")),
        down: down.clone(),
    });
    let engine = BillingEngine::with_store(
        store,
        BillingConfig {
            buffer_capacity: 64,
            ..BillingConfig::with_url(url)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let acc = client(&engine, QuotaOptions::default(), 0).await;
    top_up(&engine, acc, 1_000 * PRICE, "t1").await;
    assert!(engine.is_store_healthy());

    down.store(true, Ordering::SeqCst);
    // Keep serving from memory until the buffer is full, then refuse with a clear error.
    let mut accepted = Vec::new();
    let refusal = loop {
        let r = format!("o{}", accepted.len());
        match engine.reserve(req(acc, &r, PRICE, 1)) {
            Ok(_) => {
                engine
                    .commit(acc, &r, Some("op"))
                    .unwrap_or_else(|e| panic!("{e}"));
                accepted.push(r);
            }
            Err(e) => break e,
        }
        if accepted.len() > 1_000 {
            panic!("buffer never filled");
        }
        if accepted.len() % 8 == 0 {
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    };
    assert!(
        matches!(refusal, BillingError::BufferFull { .. }),
        "{refusal}"
    );
    assert!(refusal.is_store_fault());
    assert!(!accepted.is_empty());
    assert!(matches!(
        engine.flush().await,
        Err(BillingError::StoreUnavailable(_))
    ));
    assert!(!engine.is_store_healthy());
    let m = engine.metrics();
    assert!(
        !m.store_healthy && m.buffered > 0 && m.failed_flushes > 0,
        "{m:?}"
    );
    assert!(m.last_error.is_some());
    // Top-ups wait for the store: refused while it is away.
    let t = engine
        .top_up(billing::LedgerRequest {
            account: acc,
            amount: Micros(1),
            currency: eur(),
            sms_count: 0,
            reference: "t2".into(),
            actor: "ops".into(),
            origin: "test".into(),
            reason: String::new(),
        })
        .await;
    assert!(matches!(t, Err(BillingError::StoreUnavailable(_))));

    down.store(false, Ordering::SeqCst);
    engine.flush().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(engine.is_store_healthy());
    assert_eq!(engine.metrics().buffered, 0);
    engine
        .reserve(req(acc, "after", PRICE, 1))
        .unwrap_or_else(|e| panic!("{e}"));
    engine
        .refund(acc, "after", "EXPIRED")
        .unwrap_or_else(|e| panic!("{e}"));
    engine.flush().await.unwrap_or_else(|e| panic!("{e}"));
    let balance = engine.balance(acc).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        balance.balance,
        Micros((1_000 - accepted.len() as i64) * PRICE)
    );
    drop(engine);
    let report = assert_reconciles(url).await;
    assert_eq!(report.messages_checked, accepted.len() + 1);
    let engine = open(url).await;
    assert_eq!(engine.balance(acc).ok(), Some(balance));
}
both_backends!(store_outage);

async fn sigkill_mid_batch(url: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_billing-crash-child"))
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn child: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut lines = BufReader::new(stdout).lines();
    let mut account = None;
    let mut durable = (0i64, 0i64);
    let mut seen = 0;
    while seen < 6 {
        let Some(Ok(line)) = lines.next() else {
            panic!("child ended early");
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["account", id] => account = id.parse::<i64>().ok(),
            ["durable", n, m] => {
                durable = (n.parse().unwrap_or(0), m.parse().unwrap_or(0));
                seen += 1;
            }
            _ => panic!("unexpected child output {line:?}"),
        }
    }
    // Kill it while it is still reserving and committing (SIGKILL: no flush, no drop).
    child.kill().unwrap_or_else(|e| panic!("kill: {e}"));
    let status = child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
    assert!(!status.success());
    let account = AccountId(account.unwrap_or_else(|| panic!("child printed no account")));

    // Before recovery the store is consistent (open reservations are PENDING, no more).
    assert_reconciles(url).await;
    let engine = open(url).await;
    let rep = engine.recovery_report();
    assert_eq!(rep.open_found, rep.refunded + rep.committed, "{rep:?}");
    // Messages ending in 9 are never settled by the child: some were open at the kill.
    assert!(rep.refunded > 0, "{rep:?}");
    assert!(rep.snapshot_mismatches.is_empty(), "{rep:?}");
    assert!(engine.open_reservations().is_empty());
    let b = engine.balance(account).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.reserved, Micros(0));
    drop(engine);
    let report = assert_reconciles(url).await;
    assert_eq!(report.open_reservations, 0);

    // No lost charge: everything the child saw flushed is in the CDR and the ledger.
    let now = billing::ledger::now_micros();
    let month = (2020..2100)
        .flat_map(|y| (1..=12).map(move |m| (y, m)))
        .find(|&(y, m)| {
            billing::recovery::month_bounds(y, m).is_ok_and(|(s, e)| (s..e).contains(&now))
        })
        .unwrap_or_else(|| panic!("no month"));
    let mut csv = Vec::new();
    let inv = billing::cli::invoice_csv(url, account.0, month.0, month.1, &mut csv)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let charged: Vec<_> = inv
        .lines
        .iter()
        .filter(|l| l.charge_status == billing::ChargeStatus::Charged)
        .collect();
    let (msgs, micros): (i64, i64) = charged
        .iter()
        .fold((0, 0), |a, l| (a.0 + l.messages, a.1 + l.amount.0));
    assert!(
        msgs >= durable.0 && micros >= durable.1,
        "durable {durable:?}, store {msgs} {micros}"
    );
    assert_eq!(Micros::units(1_000_000).0 - micros, b.balance.0);
}
both_backends!(sigkill_mid_batch);
