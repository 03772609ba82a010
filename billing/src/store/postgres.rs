//! PostgreSQL store. Money is NUMERIC(18,6) in the database and i64 micro-units here:
//! written as `$n::bigint::numeric / 1000000`, read as `(col * 1000000)::bigint`, both exact.
//! Time is TIMESTAMPTZ, converted the same way from unix microseconds. Batches use
//! UNNEST so one statement per table carries the whole group commit.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};

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

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// `postgres://user@host/db`; a schema can be chosen with `?options[search_path]=name`.
    pub async fn open(url: &str) -> Result<PostgresStore, BillingError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| BillingError::InvalidUrl(format!("{url}: {e}")))?;
        Self::open_with(opts).await
    }

    pub async fn open_with(opts: PgConnectOptions) -> Result<PostgresStore, BillingError> {
        let target = format!(
            "postgres {}:{}/{}",
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or("")
        );
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await
            .map_err(|e| BillingError::StoreUnavailable(format!("{target}: {e}")))?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(PostgresStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn account_from_row(r: &PgRow) -> Result<Account, BillingError> {
    let early: Option<i16> = r.try_get("early_percent")?;
    Ok(Account {
        id: AccountId(r.try_get("id")?),
        parent_id: r.try_get::<Option<i64>, _>("parent_id")?.map(AccountId),
        kind: r.try_get::<String, _>("kind")?.parse()?,
        name: r.try_get("name")?,
        status: r.try_get::<String, _>("status")?.parse()?,
        currency: currency_col(&r.try_get::<String, _>("currency")?)?,
        quota: QuotaOptions {
            early_percent: early.map(|p| p.clamp(1, 100) as u8),
            sms_count_limited: r.try_get("sms_quota")?,
        },
        credit_limit: Micros(r.try_get("credit_limit")?),
    })
}

/// Column list of a CDR read with money and time converted to integers.
const CDR_COLS: &str = "c.message_id, c.account_id, c.user_name, c.connector, c.operator, \
    c.destination, c.sender, c.parts, c.text_length, c.text_hash, c.currency, \
    (c.cost_per_part * 1000000)::bigint AS cost_per_part, (c.total * 1000000)::bigint AS total, \
    (c.charged * 1000000)::bigint AS charged, c.charge_status, \
    (EXTRACT(EPOCH FROM c.accepted_at) * 1000000)::bigint AS accepted_at, \
    (EXTRACT(EPOCH FROM c.submitted_at) * 1000000)::bigint AS submitted_at, \
    c.operator_msg_id, c.final_status, c.mcc::int AS mcc, c.mnc::int AS mnc, \
    (c.cost * 1000000)::bigint AS cost";

fn cdr_from_row(r: &PgRow) -> Result<CdrRow, BillingError> {
    Ok(CdrRow {
        message_id: r.try_get::<String, _>("message_id")?.into(),
        account: AccountId(r.try_get("account_id")?),
        meta: std::sync::Arc::new(MessageMeta {
            user: r.try_get::<String, _>("user_name")?.into(),
            connector: r.try_get::<String, _>("connector")?.into(),
            operator: r.try_get::<String, _>("operator")?.into(),
            destination: r.try_get::<String, _>("destination")?.into(),
            sender: r.try_get::<String, _>("sender")?.into(),
            parts: r.try_get::<i32, _>("parts")?.max(0) as u32,
            text_length: r.try_get::<i32, _>("text_length")?.max(0) as u32,
            text_hash: r.try_get::<String, _>("text_hash")?.into(),
            mcc: r
                .try_get::<Option<i32>, _>("mcc")?
                .and_then(|v| u16::try_from(v).ok()),
            mnc: r
                .try_get::<Option<i32>, _>("mnc")?
                .and_then(|v| u16::try_from(v).ok()),
            carrier_cost: Micros(
                r.try_get::<i64, _>("cost")? / i64::from(r.try_get::<i32, _>("parts")?.max(1)),
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
impl LedgerStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn write_batch(&self, batch: &Batch) -> Result<(), BillingError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        if let Some(first) = batch.first_entry_id() {
            let seen: Option<i64> = sqlx::query_scalar("SELECT id FROM ledger WHERE id = $1")
                .bind(first)
                .fetch_optional(&mut *tx)
                .await?;
            if seen.is_some() {
                // Committed by an earlier attempt whose answer was lost.
                return Ok(());
            }
        }
        if !batch.entries.is_empty() {
            let n = batch.entries.len();
            let (mut id, mut acc, mut kind, mut amount, mut bd, mut rd, mut sms) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut reference, mut actor, mut reason, mut at) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for (i, e) in &batch.entries {
                id.push(*i);
                acc.push(e.account.0);
                kind.push(e.kind.as_str());
                amount.push(e.amount.0);
                bd.push(e.balance_delta.0);
                rd.push(e.reserved_delta.0);
                sms.push(e.sms_delta);
                reference.push(&*e.reference);
                actor.push(&*e.actor);
                reason.push(e.reason.as_deref());
                at.push(e.at);
            }
            sqlx::query(
                "INSERT INTO ledger (id, account_id, kind, amount, balance_delta, reserved_delta, \
                 sms_delta, reference, actor, reason, at) \
                 SELECT id, acc, kind, amount::numeric / 1000000, bd::numeric / 1000000, \
                 rd::numeric / 1000000, sms, reference, actor, reason, \
                 TIMESTAMPTZ 'epoch' + at * INTERVAL '1 microsecond' \
                 FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], \
                 $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::text[], $11::bigint[]) \
                 AS u(id, acc, kind, amount, bd, rd, sms, reference, actor, reason, at)",
            )
            .bind(id)
            .bind(acc)
            .bind(kind)
            .bind(amount)
            .bind(bd)
            .bind(rd)
            .bind(sms)
            .bind(reference)
            .bind(actor)
            .bind(reason)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        if !batch.cdrs.is_empty() {
            let c = &batch.cdrs;
            sqlx::query(
                "INSERT INTO cdr (message_id, account_id, user_name, connector, operator, \
                 destination, sender, parts, text_length, text_hash, currency, cost_per_part, \
                 total, charged, charge_status, accepted_at, submitted_at, operator_msg_id, \
                 final_status, receipt_at, mcc, mnc, cost, margin) \
                 SELECT mid, acc, usr, con, op, dst, snd, parts, tlen, thash, cur, \
                 cpp::numeric / 1000000, tot::numeric / 1000000, chg::numeric / 1000000, st, \
                 TIMESTAMPTZ 'epoch' + acc_at * INTERVAL '1 microsecond', \
                 TIMESTAMPTZ 'epoch' + sub_at * INTERVAL '1 microsecond', opid, fin, \
                 TIMESTAMPTZ 'epoch' + rcp_at * INTERVAL '1 microsecond', \
                 mcc::smallint, mnc::smallint, cst::numeric / 1000000, mrg::numeric / 1000000 \
                 FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::text[], $8::int[], $9::int[], $10::text[], $11::text[], \
                 $12::bigint[], $13::bigint[], $14::bigint[], $15::text[], $16::bigint[], \
                 $17::bigint[], $18::text[], $19::text[], $20::bigint[], $21::int[], \
                 $22::int[], $23::bigint[], $24::bigint[]) \
                 AS u(mid, acc, usr, con, op, dst, snd, parts, tlen, thash, cur, cpp, tot, chg, st, \
                 acc_at, sub_at, opid, fin, rcp_at, mcc, mnc, cst, mrg) \
                 ON CONFLICT (message_id) DO UPDATE SET charged = EXCLUDED.charged, \
                 charge_status = EXCLUDED.charge_status, \
                 submitted_at = COALESCE(EXCLUDED.submitted_at, cdr.submitted_at), \
                 operator_msg_id = COALESCE(EXCLUDED.operator_msg_id, cdr.operator_msg_id), \
                 final_status = COALESCE(EXCLUDED.final_status, cdr.final_status), \
                 receipt_at = COALESCE(EXCLUDED.receipt_at, cdr.receipt_at), \
                 connector = EXCLUDED.connector, cost = EXCLUDED.cost, \
                 margin = EXCLUDED.margin \
                 WHERE cdr.account_id = EXCLUDED.account_id",
            )
            .bind(c.iter().map(|r| &*r.message_id).collect::<Vec<_>>())
            .bind(c.iter().map(|r| r.account.0).collect::<Vec<_>>())
            .bind(c.iter().map(|r| &*r.meta.user).collect::<Vec<&str>>())
            .bind(c.iter().map(|r| &*r.meta.connector).collect::<Vec<&str>>())
            .bind(c.iter().map(|r| &*r.meta.operator).collect::<Vec<&str>>())
            .bind(c.iter().map(|r| &*r.meta.destination).collect::<Vec<&str>>())
            .bind(c.iter().map(|r| &*r.meta.sender).collect::<Vec<&str>>())
            .bind(c.iter().map(|r| r.meta.parts as i32).collect::<Vec<_>>())
            .bind(c.iter().map(|r| r.meta.text_length as i32).collect::<Vec<_>>())
            .bind(c.iter().map(|r| &*r.meta.text_hash).collect::<Vec<&str>>())
            .bind(c.iter().map(|r| r.currency.as_str()).collect::<Vec<_>>())
            .bind(c.iter().map(|r| r.cost_per_part.0).collect::<Vec<_>>())
            .bind(c.iter().map(|r| r.total.0).collect::<Vec<_>>())
            .bind(c.iter().map(|r| r.charged.0).collect::<Vec<_>>())
            .bind(c.iter().map(|r| r.charge_status.as_str()).collect::<Vec<_>>())
            .bind(c.iter().map(|r| r.accepted_at).collect::<Vec<_>>())
            .bind(c.iter().map(|r| r.submitted_at).collect::<Vec<_>>())
            .bind(c.iter().map(|r| r.operator_msg_id.as_deref()).collect::<Vec<_>>())
            .bind(c.iter().map(|r| r.final_status.as_deref()).collect::<Vec<_>>())
            .bind(c.iter().map(|r| r.receipt_at).collect::<Vec<_>>())
            .bind(c.iter().map(|r| r.meta.mcc.map(i32::from)).collect::<Vec<_>>())
            .bind(c.iter().map(|r| r.meta.mnc.map(i32::from)).collect::<Vec<_>>())
            .bind(c.iter().map(|r| r.meta.cost().0).collect::<Vec<_>>())
            .bind(
                c.iter()
                    .map(|r| r.total.0.saturating_sub(r.meta.cost().0))
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *tx)
            .await?;
        }
        if !batch.receipts.is_empty() {
            let r = &batch.receipts;
            sqlx::query(
                "UPDATE cdr SET receipt_at = TIMESTAMPTZ 'epoch' + u.at * INTERVAL '1 microsecond', \
                 final_status = u.st \
                 FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS u(mid, st, at) \
                 WHERE cdr.message_id = u.mid",
            )
            .bind(r.iter().map(|x| &*x.message_id).collect::<Vec<_>>())
            .bind(r.iter().map(|x| &*x.final_status).collect::<Vec<_>>())
            .bind(r.iter().map(|x| x.receipt_at).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        if !batch.audit.is_empty() {
            let a = &batch.audit;
            sqlx::query(
                "INSERT INTO audit_log (id, at, actor, origin, action, subject, detail) \
                 SELECT id, TIMESTAMPTZ 'epoch' + at * INTERVAL '1 microsecond', actor, origin, \
                 action, subject, detail \
                 FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::text[]) AS u(id, at, actor, origin, action, subject, detail) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(a.iter().map(|x| &*x.id).collect::<Vec<_>>())
            .bind(a.iter().map(|x| x.at).collect::<Vec<_>>())
            .bind(a.iter().map(|x| x.actor.as_str()).collect::<Vec<_>>())
            .bind(a.iter().map(|x| x.origin.as_str()).collect::<Vec<_>>())
            .bind(a.iter().map(|x| x.action.as_str()).collect::<Vec<_>>())
            .bind(a.iter().map(|x| x.subject.as_str()).collect::<Vec<_>>())
            .bind(a.iter().map(|x| x.detail.as_str()).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        if !batch.balance_deltas.is_empty() {
            let d = &batch.balance_deltas;
            sqlx::query(
                "UPDATE balances b SET balance = b.balance + u.bal::numeric / 1000000, \
                 reserved = b.reserved + u.res::numeric / 1000000, sms_count = b.sms_count + u.sms \
                 FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) \
                 AS u(acc, bal, res, sms) WHERE b.account_id = u.acc",
            )
            .bind(d.iter().map(|x| x.account.0).collect::<Vec<_>>())
            .bind(d.iter().map(|x| x.balance.0).collect::<Vec<_>>())
            .bind(d.iter().map(|x| x.reserved.0).collect::<Vec<_>>())
            .bind(d.iter().map(|x| x.sms_count).collect::<Vec<_>>())
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
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (parent_id, kind, name, status, currency, early_percent, \
             sms_quota) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(a.parent_id.map(|p| p.0))
        .bind(a.kind.as_str())
        .bind(&a.name)
        .bind(a.status.as_str())
        .bind(a.currency.as_str())
        .bind(a.quota.early_percent.map(i16::from))
        .bind(a.quota.sms_count_limited)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO balances (account_id, credit_limit) VALUES ($1, $2::bigint::numeric / 1000000)",
        )
        .bind(id)
        .bind(a.credit_limit.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AccountId(id))
    }

    async fn update_account(&self, a: &Account) -> Result<(), BillingError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE accounts SET parent_id = $1, kind = $2, name = $3, status = $4, \
             early_percent = $5, sms_quota = $6 WHERE id = $7",
        )
        .bind(a.parent_id.map(|p| p.0))
        .bind(a.kind.as_str())
        .bind(&a.name)
        .bind(a.status.as_str())
        .bind(a.quota.early_percent.map(i16::from))
        .bind(a.quota.sms_count_limited)
        .bind(a.id.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE balances SET credit_limit = $1::bigint::numeric / 1000000 WHERE account_id = $2",
        )
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
             a.sms_quota, (COALESCE(b.credit_limit, 0) * 1000000)::bigint AS credit_limit \
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
            "WITH x AS (SELECT account_id, (SUM(balance_delta) * 1000000)::bigint AS balance, \
             (SUM(reserved_delta) * 1000000)::bigint AS reserved, \
             SUM(sms_delta)::bigint AS sms_count FROM ledger GROUP BY account_id) \
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
            "SELECT a.id AS account_id, (COALESCE(b.balance, 0) * 1000000)::bigint AS balance, \
             (COALESCE(b.reserved, 0) * 1000000)::bigint AS reserved, \
             COALESCE(b.sms_count, 0)::bigint AS sms_count \
             FROM accounts a LEFT JOIN balances b ON b.account_id = a.id ORDER BY a.id",
        )
        .await
    }

    async fn pending_cdrs(&self) -> Result<Vec<PendingCdr>, BillingError> {
        let sql = format!(
            "SELECT {CDR_COLS}, (SELECT (COALESCE(SUM(l.reserved_delta), 0) * 1000000)::bigint \
             FROM ledger l WHERE l.reference = c.message_id AND l.reserved_delta <> 0) AS reserved_left \
             FROM cdr c WHERE c.charge_status = 'PENDING'"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
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
            "SELECT account_id, message_id, charge_status, (charged * 1000000)::bigint AS charged, \
             (total * 1000000)::bigint AS total FROM cdr \
             WHERE accepted_at >= TIMESTAMPTZ 'epoch' + $1 * INTERVAL '1 microsecond' \
             AND charge_status <> 'PENDING' ORDER BY accepted_at DESC LIMIT $2",
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
            "SELECT account_id, SUM(parts)::bigint AS parts FROM cdr \
             WHERE charge_status = 'CHARGED' \
             AND accepted_at >= TIMESTAMPTZ 'epoch' + $1 * INTERVAL '1 microsecond' \
             AND accepted_at < TIMESTAMPTZ 'epoch' + $2 * INTERVAL '1 microsecond' \
             GROUP BY account_id",
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
        let mut tx = self.pool.begin().await?;
        let q = if t.id.0 > 0 {
            sqlx::query_scalar(
                "UPDATE tariffs SET account_id = $2, mcc = $3, mnc = $4, prefix = $5, \
                 price = $6::bigint::numeric / 1000000, currency = $7, \
                 valid_from = TIMESTAMPTZ 'epoch' + $8 * INTERVAL '1 microsecond', \
                 valid_to = TIMESTAMPTZ 'epoch' + $9 * INTERVAL '1 microsecond' \
                 WHERE id = $1 RETURNING id",
            )
        } else {
            sqlx::query_scalar(
                "INSERT INTO tariffs (account_id, mcc, mnc, prefix, price, currency, valid_from, \
                 valid_to) SELECT $2, $3, $4, $5, $6::bigint::numeric / 1000000, $7, \
                 TIMESTAMPTZ 'epoch' + $8 * INTERVAL '1 microsecond', \
                 TIMESTAMPTZ 'epoch' + $9 * INTERVAL '1 microsecond' \
                 WHERE $1::bigint IS NOT NULL RETURNING id",
            )
        };
        let id: Option<i64> = q
            .bind(t.id.0)
            .bind(t.account.map(|a| a.0))
            .bind(t.mcc.map(i32::from))
            .bind(t.mnc.map(i32::from))
            .bind(t.prefix.as_deref())
            .bind(t.price_per_part.0)
            .bind(t.currency.as_str())
            .bind(t.valid_from)
            .bind(t.valid_to)
            .fetch_optional(&mut *tx)
            .await?;
        let id = id
            .ok_or_else(|| BillingError::InvalidRequest(format!("unknown tariff id {}", t.id.0)))?;
        sqlx::query("DELETE FROM tariff_tiers WHERE tariff_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if !t.tiers.is_empty() {
            sqlx::query(
                "INSERT INTO tariff_tiers (tariff_id, min_volume, discount_bp) \
                 SELECT $1, v, d FROM UNNEST($2::bigint[], $3::int[]) AS u(v, d)",
            )
            .bind(id)
            .bind(
                t.tiers
                    .iter()
                    .map(|x| i64::try_from(x.min_volume).unwrap_or(i64::MAX))
                    .collect::<Vec<_>>(),
            )
            .bind(
                t.tiers
                    .iter()
                    .map(|x| i32::from(x.discount_bp))
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(TariffId(id))
    }

    async fn delete_tariff(&self, id: TariffId) -> Result<(), BillingError> {
        sqlx::query("DELETE FROM tariffs WHERE id = $1")
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
                    discount_bp: r.try_get::<i32, _>("discount_bp")?.clamp(0, 10_000) as u16,
                });
        }
        let rows = sqlx::query(
            "SELECT id, account_id, mcc, mnc, prefix, (price * 1000000)::bigint AS price, currency, \
             (EXTRACT(EPOCH FROM valid_from) * 1000000)::bigint AS valid_from, \
             (EXTRACT(EPOCH FROM valid_to) * 1000000)::bigint AS valid_to \
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
                    mcc: r.try_get::<Option<i32>, _>("mcc")?.map(|v| v as u16),
                    mnc: r.try_get::<Option<i32>, _>("mnc")?.map(|v| v as u16),
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
            "SELECT id, (EXTRACT(EPOCH FROM at) * 1000000)::bigint AS at, actor, origin, \
             action, subject, detail FROM audit_log \
             WHERE $1::text IS NULL OR action = $1 ORDER BY seq DESC LIMIT $2",
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
            "SELECT operator, charge_status, (cost_per_part * 1000000)::bigint AS cost_per_part, \
             COUNT(*)::bigint AS messages, SUM(parts)::bigint AS parts, \
             (SUM(charged) * 1000000)::bigint AS amount FROM cdr \
             WHERE account_id = $1 \
             AND accepted_at >= TIMESTAMPTZ 'epoch' + $2 * INTERVAL '1 microsecond' \
             AND accepted_at < TIMESTAMPTZ 'epoch' + $3 * INTERVAL '1 microsecond' \
             AND charged <> 0 \
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
            "SELECT connector, operator, mcc::int AS mcc, mnc::int AS mnc, currency, \
             COUNT(*)::bigint AS messages, SUM(parts)::bigint AS parts, \
             (SUM(charged) * 1000000)::bigint AS revenue, (SUM(cost) * 1000000)::bigint AS cost \
             FROM cdr \
             WHERE accepted_at >= TIMESTAMPTZ 'epoch' + $1 * INTERVAL '1 microsecond' \
             AND accepted_at < TIMESTAMPTZ 'epoch' + $2 * INTERVAL '1 microsecond' \
             AND charge_status = 'CHARGED' \
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
                        .try_get::<Option<i32>, _>("mcc")?
                        .and_then(|v| u16::try_from(v).ok()),
                    mnc: r
                        .try_get::<Option<i32>, _>("mnc")?
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

/// Same shape as the SQLite audit (see there), money converted to micro-units.
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
       (c.total * 1000000)::bigint AS cdr_total, (c.charged * 1000000)::bigint AS cdr_charged,
       (COALESCE(l.reserved, 0) * 1000000)::bigint AS reserved,
       (COALESCE(l.charged, 0) * 1000000)::bigint AS charged,
       (COALESCE(l.refunded, 0) * 1000000)::bigint AS refunded,
       (COALESCE(l.reserved_left, 0) * 1000000)::bigint AS reserved_left,
       COALESCE(l.reserve_entries, 0)::bigint AS reserve_entries
FROM cdr c LEFT JOIN l ON l.reference = c.message_id
UNION ALL
SELECT l.reference, l.account_id, NULL, 0, 0, (l.reserved * 1000000)::bigint,
       (l.charged * 1000000)::bigint, (l.refunded * 1000000)::bigint,
       (l.reserved_left * 1000000)::bigint, l.reserve_entries::bigint
FROM l WHERE NOT EXISTS (SELECT 1 FROM cdr c WHERE c.message_id = l.reference)";

fn audit_from_row(r: &PgRow) -> Result<RefAudit, BillingError> {
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

async fn sums(pool: &PgPool, sql: &'static str) -> Result<Vec<AccountSums>, BillingError> {
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
