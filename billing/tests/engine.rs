//! The hot path against both stores: concurrency, idempotency, refusals, Jasmin quotas.

mod common;

use std::sync::{Arc, Barrier};

use billing::{
    AccountId, AccountStatus, BillingError, Currency, LedgerRequest, Micros, QuotaOptions,
    Settlement,
};
use common::*;

const PRICE: i64 = 12_500; // 0.0125 per message

async fn concurrency(url: &str) {
    let engine = open(url).await;
    let acc = client(&engine, QuotaOptions::default(), 0).await;
    top_up(&engine, acc, 500 * PRICE, "t1").await;

    // 1,000 reservations from 8 threads released together against funds for exactly 500.
    let threads = 8;
    let per_thread = 125;
    let barrier = Arc::new(Barrier::new(threads));
    let results: Vec<Vec<(String, Result<(), BillingError>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let engine = engine.clone();
                let barrier = barrier.clone();
                s.spawn(move || {
                    barrier.wait();
                    (0..per_thread)
                        .map(|i| {
                            let r = format!("m-{t}-{i}");
                            let out = engine.reserve(req(acc, &r, PRICE, 1)).map(|_| ());
                            (r, out)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panic!("thread panicked")))
            .collect()
    });
    let all: Vec<_> = results.into_iter().flatten().collect();
    let ok: Vec<&String> = all
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(r, _)| r)
        .collect();
    assert_eq!(ok.len(), 500);
    for (_, r) in all.iter().filter(|(_, r)| r.is_err()) {
        assert!(
            matches!(r, Err(BillingError::InsufficientFunds { .. })),
            "unexpected {r:?}"
        );
    }
    let b = engine.balance(acc).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.reserved, Micros(500 * PRICE));
    assert_eq!(b.available, Micros(0));

    // Commit two thirds, refund the rest.
    let mut committed = 0;
    for (i, r) in ok.iter().enumerate() {
        if i % 3 == 2 {
            engine
                .refund(acc, r, "REJECTD")
                .unwrap_or_else(|e| panic!("{e}"));
        } else {
            engine
                .commit(acc, r, Some("op-1"))
                .unwrap_or_else(|e| panic!("{e}"));
            committed += 1;
        }
    }
    let b = engine.balance(acc).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.reserved, Micros(0));
    assert_eq!(b.balance, Micros((500 - committed) * PRICE));
    engine.flush().await.unwrap_or_else(|e| panic!("{e}"));
    let report = assert_reconciles(url).await;
    assert_eq!(report.messages_checked, 500);
    drop(engine);

    // The same numbers come back from the store.
    let engine = open(url).await;
    let b2 = engine.balance(acc).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b2, b);
    assert!(engine.open_reservations().is_empty());
}
both_backends!(concurrency);

async fn idempotency(url: &str) {
    let engine = open(url).await;
    let acc = client(&engine, QuotaOptions::default(), 0).await;
    top_up(&engine, acc, 100 * PRICE, "t1").await;

    let first = engine
        .reserve(req(acc, "m1", 3 * PRICE, 3))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!first.duplicate);
    let again = engine
        .reserve(req(acc, "m1", 3 * PRICE, 3))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.duplicate);
    assert!(matches!(
        engine.reserve(req(acc, "m1", PRICE, 1)),
        Err(BillingError::DuplicateReference(_))
    ));
    engine
        .reserve(req(acc, "m2", PRICE, 1))
        .unwrap_or_else(|e| panic!("{e}"));

    let c1 = engine
        .commit(acc, "m1", Some("op"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (c1.settlement, c1.amount),
        (Settlement::Applied, Micros(3 * PRICE))
    );
    let before = engine.balance(acc).unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..3 {
        let c = engine
            .commit(acc, "m1", Some("op"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.settlement, c.amount), (Settlement::Duplicate, Micros(0)));
    }
    assert!(matches!(
        engine.refund(acc, "m1", "EXPIRED"),
        Err(BillingError::AlreadySettled { .. })
    ));
    let r1 = engine
        .refund(acc, "m2", "REJECTD")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r1.settlement, Settlement::Applied);
    let r2 = engine
        .refund(acc, "m2", "REJECTD")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r2.settlement, Settlement::Duplicate);
    assert!(matches!(
        engine.commit(acc, "m2", None),
        Err(BillingError::AlreadySettled { .. })
    ));
    // A retried top-up changes nothing either.
    let dup = engine
        .top_up(LedgerRequest {
            account: acc,
            amount: Micros(100 * PRICE),
            currency: eur(),
            sms_count: 0,
            reference: "t1".into(),
            actor: "test".into(),
            origin: "test".into(),
            reason: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(dup.duplicate);
    let after = engine.balance(acc).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after.balance, before.balance);
    assert_eq!(after.reserved, Micros(0));
    assert_eq!(after.balance, Micros(97 * PRICE));
    engine.flush().await.unwrap_or_else(|e| panic!("{e}"));
    assert_reconciles(url).await;
    drop(engine);

    // After a restart, retries are still no-ops (settled references are reloaded).
    let engine = open(url).await;
    let c = engine
        .commit(acc, "m1", Some("op"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.settlement, Settlement::Duplicate);
    let r = engine
        .refund(acc, "m2", "REJECTD")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.settlement, Settlement::Duplicate);
    assert_eq!(
        engine.balance(acc).map(|b| b.balance).ok(),
        Some(Micros(97 * PRICE))
    );
}
both_backends!(idempotency);

async fn refusals(url: &str) {
    let engine = open(url).await;
    let acc = client(&engine, QuotaOptions::default(), 0).await;
    top_up(&engine, acc, 10 * PRICE, "t1").await;
    let usd = Currency::new("USD").unwrap_or_else(|e| panic!("{e}"));

    assert!(matches!(
        engine.reserve(req(AccountId(999_999), "x", PRICE, 1)),
        Err(BillingError::UnknownAccount(AccountId(999_999)))
    ));
    // A free route (rate 0) is a reservation of nothing, not a refusal.
    assert!(engine.reserve(req(acc, "free", 0, 1)).is_ok());
    assert!(matches!(
        engine.reserve(req(acc, "x", -5, 1)),
        Err(BillingError::InvalidAmount(_))
    ));
    assert!(matches!(
        engine.reserve(req(acc, "x", PRICE, 0)),
        Err(BillingError::InvalidRequest(_))
    ));
    assert!(matches!(
        engine.reserve(req(acc, "", PRICE, 1)),
        Err(BillingError::InvalidRequest(_))
    ));
    let mut r = req(acc, "x", PRICE, 1);
    r.currency = usd;
    assert!(matches!(
        engine.reserve(r),
        Err(BillingError::CurrencyMismatch { .. })
    ));
    assert!(matches!(
        engine.reserve(req(acc, "x", 11 * PRICE, 1)),
        Err(BillingError::InsufficientFunds { .. })
    ));
    assert!(matches!(
        engine.commit(acc, "never-reserved", None),
        Err(BillingError::UnknownReservation { .. })
    ));
    let top = |amount: i64, currency: Currency, reference: &str| LedgerRequest {
        account: acc,
        amount: Micros(amount),
        currency,
        sms_count: 0,
        reference: reference.into(),
        actor: "ops".into(),
        origin: "test".into(),
        reason: "r".into(),
    };
    assert!(matches!(
        engine.top_up(top(0, eur(), "a")).await,
        Err(BillingError::InvalidAmount(_))
    ));
    assert!(matches!(
        engine.top_up(top(-1, eur(), "a")).await,
        Err(BillingError::InvalidAmount(_))
    ));
    assert!(matches!(
        engine.top_up(top(5, usd, "a")).await,
        Err(BillingError::CurrencyMismatch { .. })
    ));
    assert!(matches!(
        engine.adjust(top(0, eur(), "a")).await,
        Err(BillingError::InvalidAmount(_))
    ));
    let mut no_reason = top(-5, eur(), "a");
    no_reason.reason.clear();
    assert!(matches!(
        engine.adjust(no_reason).await,
        Err(BillingError::InvalidRequest(_))
    ));

    // Credit limit widens what may be reserved; suspension stops new reservations.
    engine
        .set_credit_limit(acc, Micros(PRICE))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    engine
        .reserve(req(acc, "y", 11 * PRICE, 1))
        .unwrap_or_else(|e| panic!("{e}"));
    engine
        .set_status(acc, AccountStatus::Suspended)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        engine.reserve(req(acc, "z", 1, 1)),
        Err(BillingError::Suspended(_))
    ));
    // Closing an existing reservation still works on a suspended account.
    engine
        .commit(acc, "y", None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        engine.balance(acc).map(|b| b.balance).ok(),
        Some(Micros(-PRICE))
    );
    // A signed adjustment with a reason and actor brings it back.
    let mut adj = top(PRICE, eur(), "adj-1");
    adj.reason = "goodwill for incident 42".into();
    let out = engine.adjust(adj).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.balance, Micros(0));
    engine.flush().await.unwrap_or_else(|e| panic!("{e}"));
    assert_reconciles(url).await;
    drop(engine);
    let engine = open(url).await;
    let a = engine
        .account(acc)
        .unwrap_or_else(|| panic!("account lost"));
    assert_eq!(a.status, AccountStatus::Suspended);
    assert_eq!(a.credit_limit, Micros(PRICE));
}
both_backends!(refusals);

async fn jasmin_quotas(url: &str) {
    let engine = open(url).await;
    let early = client(
        &engine,
        QuotaOptions {
            early_percent: Some(30),
            sms_count_limited: true,
        },
        0,
    )
    .await;
    engine
        .top_up(LedgerRequest {
            account: early,
            amount: Micros(1_000_000),
            currency: eur(),
            sms_count: 5,
            reference: "t1".into(),
            actor: "ops".into(),
            origin: "test".into(),
            reason: "contract".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // 3 parts at 0.1: 0.03 × 3... early share 30 % of 300000 = 90000 debited at once.
    let r = engine
        .reserve(req(early, "e1", 300_000, 3))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.charged_now, Micros(90_000));
    let b = engine.balance(early).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (b.balance, b.reserved, b.sms_count),
        (Micros(910_000), Micros(210_000), Some(2))
    );
    // The rest on success.
    let c = engine
        .commit(early, "e1", Some("op"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.amount, Micros(210_000));
    // A failure keeps the early share (Jasmin does not refund) and the sms_count.
    engine
        .reserve(req(early, "e2", 100_000, 1))
        .unwrap_or_else(|e| panic!("{e}"));
    let rf = engine
        .refund(early, "e2", "UNDELIV")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rf.amount, Micros(70_000));
    let b = engine.balance(early).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (b.balance, b.reserved, b.sms_count),
        (Micros(670_000), Micros(0), Some(1))
    );
    // sms_count: 1 left, a 2-part message is refused even though money is there.
    assert!(matches!(
        engine.reserve(req(early, "e3", 200_000, 2)),
        Err(BillingError::QuotaExhausted {
            needed: 2,
            left: 1,
            ..
        })
    ));
    engine.flush().await.unwrap_or_else(|e| panic!("{e}"));
    assert_reconciles(url).await;

    // The invoice shows what was actually debited: 0.3 charged + 0.03 retained.
    let now = billing::ledger::now_micros();
    let (y, m) = year_month_of(now);
    let mut csv = Vec::new();
    let inv = billing::cli::invoice_csv(url, early.0, y, m, &mut csv)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(inv.total(), Micros(330_000));
    let text = String::from_utf8(csv).unwrap_or_default();
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.ends_with("TOTAL,,,2,4,0.330000")),
        "{text}"
    );
    drop(engine);
    let engine = open(url).await;
    let b2 = engine.balance(early).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b2, b);
}
both_backends!(jasmin_quotas);

/// (year, month) in UTC of a unix-microsecond time.
fn year_month_of(at: i64) -> (i32, u32) {
    for y in 2020..2100 {
        for m in 1..=12 {
            if let Ok((s, e)) = billing::recovery::month_bounds(y, m)
                && (s..e).contains(&at)
            {
                return (y, m);
            }
        }
    }
    panic!("time out of range")
}

#[tokio::test]
async fn grpc_service_maps_engine_answers() {
    use billing::grpc::BillingService;
    use proto::billing::billing_server::Billing;
    use proto::billing::{
        BalanceRequest, CommitRequest, MessageMeta, ReserveRequest, TopUpRequest,
    };
    use tonic::{Code, Request};

    let db = TestDb::sqlite();
    let engine = open(&db.url).await;
    let acc = client(&engine, QuotaOptions::default(), 0).await;
    let svc = BillingService::new(engine.clone());
    svc.top_up(Request::new(TopUpRequest {
        account_id: acc.0,
        amount_micros: 2 * PRICE,
        currency: "EUR".into(),
        reference: "t".into(),
        actor: "api".into(),
        reason: "prepaid".into(),
        sms_count: 0,
    }))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let reserve = |r: &str, amount: i64| ReserveRequest {
        account_id: acc.0,
        reference: r.into(),
        amount_micros: amount,
        currency: "EUR".into(),
        message: Some(MessageMeta {
            parts: 1,
            ..Default::default()
        }),
    };
    svc.reserve(Request::new(reserve("g1", PRICE)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let err = svc
        .reserve(Request::new(reserve("g2", 5 * PRICE)))
        .await
        .err();
    assert_eq!(err.map(|s| s.code()), Some(Code::FailedPrecondition));
    let err = svc.reserve(Request::new(reserve("g3", -1))).await.err();
    assert_eq!(err.map(|s| s.code()), Some(Code::InvalidArgument));
    // A free route: accepted.
    svc.reserve(Request::new(reserve("g3-free", 0)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut unknown = reserve("g4", PRICE);
    unknown.account_id = 424_242;
    let err = svc.reserve(Request::new(unknown)).await.err();
    assert_eq!(err.map(|s| s.code()), Some(Code::NotFound));
    svc.commit(Request::new(CommitRequest {
        account_id: acc.0,
        reference: "g1".into(),
        operator_message_id: "op".into(),
    }))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let b = svc
        .balance(Request::new(BalanceRequest { account_id: acc.0 }))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(
        (b.balance_micros, b.reserved_micros, b.currency.as_str()),
        (PRICE, 0, "EUR")
    );
    drop((svc, engine));
    db.cleanup().await;
}

#[tokio::test]
async fn unreachable_store_at_start_is_a_clear_error() {
    let pg = open_err("postgres://postgres@127.0.0.1:1/nowhere").await;
    assert!(matches!(pg, BillingError::StoreUnavailable(_)), "{pg}");
    let sq = open_err("sqlite:///nonexistent-dir-for-billing/x.db").await;
    assert!(matches!(sq, BillingError::StoreUnavailable(_)), "{sq}");
    let bad = open_err("mysql://x").await;
    assert!(matches!(bad, BillingError::InvalidUrl(_)), "{bad}");
}

async fn open_err(url: &str) -> BillingError {
    match billing::BillingEngine::open(billing::BillingConfig::with_url(url)).await {
        Ok(_) => panic!("{url} opened"),
        Err(e) => e,
    }
}

async fn reconcile_detects_tampering(url: &str) {
    let engine = open(url).await;
    let acc = client(&engine, QuotaOptions::default(), 0).await;
    top_up(&engine, acc, 10 * PRICE, "t1").await;
    engine
        .reserve(req(acc, "m1", PRICE, 1))
        .unwrap_or_else(|e| panic!("{e}"));
    engine
        .commit(acc, "m1", Some("op"))
        .unwrap_or_else(|e| panic!("{e}"));
    engine.flush().await.unwrap_or_else(|e| panic!("{e}"));
    drop(engine);
    assert_reconciles(url).await;

    // Someone edits the store behind billing's back: reconcile must say so.
    let edits = if url.starts_with("sqlite:") {
        [
            "UPDATE balances SET balance = balance + 1",
            "UPDATE cdr SET charged = charged - 1",
            "INSERT INTO ledger (id, account_id, kind, amount, balance_delta, reserved_delta, \
             sms_delta, reference, actor, at) VALUES (999999, 424242, 'TOPUP', 5, 5, 0, 0, 'x', 'y', 0)",
        ]
    } else {
        [
            "UPDATE balances SET balance = balance + 0.000001",
            "UPDATE cdr SET charged = charged - 0.000001",
            "INSERT INTO ledger (id, account_id, kind, amount, balance_delta, reserved_delta, \
             sms_delta, reference, actor, at) VALUES (999999, 424242, 'TOPUP', 5, 5, 0, 0, 'x', 'y', now())",
        ]
    };
    for sql in edits {
        if url.starts_with("sqlite:") {
            let p = sqlx::SqlitePool::connect(url)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            sqlx::query(sql)
                .execute(&p)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            p.close().await;
        } else {
            let opts: sqlx::postgres::PgConnectOptions =
                url.parse().unwrap_or_else(|e| panic!("{e}"));
            let p = sqlx::PgPool::connect_with(opts)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            sqlx::query(sql)
                .execute(&p)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            p.close().await;
        }
    }
    let report = billing::cli::reconcile(url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!report.is_clean());
    let text = report.to_string();
    assert_eq!(report.discrepancies.len(), 3, "{text}");
    assert!(
        text.contains(&format!("account {acc}: balance is")),
        "{text}"
    );
    assert!(text.contains("message m1"), "{text}");
    assert!(
        text.contains("account 424242: ledger entries but no such account"),
        "{text}"
    );
}
both_backends!(reconcile_detects_tampering);

async fn audit_log_keeps_who_what_when_and_where(url: &str) {
    let engine = open(url).await;
    let acc = client(&engine, QuotaOptions::default(), 0).await;
    top_up(&engine, acc, 10 * PRICE, "pay-1").await;
    top_up(&engine, acc, 10 * PRICE, "pay-1").await; // a retry: no second line
    engine
        .adjust(LedgerRequest {
            account: acc,
            amount: Micros(-PRICE),
            currency: eur(),
            sms_count: 0,
            reference: "fix-1".into(),
            actor: "alice".into(),
            origin: "grpc 10.0.0.5:51234".into(),
            reason: "duplicate charge on invoice 42".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    engine
        .record_audit(billing::AuditEvent::new(
            "root",
            "file /etc/smsgw.toml",
            "config.loaded",
            "/etc/smsgw.toml",
            "sha256=abc",
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    drop(engine);

    // Stored, so a restart still has it.
    let engine = open(url).await;
    let log = engine
        .audit_log(None, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["config.loaded", "balance.adjust", "balance.top_up"],
        "newest first, one line per change"
    );
    let adjust = &log[1];
    assert_eq!(adjust.actor, "alice");
    assert_eq!(adjust.origin, "grpc 10.0.0.5:51234");
    assert_eq!(adjust.subject, format!("account:{acc}"));
    assert!(adjust.detail.contains("duplicate charge on invoice 42"));
    assert!(adjust.detail.contains("reference=fix-1"));
    assert!(adjust.at > 0 && adjust.at <= log[0].at);
    let only = engine
        .audit_log(Some("balance.top_up"), 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].origin, "test");
}
both_backends!(audit_log_keeps_who_what_when_and_where);

/// A receipt reaches the CDR whether it arrives in the same write batch as its row (merged
/// into the insert) or in a later one (an update).
async fn receipts_reach_the_cdr(url: &str) {
    let engine = open(url).await;
    let acc = client(&engine, QuotaOptions::default(), 0).await;
    top_up(&engine, acc, 10 * PRICE, "t1").await;
    for m in ["same-batch", "later-batch"] {
        engine
            .reserve(req(acc, m, PRICE, 1))
            .unwrap_or_else(|e| panic!("{e}"));
        engine
            .commit(acc, m, Some("op"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    engine
        .record_receipt(acc, "same-batch", "DELIVRD", Some(1_000_000))
        .unwrap_or_else(|e| panic!("{e}"));
    engine.flush().await.unwrap_or_else(|e| panic!("{e}"));
    engine
        .record_receipt(acc, "later-batch", "UNDELIV", Some(2_000_000))
        .unwrap_or_else(|e| panic!("{e}"));
    engine.flush().await.unwrap_or_else(|e| panic!("{e}"));
    drop(engine);

    let sql = "SELECT message_id, final_status, receipt_at IS NOT NULL AS has_receipt, \
               charge_status FROM cdr ORDER BY message_id";
    let rows: Vec<(String, Option<String>, bool, String)> = if url.starts_with("sqlite:") {
        let p = sqlx::SqlitePool::connect(url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let rows = sqlx::query_as(sql)
            .fetch_all(&p)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        p.close().await;
        rows
    } else {
        let opts: sqlx::postgres::PgConnectOptions = url.parse().unwrap_or_else(|e| panic!("{e}"));
        let p = sqlx::PgPool::connect_with(opts)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let rows = sqlx::query_as(sql)
            .fetch_all(&p)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        p.close().await;
        rows
    };
    assert_eq!(
        rows,
        vec![
            (
                "later-batch".into(),
                Some("UNDELIV".into()),
                true,
                "CHARGED".into()
            ),
            (
                "same-batch".into(),
                Some("DELIVRD".into()),
                true,
                "CHARGED".into()
            ),
        ]
    );
    assert_reconciles(url).await;
}
both_backends!(receipts_reach_the_cdr);

/// Reserve and commit in one write batch are one DEBIT row; a commit in a later batch is
/// its own CHARGE row. Both reconcile.
async fn settled_in_one_batch_is_one_ledger_row(url: &str) {
    let engine = open(url).await;
    let acc = client(
        &engine,
        QuotaOptions {
            early_percent: Some(50),
            ..QuotaOptions::default()
        },
        0,
    )
    .await;
    top_up(&engine, acc, 10 * PRICE, "t1").await;
    engine
        .reserve(req(acc, "one-batch", PRICE, 1))
        .unwrap_or_else(|e| panic!("{e}"));
    engine
        .commit(acc, "one-batch", Some("op"))
        .unwrap_or_else(|e| panic!("{e}"));
    engine
        .reserve(req(acc, "two-batches", PRICE, 1))
        .unwrap_or_else(|e| panic!("{e}"));
    engine.flush().await.unwrap_or_else(|e| panic!("{e}"));
    engine
        .commit(acc, "two-batches", Some("op"))
        .unwrap_or_else(|e| panic!("{e}"));
    engine.flush().await.unwrap_or_else(|e| panic!("{e}"));
    drop(engine);

    let sql = "SELECT reference, kind FROM ledger WHERE reference <> 't1' ORDER BY id";
    let rows: Vec<(String, String)> = if url.starts_with("sqlite:") {
        let p = sqlx::SqlitePool::connect(url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let rows = sqlx::query_as(sql)
            .fetch_all(&p)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        p.close().await;
        rows
    } else {
        let opts: sqlx::postgres::PgConnectOptions = url.parse().unwrap_or_else(|e| panic!("{e}"));
        let p = sqlx::PgPool::connect_with(opts)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let rows = sqlx::query_as(sql)
            .fetch_all(&p)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        p.close().await;
        rows
    };
    let rows: Vec<(&str, &str)> = rows.iter().map(|(r, k)| (r.as_str(), k.as_str())).collect();
    // The early 50 % of "two-batches" is folded into its reserve as well.
    assert_eq!(
        rows,
        vec![
            ("one-batch", "DEBIT"),
            ("two-batches", "DEBIT"),
            ("two-batches", "CHARGE"),
        ]
    );
    assert_reconciles(url).await;
}
both_backends!(settled_in_one_batch_is_one_ledger_row);

/// Billing off (`memory:`): balances are kept, and the write-behind drops what it
/// drains instead of coalescing batches for a store that writes nothing.
#[tokio::test]
async fn a_store_that_keeps_no_records_gets_no_batches() {
    let engine = open("memory:").await;
    let acc = client(&engine, QuotaOptions::default(), 0).await;
    top_up(&engine, acc, 10 * PRICE, "t1").await;
    for i in 0..10 {
        let reference = format!("m-{i}");
        engine.reserve(req(acc, &reference, PRICE, 1)).unwrap();
        engine.commit(acc, &reference, Some("op")).unwrap();
    }
    engine.flush().await.unwrap();
    let m = engine.metrics();
    assert_eq!(m.buffered, 0, "everything drained");
    assert!(m.flushed_ops > 0);
    assert_eq!(m.flushes, 0, "no batch was built nor written");
    assert_eq!(engine.balance(acc).unwrap().available, Micros(0));
}
