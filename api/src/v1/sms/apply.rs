//! The batched writes behind receipts and MO: one transaction moves every message of
//! a batch on and writes the webhook events of those that reached a final state, in
//! multi-row statements (a round trip per chunk of rows, never per message).

use std::collections::HashSet;

use sqlx::Row;

use super::super::{
    store::{Db, MESSAGE_COLUMNS, MessageRow, StoreError, message_from_row, with_pool},
    webhooks::EventRow,
};

/// Rows per statement: at most 7 parameters each, far below both backends' bounds.
const CHUNK: usize = 500;

/// What the receipts of a batch say about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub id: String,
    pub status: &'static str,
    pub error_code: Option<String>,
    pub connector: String,
    pub at: i64,
    pub is_final: bool,
}

/// What a batch did.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Messages whose state moved, as they are now.
    pub changed: Vec<MessageRow>,
    /// Ids without a record (not the API's, or not written yet).
    pub missing: Vec<String>,
    /// Webhook events written.
    pub events: usize,
}

/// `rows` groups of `width` parameters numbered from `$1`, each shaped by `row`.
fn rows_sql(rows: usize, width: usize, row: impl Fn(&[String]) -> String) -> String {
    (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            row(&params)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The multi-row UPDATE of `rows` changes: a final state is never overwritten, `sent`
/// only moves a `queued` message. The CTE's columns have names of their own so that
/// the unqualified names (all the target's) are unambiguous on both backends.
fn update_sql(rows: usize) -> String {
    let values = rows_sql(rows, 6, |p| {
        format!(
            "(CAST({} AS TEXT), CAST({} AS TEXT), CAST({} AS TEXT), CAST({} AS TEXT), \
             CAST({} AS BIGINT), CAST({} AS INTEGER))",
            p[0], p[1], p[2], p[3], p[4], p[5]
        )
    });
    format!(
        "WITH v (v_id, v_status, v_error, v_connector, v_at, v_final) AS (VALUES {values}) \
         UPDATE api_messages SET status = v_status, error_code = v_error, \
         connector = v_connector, done_at = CASE WHEN v_final = 1 THEN v_at ELSE done_at END, \
         sent_at = COALESCE(sent_at, v_at) \
         FROM v WHERE id = v_id AND (status = 'queued' OR (v_final = 1 AND status = 'sent')) \
         RETURNING {MESSAGE_COLUMNS}"
    )
}

fn events_sql(rows: usize) -> String {
    let values = rows_sql(rows, 7, |p| {
        format!(
            "({}, {}, {}, {}, {}, {}, 0, {}, 'pending', {})",
            p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[6]
        )
    });
    format!(
        "INSERT INTO api_webhook_events (id, webhook_id, uid, url, event, body, attempts, \
         next_at, state, created_at) VALUES {values}"
    )
}

fn exists_sql(rows: usize) -> String {
    let ids = rows_sql(rows, 1, |p| p[0].clone());
    format!("SELECT id FROM api_messages WHERE id IN ({ids})")
}

/// Writes `rows` to the outbox (due at `now`) on `$tx`, a chunk per statement.
macro_rules! insert_event_rows {
    ($tx:expr, $rows:expr, $now:expr) => {
        for chunk in $rows.chunks(CHUNK) {
            let sql = events_sql(chunk.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for (id, webhook_id, uid, url, event, body) in chunk {
                q = q
                    .bind(id)
                    .bind(webhook_id)
                    .bind(uid)
                    .bind(url)
                    .bind(event)
                    .bind(body)
                    .bind($now);
            }
            q.execute(&mut *$tx).await?;
        }
    };
}

impl Db {
    /// Writes events to the outbox (due at once), in one transaction.
    pub async fn insert_events(&self, events: &[EventRow], now: i64) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            insert_event_rows!(tx, events, now);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Applies `changes` (at most one per message) in one transaction, and writes the
    /// webhook events `events_of` gives for each message that reached a final state in
    /// it: the state and its events are stored together or not at all.
    pub(crate) async fn apply_changes(
        &self,
        changes: &[Change],
        events_of: impl Fn(&MessageRow) -> Vec<EventRow>,
        now: i64,
    ) -> Result<Applied, StoreError> {
        let mut applied = Applied::default();
        if changes.is_empty() {
            return Ok(applied);
        }
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in changes.chunks(CHUNK) {
                let sql = update_sql(chunk.len());
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                for c in chunk {
                    q = q
                        .bind(&c.id)
                        .bind(c.status)
                        .bind(&c.error_code)
                        .bind(&c.connector)
                        .bind(c.at)
                        .bind(i32::from(c.is_final));
                }
                for r in &q.fetch_all(&mut *tx).await? {
                    applied.changed.push(message_from_row!(r));
                }
            }
            let moved: HashSet<&str> = applied.changed.iter().map(|r| r.id.as_str()).collect();
            let rest: Vec<&str> = changes
                .iter()
                .map(|c| c.id.as_str())
                .filter(|id| !moved.contains(id))
                .collect();
            let mut found = HashSet::new();
            for chunk in rest.chunks(CHUNK) {
                let sql = exists_sql(chunk.len());
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                for id in chunk {
                    q = q.bind(*id);
                }
                for r in &q.fetch_all(&mut *tx).await? {
                    found.insert(r.try_get::<String, _>("id")?);
                }
            }
            applied.missing = rest
                .into_iter()
                .filter(|id| !found.contains(*id))
                .map(str::to_owned)
                .collect();
            let events: Vec<EventRow> = applied
                .changed
                .iter()
                .filter(|r| super::is_final_state(&r.status))
                .flat_map(&events_of)
                .collect();
            insert_event_rows!(tx, events, now);
            applied.events = events.len();
            tx.commit().await?;
        });
        Ok(applied)
    }

    /// Which of `ids` have a record.
    pub(crate) async fn existing(&self, ids: &[String]) -> Result<HashSet<String>, StoreError> {
        let mut found = HashSet::new();
        with_pool!(self, pool => {
            for chunk in ids.chunks(CHUNK) {
                let sql = exists_sql(chunk.len());
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                for id in chunk {
                    q = q.bind(id);
                }
                for r in &q.fetch_all(pool).await? {
                    found.insert(r.try_get::<String, _>("id")?);
                }
            }
        });
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_number_their_parameters_in_order() {
        assert_eq!(
            rows_sql(2, 2, |p| format!("({}, {})", p[0], p[1])),
            "($1, $2), ($3, $4)"
        );
        assert!(update_sql(2).contains("CAST($12 AS INTEGER))) UPDATE"));
        assert!(events_sql(1).ends_with("($1, $2, $3, $4, $5, $6, 0, $7, 'pending', $7)"));
        assert!(exists_sql(3).ends_with("IN ($1, $2, $3)"));
    }
}
