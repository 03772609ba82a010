//! SQLite store: the embedded default. WAL with synchronous=NORMAL: a committed batch
//! survives a crash of the process (it is in the WAL, handed to the OS), but the last
//! batches before a power loss or an OS crash may be lost; checkpoints are fsynced.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::{
    AccountSums, Batch, ClosedRef, InvoiceLine, LedgerStore, MarginLine, PendingCdr, RefAudit,
    currency_col, parse_col,
};
use crate::account::{Account, AccountId, QuotaOptions};
use crate::audit::AuditEvent;
use crate::error::BillingError;
use crate::ledger::{CdrRow, ChargeStatus, MessageMeta, UnixMicros};
use crate::money::Micros;
use crate::tariff::{Tariff, TariffId, VolumeTier};

/// Rows per multi-row INSERT: stays far below SQLite's 32 766 bound parameters, and
/// full chunks reuse one prepared statement.
const CHUNK: usize = 256;

/// Every write transaction starts with BEGIN IMMEDIATE: a deferred one that read first
/// would fail with SQLITE_BUSY_SNAPSHOT (no busy wait) if another connection wrote in
/// between; IMMEDIATE takes the write lock up front and waits on busy_timeout instead.
pub struct SqliteStore {
    pool: SqlitePool,
}

/// One per database file in this process: see [`write_gate`].
static WRITE_GATES: LazyLock<parking_lot::Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

/// Serialises this process's write transactions on the SQLite file behind `pool`.
///
/// SQLite lets one writer in at a time. A connection that finds the write lock taken
/// sleeps in SQLite's busy handler (1, 2, 5, 10… ms a try) and is not woken when the
/// lock is freed: that put whole milliseconds into REST API answers whose records were
/// written while billing's group commit held the lock. Waiting here instead hands the
/// lock over the moment it is free. A writer that does not take the gate (a rare admin
/// write) still meets the busy handler, as before. Hold the guard for one transaction,
/// never across another gated write.
pub async fn write_gate(pool: &SqlitePool) -> tokio::sync::OwnedMutexGuard<()> {
    let file = pool.connect_options().get_filename().to_path_buf();
    let gate = WRITE_GATES.lock().entry(file).or_default().clone();
    gate.lock_owned().await
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<SqliteStore, BillingError> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| BillingError::InvalidUrl(format!("{url}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            // 64 MiB of page cache: the ledger and CDR indexes stay hot under load.
            .pragma("cache_size", "-65536")
            .foreign_keys(true);
        // Every connection to :memory: is a different database: keep exactly one forever.
        let pool_opts = if memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(4)
        };
        let pool = pool_opts
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(|e| BillingError::StoreUnavailable(format!("{url}: {e}")))?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn account_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Account, BillingError> {
    let early: Option<i64> = r.try_get("early_percent")?;
    Ok(Account {
        id: AccountId(r.try_get("id")?),
        parent_id: r.try_get::<Option<i64>, _>("parent_id")?.map(AccountId),
        kind: r.try_get::<String, _>("kind")?.parse()?,
        name: r.try_get("name")?,
        status: r.try_get::<String, _>("status")?.parse()?,
        currency: currency_col(&r.try_get::<String, _>("currency")?)?,
        quota: QuotaOptions {
            early_percent: early.map(|p| p.clamp(1, 100) as u8),
            sms_count_limited: r.try_get::<i64, _>("sms_quota")? != 0,
        },
        credit_limit: Micros(r.try_get("credit_limit")?),
    })
}

/// The few distinct strings every row of a batch repeats (entry kinds, actors,
/// currencies, charge statuses), made once per batch and shared by its rows.
#[derive(Default)]
struct SharedStrings(std::collections::HashSet<std::sync::Arc<str>>);

impl SharedStrings {
    fn get(&mut self, text: &str) -> std::sync::Arc<str> {
        if let Some(shared) = self.0.get(text) {
            return shared.clone();
        }
        let shared: std::sync::Arc<str> = text.into();
        self.0.insert(shared.clone());
        shared
    }
}

fn cdr_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<CdrRow, BillingError> {
    Ok(CdrRow {
        message_id: r.try_get::<String, _>("message_id")?.into(),
        account: AccountId(r.try_get("account_id")?),
        meta: std::sync::Arc::new(MessageMeta {
            user: r.try_get::<String, _>("user_name")?.into(),
            connector: r.try_get::<String, _>("connector")?.into(),
            operator: r.try_get::<String, _>("operator")?.into(),
            destination: r.try_get::<String, _>("destination")?.into(),
            sender: r.try_get::<String, _>("sender")?.into(),
            parts: r.try_get::<i64, _>("parts")?.clamp(0, u32::MAX.into()) as u32,
            text_length: r
                .try_get::<i64, _>("text_length")?
                .clamp(0, u32::MAX.into()) as u32,
            text_hash: r.try_get::<String, _>("text_hash")?.into(),
            mcc: r
                .try_get::<Option<i64>, _>("mcc")?
                .and_then(|v| u16::try_from(v).ok()),
            mnc: r
                .try_get::<Option<i64>, _>("mnc")?
                .and_then(|v| u16::try_from(v).ok()),
            carrier_cost: Micros(
                r.try_get::<i64, _>("cost")? / r.try_get::<i64, _>("parts")?.max(1),
            ),
        }),
        currency: currency_col(&r.try_get::<String, _>("currency")?)?,
        cost_per_part: Micros(r.try_get("cost_per_part")?),
        total: Micros(r.try_get("total")?),
        charged: Micros(r.try_get("charged")?),
        charge_status: parse_col(
            &r.try_get::<String, _>("charge_status")?,
            "charge_status",
            ChargeStatus::parse,
        )?,
        accepted_at: r.try_get("accepted_at")?,
        submitted_at: r.try_get("submitted_at")?,
        operator_msg_id: r
            .try_get::<Option<String>, _>("operator_msg_id")?
            .map(Into::into),
        final_status: r
            .try_get::<Option<String>, _>("final_status")?
            .map(Into::into),
        // Only PENDING rows are read back (recovery): none has a receipt yet.
        receipt_at: None,
    })
}

#[async_trait::async_trait]
impl LedgerStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn write_batch(&self, batch: &Batch) -> Result<(), BillingError> {
        if batch.is_empty() {
            return Ok(());
        }
        let _gate = write_gate(&self.pool).await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(first) = batch.first_entry_id() {
            let seen: Option<i64> = sqlx::query_scalar("SELECT id FROM ledger WHERE id = ?")
                .bind(first)
                .fetch_optional(&mut *tx)
                .await?;
            if seen.is_some() {
                // Committed by an earlier attempt whose answer was lost.
                return Ok(());
            }
        }
        // Shared strings (`Arc<str>`) are bound by a clone of the Arc: sqlx binds them
        // as they are, where a `&str` is copied into a new String (and Arc) per value.
        let mut shared = SharedStrings::default();
        for chunk in super::statement_chunks(&batch.entries, CHUNK) {
            let mut q: QueryBuilder<Sqlite> = super::sized_builder(
                "INSERT INTO ledger (id, account_id, kind, amount, balance_delta, reserved_delta, \
                 sms_delta, reference, actor, reason, at) ",
                chunk.len(),
                11,
            );
            q.push_values(chunk, |mut b, (id, e)| {
                b.push_bind(*id)
                    .push_bind(e.account.0)
                    .push_bind(shared.get(e.kind.as_str()))
                    .push_bind(e.amount.0)
                    .push_bind(e.balance_delta.0)
                    .push_bind(e.reserved_delta.0)
                    .push_bind(e.sms_delta)
                    .push_bind(e.reference.clone())
                    .push_bind(shared.get(&e.actor))
                    .push_bind(e.reason.clone())
                    .push_bind(e.at);
            });
            q.build().execute(&mut *tx).await?;
        }
        for chunk in super::statement_chunks(&batch.cdrs, CHUNK) {
            let mut q: QueryBuilder<Sqlite> = super::sized_builder(
                "INSERT INTO cdr (message_id, account_id, user_name, connector, operator, \
                 destination, sender, parts, text_length, text_hash, currency, cost_per_part, \
                 total, charged, charge_status, accepted_at, submitted_at, operator_msg_id, \
                 final_status, receipt_at, mcc, mnc, cost, margin) ",
                chunk.len(),
                24,
            );
            q.push_values(chunk, |mut b, c| {
                b.push_bind(c.message_id.clone())
                    .push_bind(c.account.0)
                    .push_bind(c.meta.user.clone())
                    .push_bind(c.meta.connector.clone())
                    .push_bind(c.meta.operator.clone())
                    .push_bind(c.meta.destination.clone())
                    .push_bind(c.meta.sender.clone())
                    .push_bind(i64::from(c.meta.parts))
                    .push_bind(i64::from(c.meta.text_length))
                    .push_bind(c.meta.text_hash.clone())
                    .push_bind(shared.get(c.currency.as_str()))
                    .push_bind(c.cost_per_part.0)
                    .push_bind(c.total.0)
                    .push_bind(c.charged.0)
                    .push_bind(shared.get(c.charge_status.as_str()))
                    .push_bind(c.accepted_at)
                    .push_bind(c.submitted_at)
                    .push_bind(c.operator_msg_id.clone())
                    .push_bind(c.final_status.clone())
                    .push_bind(c.receipt_at)
                    .push_bind(c.meta.mcc.map(i64::from))
                    .push_bind(c.meta.mnc.map(i64::from))
                    .push_bind(c.meta.cost().0)
                    .push_bind(c.total.0.saturating_sub(c.meta.cost().0));
            });
            q.push(
                " ON CONFLICT (message_id) DO UPDATE SET charged = excluded.charged, \
                 charge_status = excluded.charge_status, \
                 submitted_at = COALESCE(excluded.submitted_at, cdr.submitted_at), \
                 operator_msg_id = COALESCE(excluded.operator_msg_id, cdr.operator_msg_id), \
                 final_status = COALESCE(excluded.final_status, cdr.final_status), \
                 receipt_at = COALESCE(excluded.receipt_at, cdr.receipt_at), \
                 connector = excluded.connector, cost = excluded.cost, \
                 margin = excluded.margin \
                 WHERE cdr.account_id = excluded.account_id",
            );
            q.build().execute(&mut *tx).await?;
        }
        for r in &batch.receipts {
            sqlx::query("UPDATE cdr SET receipt_at = ?, final_status = ? WHERE message_id = ?")
                .bind(r.receipt_at)
                .bind(&*r.final_status)
                .bind(&*r.message_id)
                .execute(&mut *tx)
                .await?;
        }
        for a in &batch.audit {
            sqlx::query(
                "INSERT INTO audit_log (id, at, actor, origin, action, subject, detail) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&*a.id)
            .bind(a.at)
            .bind(&a.actor)
            .bind(&a.origin)
            .bind(&a.action)
            .bind(&a.subject)
            .bind(&a.detail)
            .execute(&mut *tx)
            .await?;
        }
        for d in &batch.balance_deltas {
            sqlx::query(
                "UPDATE balances SET balance = balance + ?, reserved = reserved + ?, \
                 sms_count = sms_count + ? WHERE account_id = ?",
            )
            .bind(d.balance.0)
            .bind(d.reserved.0)
            .bind(d.sms_count)
            .bind(d.account.0)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn max_ledger_id(&self) -> Result<i64, BillingError> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM ledger")
            .fetch_one(&self.pool)
            .await?;
        Ok(id.unwrap_or(0))
    }

    async fn insert_account(&self, a: &Account) -> Result<AccountId, BillingError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (parent_id, kind, name, status, currency, early_percent, \
             sms_quota, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(a.parent_id.map(|p| p.0))
        .bind(a.kind.as_str())
        .bind(&a.name)
        .bind(a.status.as_str())
        .bind(a.currency.as_str().to_string())
        .bind(a.quota.early_percent.map(i64::from))
        .bind(i64::from(a.quota.sms_count_limited))
        .bind(crate::ledger::now_micros())
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO balances (account_id, credit_limit) VALUES (?, ?)")
            .bind(id)
            .bind(a.credit_limit.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(AccountId(id))
    }

    async fn update_account(&self, a: &Account) -> Result<(), BillingError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "UPDATE accounts SET parent_id = ?, kind = ?, name = ?, status = ?, early_percent = ?, \
             sms_quota = ? WHERE id = ?",
        )
        .bind(a.parent_id.map(|p| p.0))
        .bind(a.kind.as_str())
        .bind(&a.name)
        .bind(a.status.as_str())
        .bind(a.quota.early_percent.map(i64::from))
        .bind(i64::from(a.quota.sms_count_limited))
        .bind(a.id.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE balances SET credit_limit = ? WHERE account_id = ?")
            .bind(a.credit_limit.0)
            .bind(a.id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn load_accounts(&self) -> Result<Vec<Account>, BillingError> {
        sqlx::query(
            "SELECT a.id, a.parent_id, a.kind, a.name, a.status, a.currency, a.early_percent, \
             a.sms_quota, COALESCE(b.credit_limit, 0) AS credit_limit \
             FROM accounts a LEFT JOIN balances b ON b.account_id = a.id ORDER BY a.id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(account_from_row)
        .collect()
    }

    async fn ledger_sums(&self) -> Result<Vec<AccountSums>, BillingError> {
        sums(
            &self.pool,
            "WITH x AS (SELECT account_id, SUM(balance_delta) AS balance, \
             SUM(reserved_delta) AS reserved, SUM(sms_delta) AS sms_count \
             FROM ledger GROUP BY account_id) \
             SELECT a.id AS account_id, COALESCE(x.balance, 0) AS balance, \
             COALESCE(x.reserved, 0) AS reserved, COALESCE(x.sms_count, 0) AS sms_count \
             FROM accounts a LEFT JOIN x ON x.account_id = a.id \
             UNION ALL SELECT x.account_id, x.balance, x.reserved, x.sms_count FROM x \
             WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = x.account_id) \
             ORDER BY account_id",
        )
        .await
    }

    async fn balance_rows(&self) -> Result<Vec<AccountSums>, BillingError> {
        sums(
            &self.pool,
            "SELECT a.id AS account_id, COALESCE(b.balance, 0) AS balance, \
             COALESCE(b.reserved, 0) AS reserved, COALESCE(b.sms_count, 0) AS sms_count \
             FROM accounts a LEFT JOIN balances b ON b.account_id = a.id ORDER BY a.id",
        )
        .await
    }

    async fn pending_cdrs(&self) -> Result<Vec<PendingCdr>, BillingError> {
        let rows = sqlx::query(PENDING_SQL).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(PendingCdr {
                    row: cdr_from_row(r)?,
                    reserved_left: Micros(r.try_get("reserved_left")?),
                })
            })
            .collect()
    }

    async fn admin_refs(&self) -> Result<Vec<(AccountId, String)>, BillingError> {
        let rows = sqlx::query(
            "SELECT account_id, reference FROM ledger WHERE kind IN ('TOPUP', 'ADJUST')",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((AccountId(r.try_get("account_id")?), r.try_get("reference")?)))
            .collect()
    }

    async fn recent_closed(
        &self,
        since: UnixMicros,
        limit: i64,
    ) -> Result<Vec<ClosedRef>, BillingError> {
        let rows = sqlx::query(
            "SELECT account_id, message_id, charge_status, charged, total FROM cdr \
             WHERE accepted_at >= ? AND charge_status <> 'PENDING' \
             ORDER BY accepted_at DESC LIMIT ?",
        )
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ClosedRef {
                    account: AccountId(r.try_get("account_id")?),
                    reference: r.try_get("message_id")?,
                    status: parse_col(
                        &r.try_get::<String, _>("charge_status")?,
                        "charge_status",
                        ChargeStatus::parse,
                    )?,
                    charged: Micros(r.try_get("charged")?),
                    total: Micros(r.try_get("total")?),
                })
            })
            .collect()
    }

    async fn volumes(
        &self,
        from: UnixMicros,
        to: UnixMicros,
    ) -> Result<Vec<(AccountId, u64)>, BillingError> {
        let rows = sqlx::query(
            "SELECT account_id, SUM(parts) AS parts FROM cdr WHERE charge_status = 'CHARGED' \
             AND accepted_at >= ? AND accepted_at < ? GROUP BY account_id",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let parts: i64 = r.try_get("parts")?;
                Ok((AccountId(r.try_get("account_id")?), parts.max(0) as u64))
            })
            .collect()
    }

    async fn upsert_tariff(&self, t: &Tariff) -> Result<TariffId, BillingError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tariffs (id, account_id, mcc, mnc, prefix, price, currency, valid_from, \
             valid_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET account_id = excluded.account_id, mcc = excluded.mcc, \
             mnc = excluded.mnc, prefix = excluded.prefix, price = excluded.price, \
             currency = excluded.currency, valid_from = excluded.valid_from, \
             valid_to = excluded.valid_to RETURNING id",
        )
        .bind((t.id.0 > 0).then_some(t.id.0))
        .bind(t.account.map(|a| a.0))
        .bind(t.mcc.map(i64::from))
        .bind(t.mnc.map(i64::from))
        .bind(t.prefix.as_deref())
        .bind(t.price_per_part.0)
        .bind(t.currency.as_str().to_string())
        .bind(t.valid_from)
        .bind(t.valid_to)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM tariff_tiers WHERE tariff_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for tier in &t.tiers {
            sqlx::query(
                "INSERT INTO tariff_tiers (tariff_id, min_volume, discount_bp) VALUES (?, ?, ?)",
            )
            .bind(id)
            .bind(i64::try_from(tier.min_volume).unwrap_or(i64::MAX))
            .bind(i64::from(tier.discount_bp))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(TariffId(id))
    }

    async fn delete_tariff(&self, id: TariffId) -> Result<(), BillingError> {
        sqlx::query("DELETE FROM tariffs WHERE id = ?")
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn load_tariffs(&self) -> Result<Vec<Tariff>, BillingError> {
        let tiers = sqlx::query("SELECT tariff_id, min_volume, discount_bp FROM tariff_tiers")
            .fetch_all(&self.pool)
            .await?;
        let mut by_tariff: std::collections::HashMap<i64, Vec<VolumeTier>> = Default::default();
        for r in &tiers {
            by_tariff
                .entry(r.try_get("tariff_id")?)
                .or_default()
                .push(VolumeTier {
                    min_volume: r.try_get::<i64, _>("min_volume")?.max(0) as u64,
                    discount_bp: r.try_get::<i64, _>("discount_bp")?.clamp(0, 10_000) as u16,
                });
        }
        let rows = sqlx::query(
            "SELECT id, account_id, mcc, mnc, prefix, price, currency, valid_from, valid_to \
             FROM tariffs ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.try_get("id")?;
                Ok(Tariff {
                    id: TariffId(id),
                    account: r.try_get::<Option<i64>, _>("account_id")?.map(AccountId),
                    mcc: r.try_get::<Option<i64>, _>("mcc")?.map(|v| v as u16),
                    mnc: r.try_get::<Option<i64>, _>("mnc")?.map(|v| v as u16),
                    prefix: r.try_get("prefix")?,
                    price_per_part: Micros(r.try_get("price")?),
                    currency: currency_col(&r.try_get::<String, _>("currency")?)?,
                    valid_from: r.try_get("valid_from")?,
                    valid_to: r.try_get("valid_to")?,
                    tiers: by_tariff.remove(&id).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn audit_references(
        &self,
        f: &mut (dyn FnMut(RefAudit) + Send),
    ) -> Result<(), BillingError> {
        use futures_util::TryStreamExt;
        let mut rows = sqlx::query(AUDIT_SQL).fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            f(audit_from_row(&r)?);
        }
        Ok(())
    }

    async fn audit_log(
        &self,
        action: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, BillingError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, origin, action, subject, detail FROM audit_log \
             WHERE ?1 IS NULL OR action = ?1 ORDER BY seq DESC LIMIT ?2",
        )
        .bind(action)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEvent {
                    id: r.try_get::<String, _>("id")?.into(),
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    origin: r.try_get("origin")?,
                    action: r.try_get("action")?,
                    subject: r.try_get("subject")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    async fn invoice_lines(
        &self,
        account: AccountId,
        from: UnixMicros,
        to: UnixMicros,
    ) -> Result<Vec<InvoiceLine>, BillingError> {
        let rows = sqlx::query(
            "SELECT operator, charge_status, cost_per_part, COUNT(*) AS messages, \
             SUM(parts) AS parts, SUM(charged) AS amount FROM cdr \
             WHERE account_id = ? AND accepted_at >= ? AND accepted_at < ? AND charged <> 0 \
             GROUP BY operator, charge_status, cost_per_part \
             ORDER BY operator, charge_status, cost_per_part",
        )
        .bind(account.0)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InvoiceLine {
                    operator: r.try_get("operator")?,
                    charge_status: parse_col(
                        &r.try_get::<String, _>("charge_status")?,
                        "charge_status",
                        ChargeStatus::parse,
                    )?,
                    price_per_part: Micros(r.try_get("cost_per_part")?),
                    messages: r.try_get("messages")?,
                    parts: r.try_get("parts")?,
                    amount: Micros(r.try_get("amount")?),
                })
            })
            .collect()
    }

    async fn margin_lines(
        &self,
        from: UnixMicros,
        to: UnixMicros,
    ) -> Result<Vec<MarginLine>, BillingError> {
        let rows = sqlx::query(
            "SELECT connector, operator, mcc, mnc, currency, COUNT(*) AS messages, \
             SUM(parts) AS parts, SUM(charged) AS revenue, SUM(cost) AS cost FROM cdr \
             WHERE accepted_at >= ? AND accepted_at < ? AND charge_status = 'CHARGED' \
             GROUP BY connector, operator, mcc, mnc, currency \
             ORDER BY connector, operator, mcc, mnc, currency",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MarginLine {
                    connector: r.try_get("connector")?,
                    operator: r.try_get("operator")?,
                    mcc: r
                        .try_get::<Option<i64>, _>("mcc")?
                        .and_then(|v| u16::try_from(v).ok()),
                    mnc: r
                        .try_get::<Option<i64>, _>("mnc")?
                        .and_then(|v| u16::try_from(v).ok()),
                    currency: r.try_get("currency")?,
                    messages: r.try_get("messages")?,
                    parts: r.try_get("parts")?,
                    revenue: Micros(r.try_get("revenue")?),
                    cost: Micros(r.try_get("cost")?),
                })
            })
            .collect()
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// The CDRs still PENDING with the reservation left on each. `reserved_delta <> 0` is
/// what lets SQLite use the partial index `ledger_reserving_reference` (migration 0007);
/// the rows it leaves out add nothing to the sum.
const PENDING_SQL: &str = "SELECT c.*, (SELECT COALESCE(SUM(l.reserved_delta), 0) FROM ledger l \
     WHERE l.reference = c.message_id AND l.reserved_delta <> 0) AS reserved_left \
     FROM cdr c WHERE c.charge_status = 'PENDING'";

/// Per message: the CDR row (if any) beside the ledger's sums for its reference; also the
/// ledger references that have no CDR row (orphans).
const AUDIT_SQL: &str = "\
WITH l AS (
    SELECT reference, MIN(account_id) AS account_id,
           SUM(CASE WHEN kind IN ('RESERVE', 'DEBIT') THEN amount ELSE 0 END) AS reserved,
           SUM(CASE WHEN kind = 'CHARGE' THEN amount
                    WHEN kind = 'DEBIT' THEN -balance_delta ELSE 0 END) AS charged,
           SUM(CASE WHEN kind = 'REFUND' THEN amount ELSE 0 END) AS refunded,
           SUM(reserved_delta) AS reserved_left,
           SUM(CASE WHEN kind IN ('RESERVE', 'DEBIT') THEN 1 ELSE 0 END) AS reserve_entries
    FROM ledger WHERE kind IN ('RESERVE', 'DEBIT', 'CHARGE', 'REFUND') GROUP BY reference
)
SELECT c.message_id AS reference, c.account_id AS account_id, c.charge_status AS cdr_status,
       c.total AS cdr_total, c.charged AS cdr_charged,
       COALESCE(l.reserved, 0) AS reserved, COALESCE(l.charged, 0) AS charged,
       COALESCE(l.refunded, 0) AS refunded, COALESCE(l.reserved_left, 0) AS reserved_left,
       COALESCE(l.reserve_entries, 0) AS reserve_entries
FROM cdr c LEFT JOIN l ON l.reference = c.message_id
UNION ALL
SELECT l.reference, l.account_id, NULL, 0, 0, l.reserved, l.charged, l.refunded,
       l.reserved_left, l.reserve_entries
FROM l WHERE NOT EXISTS (SELECT 1 FROM cdr c WHERE c.message_id = l.reference)";

fn audit_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<RefAudit, BillingError> {
    let status: Option<String> = r.try_get("cdr_status")?;
    Ok(RefAudit {
        reference: r.try_get("reference")?,
        account: r.try_get::<Option<i64>, _>("account_id")?.map(AccountId),
        cdr_status: status
            .map(|s| parse_col(&s, "charge_status", ChargeStatus::parse))
            .transpose()?,
        cdr_total: Micros(r.try_get("cdr_total")?),
        cdr_charged: Micros(r.try_get("cdr_charged")?),
        reserved: Micros(r.try_get("reserved")?),
        charged: Micros(r.try_get("charged")?),
        refunded: Micros(r.try_get("refunded")?),
        reserved_left: Micros(r.try_get("reserved_left")?),
        reserve_entries: r.try_get("reserve_entries")?,
    })
}

async fn sums(pool: &SqlitePool, sql: &'static str) -> Result<Vec<AccountSums>, BillingError> {
    let rows = sqlx::query(sql).fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok(AccountSums {
                account: AccountId(r.try_get("account_id")?),
                balance: Micros(r.try_get("balance")?),
                reserved: Micros(r.try_get("reserved")?),
                sms_count: r.try_get("sms_count")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writers_to_one_file_take_turns_and_other_files_do_not_wait() {
        let dir = std::env::temp_dir().join(format!("sqlite-gate-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = |name: &str| format!("sqlite://{}/{name}", dir.display());
        let billing = SqliteStore::open(&url("billing.db")).await.unwrap();
        let api = SqliteStore::open(&url("billing.db")).await.unwrap();
        let other = SqliteStore::open(&url("other.db")).await.unwrap();
        let short = Duration::from_millis(50);

        let held = write_gate(billing.pool()).await;
        assert!(
            tokio::time::timeout(short, write_gate(api.pool()))
                .await
                .is_err(),
            "a second pool on the same file waits for the turn"
        );
        let other_turn = tokio::time::timeout(short, write_gate(other.pool()))
            .await
            .expect("another file has a gate of its own");
        drop(other_turn);
        drop(held);
        tokio::time::timeout(Duration::from_secs(1), write_gate(api.pool()))
            .await
            .expect("the turn passes once released");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_pending_lookup_reads_the_partial_reference_index() {
        let dir = std::env::temp_dir().join(format!("sqlite-plan-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}/billing.db", dir.display()))
            .await
            .unwrap();
        let detail: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {PENDING_SQL}"
        )))
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>("detail"))
        .collect();
        assert!(
            detail
                .iter()
                .any(|d| d.contains("USING INDEX ledger_reserving_reference")),
            "plan: {detail:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
