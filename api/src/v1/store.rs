//! The v1 tables (migration 0004): API keys, idempotency answers, accepted messages,
//! webhooks and their delivery log, in billing's database (SQLite or PostgreSQL). The
//! queries are written once with `$n` parameters, which both backends read, and run on
//! whichever pool the store has.

use std::sync::Arc;

use sqlx::{PgPool, Row, SqlitePool};

use super::keys::{ApiKey, parse_cidrs, parse_scopes};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("REST API store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("REST API store: {0}")]
    Open(#[from] billing::BillingError),
    #[error("unsupported store url {0:?}")]
    Url(String),
    #[error("REST API store holds an unreadable row: {0}")]
    Corrupt(String),
}

#[derive(Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool `$db` holds.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// One accepted message (one recipient) as the API remembers it. Serialized, it is
/// also the message's journal annex until written (see `sms::records`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageRow {
    pub id: String,
    pub uid: String,
    pub client_reference: Option<String>,
    pub sender: String,
    pub recipient: String,
    pub encoding: String,
    pub parts: i64,
    pub cost: i64,
    pub currency: String,
    pub webhook_url: Option<String>,
    pub status: String,
    pub error_code: Option<String>,
    pub connector: Option<String>,
    pub created_at: i64,
    pub scheduled_at: Option<i64>,
    pub sent_at: Option<i64>,
    pub done_at: Option<i64>,
}

/// Filters of `GET /api/v1/sms`.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub client_reference: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub status: Option<String>,
    /// Strictly older than this (created_at, id), newest first.
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// A write to the idempotency answers ([`Db::idem_batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdemOp {
    /// Takes `key` for a request with this body hash, after dropping an answer of the
    /// key older than `expired_before`.
    Claim {
        uid: String,
        key: String,
        request_hash: String,
        now: i64,
        expired_before: i64,
    },
    /// Stores the answer of the request that holds the claim.
    Complete {
        uid: String,
        key: String,
        status: u16,
        body: String,
    },
    /// Drops the claim of a request that sent nothing.
    Release { uid: String, key: String },
}

/// An idempotency record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemRecord {
    pub request_hash: String,
    /// 0 while the first request runs.
    pub status: i64,
    pub body: String,
    pub created_at: i64,
}

pub(crate) const MESSAGE_COLUMNS: &str = "id, uid, client_reference, sender, recipient, encoding, parts, \
     cost, currency, webhook_url, status, error_code, connector, created_at, scheduled_at, \
     sent_at, done_at";

/// Rows per multi-row INSERT of messages: 17 values each stays far below SQLite's
/// 32,766 bound parameters (and PostgreSQL's 65,535).
const MESSAGE_CHUNK: usize = 500;

const KEY_COLUMNS: &str =
    "id, uid, name, prefix, scopes, cidrs, rate, created_at, expires_at, revoked_at";

macro_rules! key_from_row {
    ($r:expr) => {{
        let r = $r;
        let scopes: String = r.try_get("scopes")?;
        let cidrs: String = r.try_get("cidrs")?;
        let cidrs: Vec<String> = cidrs.split_whitespace().map(str::to_owned).collect();
        let rate: i64 = r.try_get("rate")?;
        ApiKey {
            id: r.try_get("id")?,
            uid: r.try_get("uid")?,
            name: r.try_get("name")?,
            prefix: r.try_get("prefix")?,
            scopes: parse_scopes(&scopes).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            cidrs: parse_cidrs(&cidrs).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            rate: u32::try_from(rate).unwrap_or(0),
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
            revoked_at: r.try_get("revoked_at")?,
        }
    }};
}

macro_rules! message_from_row {
    ($r:expr) => {{
        let r = $r;
        MessageRow {
            id: r.try_get("id")?,
            uid: r.try_get("uid")?,
            client_reference: r.try_get("client_reference")?,
            sender: r.try_get("sender")?,
            recipient: r.try_get("recipient")?,
            encoding: r.try_get("encoding")?,
            parts: r.try_get("parts")?,
            cost: r.try_get("cost")?,
            currency: r.try_get("currency")?,
            webhook_url: r.try_get("webhook_url")?,
            status: r.try_get("status")?,
            error_code: r.try_get("error_code")?,
            connector: r.try_get("connector")?,
            created_at: r.try_get("created_at")?,
            scheduled_at: r.try_get("scheduled_at")?,
            sent_at: r.try_get("sent_at")?,
            done_at: r.try_get("done_at")?,
        }
    }};
}
pub(crate) use message_from_row;

/// Runs one idempotency write on `$tx`; the rows it touched.
macro_rules! idem_op {
    ($tx:expr, $op:expr) => {
        match $op {
            IdemOp::Claim { uid, key, request_hash, now, expired_before } => {
                sqlx::query("DELETE FROM api_idempotency WHERE uid = $1 AND key = $2 AND created_at < $3")
                    .bind(uid)
                    .bind(key)
                    .bind(expired_before)
                    .execute(&mut *$tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO api_idempotency (uid, key, request_hash, status, body, created_at) \
                     VALUES ($1, $2, $3, 0, '', $4) ON CONFLICT DO NOTHING",
                )
                .bind(uid)
                .bind(key)
                .bind(request_hash)
                .bind(now)
                .execute(&mut *$tx)
                .await?
                .rows_affected()
            }
            IdemOp::Complete { uid, key, status, body } => sqlx::query(
                "UPDATE api_idempotency SET status = $1, body = $2 WHERE uid = $3 AND key = $4",
            )
            .bind(i64::from(*status))
            .bind(body)
            .bind(uid)
            .bind(key)
            .execute(&mut *$tx)
            .await?
            .rows_affected(),
            IdemOp::Release { uid, key } => {
                sqlx::query("DELETE FROM api_idempotency WHERE uid = $1 AND key = $2")
                    .bind(uid)
                    .bind(key)
                    .execute(&mut *$tx)
                    .await?
                    .rows_affected()
            }
        }
    };
}

impl Db {
    /// The store beside billing's `url` (its migrations made the tables). `memory:`
    /// (billing without a database) gets a private in-memory SQLite: keys made there
    /// live as long as the process.
    pub async fn open(url: &str) -> Result<Arc<Db>, StoreError> {
        let url = if url == "memory:" {
            "sqlite::memory:"
        } else {
            url
        };
        if url.starts_with("sqlite:") {
            let store = billing::SqliteStore::open(url).await?;
            Ok(Arc::new(Db::Sqlite(store.pool().clone())))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let store = billing::PostgresStore::open(url).await?;
            Ok(Arc::new(Db::Postgres(store.pool().clone())))
        } else {
            Err(StoreError::Url(url.to_owned()))
        }
    }

    /// Held around a batch's write transaction on SQLite: this process's batch writers
    /// to the file take turns here instead of sleeping in SQLite's busy handler (see
    /// `billing::store::sqlite_write_gate`). Worth it for batches only: the turn is held
    /// across several hops to SQLite's worker thread, and taking it for each request's
    /// own idempotency claim cut idempotent sends by a third; claims now come in
    /// batches too (`sms::idempotency`). PostgreSQL needs no such turn.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self {
            Db::Sqlite(pool) => Some(billing::store::sqlite_write_gate(pool).await),
            Db::Postgres(_) => None,
        }
    }

    // ---- API keys -------------------------------------------------------------------

    pub async fn insert_key(&self, key: &ApiKey, hash: &str) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO api_keys ({KEY_COLUMNS}, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        let scopes = super::keys::scopes_text(&key.scopes);
        let cidrs = key
            .cidrs
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        with_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&key.id)
                .bind(&key.uid)
                .bind(&key.name)
                .bind(&key.prefix)
                .bind(&scopes)
                .bind(&cidrs)
                .bind(i64::from(key.rate))
                .bind(key.created_at)
                .bind(key.expires_at)
                .bind(key.revoked_at)
                .bind(hash)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = $1");
        with_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(hash).fetch_optional(pool).await?;
            Ok(match row {
                Some(r) => Some(key_from_row!(&r)),
                None => None,
            })
        })
    }

    /// `uid`'s keys that are not revoked, newest first.
    pub async fn list_keys(&self, uid: &str) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE uid = $1 AND revoked_at IS NULL \
             ORDER BY created_at DESC, id DESC"
        );
        with_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(uid).fetch_all(pool).await?;
            let mut keys = Vec::with_capacity(rows.len());
            for r in &rows {
                keys.push(key_from_row!(r));
            }
            Ok(keys)
        })
    }

    /// Revokes `uid`'s key `id` (or any user's key when `uid` is None); false if there
    /// is no such live key.
    pub async fn revoke_key(
        &self,
        uid: Option<&str>,
        id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE api_keys SET revoked_at = $1 \
                   WHERE id = $2 AND ($3 IS NULL OR uid = $3) AND revoked_at IS NULL";
        let sql = match self {
            // PostgreSQL needs the parameter's type for `$3 IS NULL`.
            Db::Postgres(_) => sql.replace("$3 IS NULL", "$3::TEXT IS NULL"),
            Db::Sqlite(_) => sql.to_owned(),
        };
        with_pool!(self, pool => {
            let done = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(now)
                .bind(id)
                .bind(uid)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    // ---- idempotency ----------------------------------------------------------------

    /// Claims `(uid, key)` for a new request (a record older than `expired_before` is
    /// dropped first). False: another request holds or answered it.
    /// Runs `ops` in one transaction (one turn of SQLite's writer), in order; what
    /// each did: a claim whether it was won, the others whether they found the key.
    /// Claims of the same key in one batch: the first wins.
    pub async fn idem_batch(&self, ops: &[IdemOp]) -> Result<Vec<bool>, StoreError> {
        let mut done = Vec::with_capacity(ops.len());
        if ops.is_empty() {
            return Ok(done);
        }
        let _turn = self.write_turn().await;
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for op in ops {
                let affected = idem_op!(tx, op);
                done.push(affected == 1);
            }
            tx.commit().await?;
        });
        Ok(done)
    }

    pub async fn idem_get(&self, uid: &str, key: &str) -> Result<Option<IdemRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT request_hash, status, body, created_at FROM api_idempotency \
                 WHERE uid = $1 AND key = $2",
            )
            .bind(uid)
            .bind(key)
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(r) => Some(IdemRecord {
                    request_hash: r.try_get("request_hash")?,
                    status: r.try_get("status")?,
                    body: r.try_get("body")?,
                    created_at: r.try_get("created_at")?,
                }),
                None => None,
            })
        })
    }

    pub async fn idem_purge(&self, expired_before: i64) -> Result<u64, StoreError> {
        with_pool!(self, pool => {
            let done = sqlx::query("DELETE FROM api_idempotency WHERE created_at < $1")
                .bind(expired_before)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }

    // ---- messages -------------------------------------------------------------------

    /// Writes `rows`, and the idempotency `answers` of their sends, in one transaction.
    /// A row whose id is there already is left as it is (a record restored from the
    /// journal after a crash may have been written before it).
    pub async fn insert_messages(
        &self,
        rows: &[MessageRow],
        answers: &[IdemOp],
    ) -> Result<(), StoreError> {
        if rows.is_empty() && answers.is_empty() {
            return Ok(());
        }
        let head = format!("INSERT INTO api_messages ({MESSAGE_COLUMNS}) ");
        // One multi-row statement per chunk: a statement per row was a round trip to the
        // database's worker thread each (most of a v1 send's time under load).
        let _turn = self.write_turn().await;
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in billing::store::statement_chunks(rows, MESSAGE_CHUNK) {
                let mut q = billing::store::sized_builder(head.as_str(), chunk.len(), 17);
                q.push_values(chunk, |mut b, m| {
                    b.push_bind(&m.id)
                        .push_bind(&m.uid)
                        .push_bind(&m.client_reference)
                        .push_bind(&m.sender)
                        .push_bind(&m.recipient)
                        .push_bind(&m.encoding)
                        .push_bind(m.parts)
                        .push_bind(m.cost)
                        .push_bind(&m.currency)
                        .push_bind(&m.webhook_url)
                        .push_bind(&m.status)
                        .push_bind(&m.error_code)
                        .push_bind(&m.connector)
                        .push_bind(m.created_at)
                        .push_bind(m.scheduled_at)
                        .push_bind(m.sent_at)
                        .push_bind(m.done_at);
                });
                q.push(" ON CONFLICT (id) DO NOTHING");
                q.build().execute(&mut *tx).await?;
            }
            for op in answers {
                idem_op!(tx, op);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn message(&self, uid: &str, id: &str) -> Result<Option<MessageRow>, StoreError> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM api_messages WHERE id = $1 AND uid = $2");
        with_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(id).bind(uid).fetch_optional(pool).await?;
            Ok(match row {
                Some(r) => Some(message_from_row!(&r)),
                None => None,
            })
        })
    }

    /// The message `id` whoever sent it (receipts name no user we could check).
    pub async fn message_any(&self, id: &str) -> Result<Option<MessageRow>, StoreError> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM api_messages WHERE id = $1");
        with_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(pool).await?;
            Ok(match row {
                Some(r) => Some(message_from_row!(&r)),
                None => None,
            })
        })
    }

    /// `uid`'s messages matching `f`, newest first.
    pub async fn list_messages(
        &self,
        uid: &str,
        f: &MessageFilter,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let mut sql = format!("SELECT {MESSAGE_COLUMNS} FROM api_messages WHERE uid = $1");
        let mut n = 1;
        let mut next = |clause: &str, sql: &mut String| {
            n += 1;
            sql.push_str(&clause.replace('?', &format!("${n}")));
        };
        if f.client_reference.is_some() {
            next(" AND client_reference = ?", &mut sql);
        }
        if f.from.is_some() {
            next(" AND created_at >= ?", &mut sql);
        }
        if f.to.is_some() {
            next(" AND created_at < ?", &mut sql);
        }
        if f.status.is_some() {
            next(" AND status = ?", &mut sql);
        }
        if f.before.is_some() {
            // (created_at, id) < (c, i), spelled out for both backends.
            n += 1;
            let c = n;
            n += 1;
            let i = n;
            sql.push_str(&format!(
                " AND (created_at < ${c} OR (created_at = ${c} AND id < ${i}))"
            ));
        }
        n += 1;
        sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT ${n}"));
        with_pool!(self, pool => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(uid);
            if let Some(v) = &f.client_reference {
                q = q.bind(v);
            }
            if let Some(v) = f.from {
                q = q.bind(v);
            }
            if let Some(v) = f.to {
                q = q.bind(v);
            }
            if let Some(v) = &f.status {
                q = q.bind(v);
            }
            if let Some((c, i)) = &f.before {
                q = q.bind(*c).bind(i);
            }
            let rows = q.bind(f.limit).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(message_from_row!(r));
            }
            Ok(out)
        })
    }

    /// A receipt's news: the final state (or `sent`), its error code and time. A final
    /// state is never overwritten.
    pub async fn update_message(
        &self,
        id: &str,
        status: &str,
        error_code: Option<&str>,
        connector: &str,
        at: i64,
        is_final: bool,
    ) -> Result<bool, StoreError> {
        let sql = if is_final {
            "UPDATE api_messages SET status = $1, error_code = $2, connector = $3, done_at = $4, \
             sent_at = COALESCE(sent_at, $4) \
             WHERE id = $5 AND status IN ('queued', 'sent')"
        } else {
            "UPDATE api_messages SET status = $1, error_code = $2, connector = $3, \
             sent_at = COALESCE(sent_at, $4) \
             WHERE id = $5 AND status = 'queued'"
        };
        with_pool!(self, pool => {
            let done = sqlx::query(sql)
                .bind(status)
                .bind(error_code)
                .bind(connector)
                .bind(at)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(key: &str, hash: &str, now: i64, expired_before: i64) -> IdemOp {
        IdemOp::Claim {
            uid: "u1".into(),
            key: key.into(),
            request_hash: hash.into(),
            now,
            expired_before,
        }
    }

    #[tokio::test]
    async fn idempotency_writes_in_one_batch() {
        let db = Db::open("memory:").await.expect("open");
        // Two claims of one key in a batch: the first wins.
        let done = db
            .idem_batch(&[
                claim("k1", "h1", 10, 0),
                claim("k1", "h1", 10, 0),
                claim("k2", "h2", 10, 0),
            ])
            .await
            .expect("batch");
        assert_eq!(done, [true, false, true]);
        let complete = IdemOp::Complete {
            uid: "u1".into(),
            key: "k1".into(),
            status: 202,
            body: "{}".into(),
        };
        let release = IdemOp::Release {
            uid: "u1".into(),
            key: "k2".into(),
        };
        let done = db
            .idem_batch(&[complete, release, claim("k1", "h1", 11, 0)])
            .await
            .expect("batch");
        assert_eq!(done, [true, true, false], "k1 is still held");
        let answer = db.idem_get("u1", "k1").await.expect("get").expect("k1");
        assert_eq!((answer.status, answer.body.as_str()), (202, "{}"));
        assert_eq!(
            db.idem_get("u1", "k2").await.expect("get"),
            None,
            "released"
        );
        // Past its time, a key can be claimed again (with another body, even).
        let done = db
            .idem_batch(&[claim("k1", "h9", 100, 50), claim("k2", "h2", 100, 50)])
            .await
            .expect("batch");
        assert_eq!(done, [true, true]);
        let fresh = db.idem_get("u1", "k1").await.expect("get").expect("k1");
        assert_eq!((fresh.request_hash.as_str(), fresh.status), ("h9", 0));
    }
}
