//! `GET /api/v1/account/usage` and `GET /api/v1/account/cdr`, read from billing's CDR
//! (one row per part sent, in the account `user:<uid>`). The export is streamed: rows
//! go from the database cursor to the socket through a small bounded channel, so a
//! month of CDRs never sits in memory; a slow client slows the query down, nothing
//! piles up.

use std::{collections::BTreeMap, io, net::SocketAddr};

use axum::{
    body::{Body, Bytes},
    extract::{ConnectInfo, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use sqlx::Row;
use tokio::sync::mpsc;
use tracing::warn;

use super::{
    V1, json,
    keys::Scope,
    money, peer,
    problem::Problem,
    query_params,
    sms::time_param,
    store::{Db, StoreError},
    time::rfc3339,
};

/// Rows per page of the export when `limit` is not given, and its largest value.
pub const DEFAULT_CDR_PAGE: i64 = 100_000;
pub const MAX_CDR_PAGE: i64 = 1_000_000;
/// Bytes gathered before a chunk goes to the socket.
const CHUNK: usize = 32 * 1024;
/// Chunks in flight between the query and the socket.
const CHUNKS: usize = 4;

/// One CDR row as exported; money in micro-units, time in unix microseconds.
#[derive(Debug, Clone)]
pub struct CdrLine {
    pub message_id: String,
    pub accepted_at: i64,
    pub submitted_at: Option<i64>,
    pub receipt_at: Option<i64>,
    pub sender: String,
    pub destination: String,
    pub connector: String,
    pub operator: String,
    pub parts: i64,
    pub currency: String,
    pub cost_per_part: i64,
    pub total: i64,
    pub charged: i64,
    pub charge_status: String,
    pub final_status: Option<String>,
    pub operator_msg_id: Option<String>,
}

const CSV_HEADER: &str = "message_id,accepted_at,submitted_at,receipt_at,sender,destination,\
connector,operator,parts,currency,cost_per_part,total,charged,charge_status,final_status,\
operator_msg_id\n";

fn csv_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

impl CdrLine {
    fn cursor(&self) -> String {
        format!("{}.{}", self.accepted_at, self.message_id)
    }

    fn write_csv(&self, out: &mut String) {
        let fields = [
            self.message_id.clone(),
            rfc3339(self.accepted_at),
            self.submitted_at.map(rfc3339).unwrap_or_default(),
            self.receipt_at.map(rfc3339).unwrap_or_default(),
            self.sender.clone(),
            self.destination.clone(),
            self.connector.clone(),
            self.operator.clone(),
            self.parts.to_string(),
            self.currency.clone(),
            money(self.cost_per_part),
            money(self.total),
            money(self.charged),
            self.charge_status.clone(),
            self.final_status.clone().unwrap_or_default(),
            self.operator_msg_id.clone().unwrap_or_default(),
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(out, f);
        }
        out.push('\n');
    }

    fn to_json(&self) -> Value {
        json!({
            "message_id": self.message_id,
            "accepted_at": rfc3339(self.accepted_at),
            "submitted_at": self.submitted_at.map(rfc3339),
            "receipt_at": self.receipt_at.map(rfc3339),
            "sender": self.sender,
            "destination": self.destination,
            "connector": self.connector,
            "operator": self.operator,
            "parts": self.parts,
            "currency": self.currency,
            "cost_per_part": money(self.cost_per_part),
            "total": money(self.total),
            "charged": money(self.charged),
            "charge_status": self.charge_status,
            "final_status": self.final_status,
            "operator_msg_id": self.operator_msg_id,
        })
    }
}

/// What the export reads.
#[derive(Debug, Clone)]
pub struct CdrQuery {
    pub uid: String,
    pub from: i64,
    pub to: i64,
    /// Strictly after this (accepted_at, message_id).
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

/// The columns, as micro-units and unix microseconds on either backend.
fn select_sql(db: &Db) -> &'static str {
    match db {
        Db::Sqlite(_) => {
            "SELECT message_id, accepted_at, submitted_at, receipt_at, sender, destination, \
             connector, operator, CAST(parts AS INTEGER) AS parts, currency, cost_per_part, total, charged, \
             charge_status, final_status, operator_msg_id FROM cdr \
             WHERE account_id = (SELECT id FROM accounts WHERE name = $1) \
             AND accepted_at >= $2 AND accepted_at < $3 \
             AND ($4 IS NULL OR accepted_at > $4 OR (accepted_at = $4 AND message_id > $5)) \
             ORDER BY accepted_at, message_id LIMIT $6"
        }
        Db::Postgres(_) => {
            "SELECT message_id, \
             (EXTRACT(EPOCH FROM accepted_at) * 1000000)::BIGINT AS accepted_at, \
             (EXTRACT(EPOCH FROM submitted_at) * 1000000)::BIGINT AS submitted_at, \
             (EXTRACT(EPOCH FROM receipt_at) * 1000000)::BIGINT AS receipt_at, \
             sender, destination, connector, operator, parts::BIGINT AS parts, \
             currency::TEXT AS currency, \
             (cost_per_part * 1000000)::BIGINT AS cost_per_part, \
             (total * 1000000)::BIGINT AS total, (charged * 1000000)::BIGINT AS charged, \
             charge_status, final_status, operator_msg_id FROM cdr \
             WHERE account_id = (SELECT id FROM accounts WHERE name = $1) \
             AND accepted_at >= to_timestamp($2::BIGINT / 1000000.0) \
             AND accepted_at < to_timestamp($3::BIGINT / 1000000.0) \
             AND ($4::BIGINT IS NULL OR (accepted_at, message_id) > \
                  (to_timestamp($4::BIGINT / 1000000.0), $5::TEXT)) \
             ORDER BY accepted_at, message_id LIMIT $6"
        }
    }
}

macro_rules! cdr_from_row {
    ($r:expr) => {{
        let r = $r;
        CdrLine {
            message_id: r.try_get("message_id")?,
            accepted_at: r.try_get("accepted_at")?,
            submitted_at: r.try_get("submitted_at")?,
            receipt_at: r.try_get("receipt_at")?,
            sender: r.try_get("sender")?,
            destination: r.try_get("destination")?,
            connector: r.try_get("connector")?,
            operator: r.try_get("operator")?,
            parts: r.try_get("parts")?,
            currency: r.try_get("currency")?,
            cost_per_part: r.try_get("cost_per_part")?,
            total: r.try_get("total")?,
            charged: r.try_get("charged")?,
            charge_status: r.try_get("charge_status")?,
            final_status: r.try_get("final_status")?,
            operator_msg_id: r.try_get("operator_msg_id")?,
        }
    }};
}

impl Db {
    /// Sends the rows of `q` to `tx` in order; stops early when the receiver is gone.
    pub async fn stream_cdr(
        &self,
        q: &CdrQuery,
        tx: &mpsc::Sender<Result<CdrLine, StoreError>>,
    ) -> Result<(), StoreError> {
        let account = format!("user:{}", q.uid);
        let (after_at, after_id) = match &q.after {
            Some((at, id)) => (Some(*at), id.clone()),
            None => (None, String::new()),
        };
        let sql = select_sql(self);
        macro_rules! run {
            ($pool:expr) => {{
                let mut rows = sqlx::query(sql)
                    .bind(&account)
                    .bind(q.from)
                    .bind(q.to)
                    .bind(after_at)
                    .bind(&after_id)
                    .bind(q.limit)
                    .fetch($pool);
                while let Some(r) = rows.try_next().await? {
                    let line = cdr_from_row!(&r);
                    if tx.send(Ok(line)).await.is_err() {
                        return Ok(());
                    }
                }
            }};
        }
        match self {
            Db::Sqlite(pool) => run!(pool),
            Db::Postgres(pool) => run!(pool),
        }
        Ok(())
    }

    /// Usage of `uid` in [from, to): (day or operator or state, records, SMS, charged).
    pub async fn usage(
        &self,
        uid: &str,
        from: i64,
        to: i64,
        group_by: &str,
    ) -> Result<Vec<(String, i64, i64, i64)>, StoreError> {
        let account = format!("user:{uid}");
        let (key, where_, sums) = match self {
            Db::Sqlite(_) => (
                match group_by {
                    "day" => "strftime('%Y-%m-%d', accepted_at / 1000000, 'unixepoch')",
                    "operator" => "operator",
                    _ => "COALESCE(final_status, '') || '/' || charge_status",
                },
                "accepted_at >= $2 AND accepted_at < $3",
                "COUNT(*) AS records, CAST(COALESCE(SUM(parts), 0) AS INTEGER) AS sms, \
                 CAST(COALESCE(SUM(charged), 0) AS INTEGER) AS charged",
            ),
            Db::Postgres(_) => (
                match group_by {
                    "day" => "to_char(accepted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
                    "operator" => "operator",
                    _ => "COALESCE(final_status, '') || '/' || charge_status",
                },
                "accepted_at >= to_timestamp($2::BIGINT / 1000000.0) \
                 AND accepted_at < to_timestamp($3::BIGINT / 1000000.0)",
                "COUNT(*)::BIGINT AS records, COALESCE(SUM(parts), 0)::BIGINT AS sms, \
                 (COALESCE(SUM(charged), 0) * 1000000)::BIGINT AS charged",
            ),
        };
        let sql = format!(
            "SELECT {key} AS k, {sums} FROM cdr \
             WHERE account_id = (SELECT id FROM accounts WHERE name = $1) AND {where_} \
             GROUP BY k ORDER BY k"
        );
        macro_rules! run {
            ($pool:expr) => {{
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(&account)
                    .bind(from)
                    .bind(to)
                    .fetch_all($pool)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push((
                        r.try_get::<String, _>("k")?,
                        r.try_get::<i64, _>("records")?,
                        r.try_get::<i64, _>("sms")?,
                        r.try_get::<i64, _>("charged")?,
                    ));
                }
                Ok(out)
            }};
        }
        match self {
            Db::Sqlite(pool) => run!(pool),
            Db::Postgres(pool) => run!(pool),
        }
    }
}

/// The API's state name of a CDR row's `final_status/charge_status`.
fn usage_state(key: &str) -> &'static str {
    let (final_status, charge) = key.split_once('/').unwrap_or((key, ""));
    match (final_status, charge) {
        ("", "PENDING") => "queued",
        ("", "CHARGED") => "sent",
        ("", _) => "failed",
        (stat, _) => super::sms::stat_state(stat).0,
    }
}

fn period(params: &std::collections::HashMap<String, String>) -> Result<(i64, i64), Problem> {
    let from = time_param(params, "from")?.unwrap_or(0);
    let to = time_param(params, "to")?.unwrap_or(i64::MAX);
    if from >= to {
        return Err(Problem::invalid("`from` must be before `to`"));
    }
    Ok((from, to))
}

/// Usage from the CDR: records, SMS and cost, by day, operator or state.
#[utoipa::path(get, path = "/api/v1/account/usage", operation_id = "getUsage", tag = "account",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339 or date"),
        ("to" = Option<String>, Query, description = "RFC 3339 or date (exclusive)"),
        ("group_by" = Option<String>, Query, description = "day (default), operator or status"),
    ),
    responses((status = 200, description = "{{group_by, currency, data: [...], total}}"), (status = 401, description = "No valid API key", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing scope or address not allowed", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = ["account:read"])))]
pub async fn usage(
    State(v1): State<V1>,
    ConnectInfo(connect): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let p = v1
            .authenticate(&headers, peer(connect), Scope::AccountRead)
            .await?;
        let params = query_params(query.as_deref());
        let (from, to) = period(&params)?;
        let group_by = params.get("group_by").map_or("day", String::as_str);
        if !matches!(group_by, "day" | "operator" | "status") {
            return Err(Problem::invalid("`group_by` takes day, operator or status"));
        }
        let rows = v1
            .db()
            .usage(&p.user.uid, from, to, group_by)
            .await
            .map_err(Problem::internal)?;
        // States are merged in Rust (several stored pairs name one state).
        let mut groups: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
        for (key, records, sms, charged) in rows {
            let key = if group_by == "status" {
                usage_state(&key).to_owned()
            } else {
                key
            };
            let g = groups.entry(key).or_default();
            g.0 += records;
            g.1 += sms;
            g.2 += charged;
        }
        let (mut records, mut sms, mut charged) = (0i64, 0i64, 0i64);
        let data: Vec<Value> = groups
            .into_iter()
            .map(|(key, (r, s, c))| {
                records += r;
                sms += s;
                charged += c;
                json!({ group_by: key, "records": r, "sms": s, "cost": money(c) })
            })
            .collect();
        Ok::<_, Problem>(json(
            200,
            &json!({
                "group_by": group_by,
                "currency": v1.config().currency,
                "data": data,
                "total": { "records": records, "sms": sms, "cost": money(charged) },
            }),
        ))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

fn wants_csv(headers: &HeaderMap, params: &std::collections::HashMap<String, String>) -> bool {
    match params.get("format").map(String::as_str) {
        Some("csv") => true,
        Some(_) => false,
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
    }
}

/// The CDR (one row per part sent), oldest first, streamed as JSON or CSV.
#[utoipa::path(get, path = "/api/v1/account/cdr", operation_id = "exportCdr", tag = "account",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339 or date"),
        ("to" = Option<String>, Query, description = "RFC 3339 or date (exclusive)"),
        ("format" = Option<String>, Query, description = "csv or json (default: by Accept)"),
        ("limit" = Option<i64>, Query, description = "Rows per page, 1 to 1,000,000, default 100,000"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page (CSV: its `# next_cursor=` line)"),
    ),
    responses((status = 200, description = "Rows: {{data: [...], next_cursor}} or text/csv"), (status = 401, description = "No valid API key", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Missing scope or address not allowed", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = ["account:read"])))]
pub async fn export(
    State(v1): State<V1>,
    ConnectInfo(connect): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let p = v1
            .authenticate(&headers, peer(connect), Scope::AccountRead)
            .await?;
        let params = query_params(query.as_deref());
        let (from, to) = period(&params)?;
        let limit = match params.get("limit") {
            None => DEFAULT_CDR_PAGE,
            Some(l) => l
                .parse::<i64>()
                .ok()
                .filter(|l| (1..=MAX_CDR_PAGE).contains(l))
                .ok_or_else(|| Problem::invalid(format!("`limit` takes 1 to {MAX_CDR_PAGE}")))?,
        };
        let after = params
            .get("cursor")
            .map(|c| {
                c.split_once('.')
                    .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())))
                    .ok_or_else(|| Problem::invalid("invalid `cursor`"))
            })
            .transpose()?;
        let csv = wants_csv(&headers, &params);
        let q = CdrQuery {
            uid: p.user.uid.to_string(),
            from,
            to,
            after,
            // One more row than the page says whether there is a next page.
            limit: limit + 1,
        };
        Ok::<_, Problem>(stream_response(v1.db().clone(), q, limit, csv))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// The body: rows read by a task into a bounded channel, turned into chunks as the
/// socket takes them. JSON ends with the next page's cursor; CSV (which has no place
/// for it) ends its last page with a `# next_cursor=` line only when there is one.
fn stream_response(db: std::sync::Arc<Db>, q: CdrQuery, limit: i64, csv: bool) -> Response {
    let (rows_tx, mut rows_rx) = mpsc::channel::<Result<CdrLine, StoreError>>(256);
    tokio::spawn(async move {
        if let Err(error) = db.stream_cdr(&q, &rows_tx).await {
            let _ = rows_tx.send(Err(error)).await;
        }
    });
    let (chunks_tx, chunks_rx) = mpsc::channel::<Result<Bytes, io::Error>>(CHUNKS);
    tokio::spawn(async move {
        let mut out = String::with_capacity(CHUNK * 2);
        out.push_str(if csv { CSV_HEADER } else { "{\"data\":[" });
        let mut count = 0i64;
        let mut last: Option<CdrLine> = None;
        let mut next = None;
        while let Some(row) = rows_rx.recv().await {
            let row = match row {
                Ok(row) => row,
                Err(error) => {
                    // The status is sent already: cut the body so the client sees an
                    // incomplete transfer rather than a short, valid-looking file.
                    warn!(%error, "CDR export failed");
                    let _ = chunks_tx
                        .send(Err(io::Error::other("CDR export failed")))
                        .await;
                    return;
                }
            };
            if count == limit {
                next = last.as_ref().map(CdrLine::cursor);
                break;
            }
            if csv {
                row.write_csv(&mut out);
            } else {
                if count > 0 {
                    out.push(',');
                }
                out.push_str(&row.to_json().to_string());
            }
            count += 1;
            last = Some(row);
            if out.len() >= CHUNK {
                let chunk = Bytes::from(std::mem::take(&mut out));
                if chunks_tx.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
        }
        drop(rows_rx);
        if csv {
            if let Some(next) = &next {
                out.push_str(&format!("# next_cursor={next}\n"));
            }
        } else {
            out.push_str(&format!("],\"next_cursor\":{}}}", json!(next)));
        }
        let _ = chunks_tx.send(Ok(Bytes::from(out))).await;
    });
    let stream = futures_util::stream::unfold(chunks_rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    })
    .boxed();
    let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if csv {
            "text/csv; charset=utf-8"
        } else {
            "application/json"
        }),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it() {
        let mut out = String::new();
        csv_field(&mut out, "a,b \"c\"");
        assert_eq!(out, "\"a,b \"\"c\"\"\"");
        assert_eq!(usage_state("DELIVRD/CHARGED"), "delivered");
        assert_eq!(usage_state("/PENDING"), "queued");
        assert_eq!(usage_state("/REFUNDED"), "failed");
    }
}
