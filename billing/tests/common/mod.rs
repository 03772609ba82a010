//! Test backends: SQLite in a temporary file, and PostgreSQL in a fresh schema of the
//! server named by SMSGW_TEST_POSTGRES_URL (skipped, loudly, when it is not set).
#![allow(dead_code)]

use billing::{
    AccountId, AccountKind, BillingConfig, BillingEngine, Currency, LedgerRequest, MessageMeta,
    Micros, NewAccount, QuotaOptions, ReserveRequest,
};

pub const PG_ENV: &str = "SMSGW_TEST_POSTGRES_URL";

pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(std::path::PathBuf),
    Schema { admin_url: String, schema: String },
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let path = std::env::temp_dir().join(format!("billing-test-{}.db", uuid::Uuid::new_v4()));
        TestDb {
            url: format!("sqlite://{}", path.display()),
            cleanup: Cleanup::File(path),
        }
    }

    /// A fresh schema on the test server, or None (with a note on stderr) when unset.
    pub async fn postgres() -> Option<TestDb> {
        let Ok(base) = std::env::var(PG_ENV) else {
            eprintln!("skipped: {PG_ENV} not set");
            return None;
        };
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("cannot reach {base}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("create schema: {e}"));
        pool.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(TestDb {
            url: format!("{base}{sep}options[search_path]={schema}"),
            cleanup: Cleanup::Schema {
                admin_url: base,
                schema,
            },
        })
    }

    pub async fn cleanup(self) {
        match self.cleanup {
            Cleanup::File(p) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut f = p.clone().into_os_string();
                    f.push(suffix);
                    let _ = std::fs::remove_file(f);
                }
            }
            Cleanup::Schema { admin_url, schema } => {
                if let Ok(pool) = sqlx::PgPool::connect(&admin_url).await {
                    let _ =
                        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                            .execute(&pool)
                            .await;
                    pool.close().await;
                }
            }
        }
    }
}

/// Declares one test per backend from an `async fn(&str)` taking the store URL.
#[macro_export]
macro_rules! both_backends {
    ($case:ident) => {
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::common::TestDb::sqlite();
                super::$case(&db.url).await;
                db.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = $crate::common::TestDb::postgres().await else {
                    return;
                };
                super::$case(&db.url).await;
                db.cleanup().await;
            }
        }
    };
}

pub fn eur() -> Currency {
    Currency::new("EUR").unwrap_or_else(|e| panic!("{e}"))
}

pub async fn open(url: &str) -> BillingEngine {
    BillingEngine::open(BillingConfig::with_url(url))
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"))
}

pub async fn client(engine: &BillingEngine, quota: QuotaOptions, credit: i64) -> AccountId {
    engine
        .create_account(NewAccount {
            parent_id: None,
            kind: AccountKind::Client,
            name: "bank".into(),
            currency: eur(),
            quota,
            credit_limit: Micros(credit),
        })
        .await
        .unwrap_or_else(|e| panic!("create account: {e}"))
        .id
}

pub async fn top_up(engine: &BillingEngine, account: AccountId, amount: i64, reference: &str) {
    engine
        .top_up(LedgerRequest {
            account,
            amount: Micros(amount),
            currency: eur(),
            sms_count: 0,
            reference: reference.into(),
            actor: "test".into(),
            origin: "test".into(),
            reason: "test funds".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("top up: {e}"));
}

pub fn meta(parts: u32) -> MessageMeta {
    MessageMeta {
        user: "u1".into(),
        connector: "smsc-a".into(),
        operator: "250-01".into(),
        destination: "+79001234567".into(),
        sender: "BANK".into(),
        parts,
        text_length: 42,
        text_hash: "h".into(),
        ..Default::default()
    }
}

pub fn req(account: AccountId, reference: &str, amount: i64, parts: u32) -> ReserveRequest {
    ReserveRequest {
        account,
        reference: reference.into(),
        amount: Micros(amount),
        currency: eur(),
        meta: meta(parts),
    }
}

pub async fn assert_reconciles(url: &str) -> billing::ReconcileReport {
    let report = billing::cli::reconcile(url)
        .await
        .unwrap_or_else(|e| panic!("reconcile: {e}"));
    assert!(report.is_clean(), "{report}");
    report
}
