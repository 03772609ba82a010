//! Entry points for the `smsgw` binary: `smsgw migrate`, `smsgw billing reconcile`,
//! `smsgw billing invoice`. Each opens the store from its URL (running migrations).

use std::io::Write;

use crate::account::AccountId;
use crate::error::BillingError;
use crate::invoice::{Invoice, invoice};
use crate::reconcile::{ReconcileReport, reconcile as reconcile_store};
use crate::store::open_store;

/// Creates or upgrades the schema. A database that cannot be reached is
/// `BillingError::StoreUnavailable` (the binary prints it and exits non-zero).
pub async fn migrate(url: &str) -> Result<(), BillingError> {
    let store = open_store(url).await?;
    store.close().await;
    Ok(())
}

/// Recomputes balances from the ledger and charged totals from the CDR. Print the report;
/// exit non-zero unless `report.is_clean()`.
pub async fn reconcile(url: &str) -> Result<ReconcileReport, BillingError> {
    let store = open_store(url).await?;
    let report = reconcile_store(store.as_ref()).await;
    store.close().await;
    report
}

/// The newest `limit` audit lines, newest first.
pub async fn audit_log(
    url: &str,
    action: Option<&str>,
    limit: i64,
) -> Result<Vec<crate::AuditEvent>, BillingError> {
    let store = open_store(url).await?;
    let lines = store.audit_log(action, limit).await;
    store.close().await;
    lines
}

/// Writes the margin report of a month (`YYYY-MM`) as CSV and returns it.
pub async fn margin_csv(
    url: &str,
    month: &str,
    writer: impl Write,
) -> Result<crate::margin::MarginReport, BillingError> {
    let (year, month) = crate::margin::parse_month(month)?;
    let store = open_store(url).await?;
    let report = crate::margin::margin(store.as_ref(), year, month).await;
    store.close().await;
    let report = report?;
    report.write_csv(writer)?;
    Ok(report)
}

/// Writes the monthly invoice of `account_id` as CSV and returns it.
pub async fn invoice_csv(
    url: &str,
    account_id: i64,
    year: i32,
    month: u32,
    writer: impl Write,
) -> Result<Invoice, BillingError> {
    let store = open_store(url).await?;
    let inv = invoice(store.as_ref(), AccountId(account_id), year, month).await;
    store.close().await;
    let inv = inv?;
    inv.write_csv(writer)?;
    Ok(inv)
}
