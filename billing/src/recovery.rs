//! Start-up: rebuild balances from the ledger and open reservations from the CDR
//! (rows still PENDING), then resolve what a crash left open.

use std::borrow::Cow;
use std::sync::Arc;

use crate::account::AccountId;
use crate::config::{BillingConfig, RecoveryPolicy};
use crate::engine::{
    ACTOR_RECOVERY, AccountState, BillingEngine, Close, OpenRes, SettledRef, Shards,
};
use crate::error::BillingError;
use crate::ledger::{UnixMicros, now_micros};
use crate::money::Micros;
use crate::store::LedgerStore;
use crate::tariff::TariffBook;

/// Final status written to the CDR of a message refunded at start because it never
/// reached an operator.
pub const UNSENT_AT_RESTART: &str = "UNSENT_AT_RESTART";

/// What the last start found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub accounts: usize,
    /// Reservations found open (CDR still PENDING).
    pub open_found: usize,
    pub committed: usize,
    pub refunded: usize,
    pub kept_open: usize,
    /// Accounts whose balances snapshot disagreed with their ledger (the ledger wins;
    /// `reconcile` reports them too).
    pub snapshot_mismatches: Vec<AccountId>,
}

impl RecoveryReport {
    pub(crate) fn absorb(&mut self, r: Resolved) {
        self.committed += r.committed;
        self.refunded += r.refunded;
        self.kept_open += r.kept_open;
    }
}

pub(crate) struct Loaded {
    pub next_ledger_id: i64,
    pub tariffs: TariffBook,
    pub report: RecoveryReport,
}

#[derive(Default)]
pub(crate) struct Resolved {
    committed: usize,
    refunded: usize,
    kept_open: usize,
}

pub(crate) async fn load(
    store: &dyn LedgerStore,
    config: &BillingConfig,
    shards: &Shards,
) -> Result<Loaded, BillingError> {
    let mut report = RecoveryReport::default();
    let mut tariffs = TariffBook::default();
    let now = now_micros();
    let month_start = month_start(now);
    let month_end = next_month_start(now);
    let ledger = store.ledger_sums().await?;
    let snapshot = store.balance_rows().await?;
    for account in store.load_accounts().await? {
        tariffs.set_parent(account.id, account.parent_id);
        let id = account.id;
        let sums = ledger
            .iter()
            .find(|s| s.account == id)
            .copied()
            .unwrap_or_default();
        if snapshot.iter().find(|s| s.account == id)
            != Some(&crate::store::AccountSums {
                account: id,
                ..sums
            })
        {
            tracing::warn!(account = %id, "balances snapshot differs from the ledger; using the ledger");
            report.snapshot_mismatches.push(id);
        }
        shards.lock(id).accounts.insert(
            id,
            AccountState {
                account,
                balance: sums.balance.0,
                reserved: sums.reserved.0,
                sms_count: sums.sms_count,
                volume: 0,
                volume_until: month_end,
                admin_refs: Default::default(),
            },
        );
        report.accounts += 1;
    }
    for t in store.load_tariffs().await? {
        tariffs.insert(t);
    }
    for (account, reference) in store.admin_refs().await? {
        if let Some(s) = shards.lock(account).accounts.get_mut(&account) {
            s.admin_refs.insert(reference.into_boxed_str());
        }
    }
    for (account, parts) in store.volumes(month_start, month_end).await? {
        if let Some(s) = shards.lock(account).accounts.get_mut(&account) {
            s.volume = parts;
        }
    }
    let lookback = i64::try_from(config.settled_lookback_hours)
        .unwrap_or(i64::MAX / 3_600_000_000)
        .saturating_mul(3_600_000_000);
    let limit = (config
        .settled_memory_per_shard
        .saturating_mul(config.shards.max(1))) as i64;
    let mut recent = store.recent_closed(now - lookback, limit).await?;
    // Oldest first, so the per-shard memory keeps the newest.
    recent.reverse();
    for c in recent {
        shards.lock(c.account).remember_settled(
            Arc::from(c.reference),
            SettledRef {
                account: c.account,
                status: c.status,
            },
        );
    }
    for p in store.pending_cdrs().await? {
        let row = p.row;
        let expected = Micros(row.total.0 - row.charged.0);
        if p.reserved_left != expected {
            tracing::warn!(
                reference = %row.message_id,
                ledger = %p.reserved_left,
                cdr = %expected,
                "open reservation: ledger and CDR disagree (reconcile will report it)"
            );
        }
        report.open_found += 1;
        shards.lock(row.account).open.insert(
            row.message_id.clone(),
            OpenRes {
                amount: row.total,
                charged: row.charged,
                cdr: row,
            },
        );
    }
    Ok(Loaded {
        next_ledger_id: store.max_ledger_id().await? + 1,
        tariffs,
        report,
    })
}

/// Resolves the reservations a crash left open: accepted by the operator (the CDR has an
/// operator id) → commit; never went out → refund. Both with actor `recovery`.
pub(crate) fn resolve_open(
    engine: &BillingEngine,
    policy: RecoveryPolicy,
) -> Result<Resolved, BillingError> {
    let mut r = Resolved::default();
    for open in engine.open_reservations() {
        if policy == RecoveryPolicy::KeepOpen {
            r.kept_open += 1;
            continue;
        }
        let actor = Cow::Borrowed(ACTOR_RECOVERY);
        match open.operator_msg_id.as_deref() {
            Some(op_id) => {
                engine.settle(
                    open.account,
                    &open.reference,
                    Close::Commit(Some(op_id)),
                    actor,
                )?;
                r.committed += 1;
            }
            None => {
                engine.settle(
                    open.account,
                    &open.reference,
                    Close::Refund(UNSENT_AT_RESTART),
                    actor,
                )?;
                r.refunded += 1;
            }
        }
    }
    if r.committed + r.refunded > 0 {
        tracing::info!(
            committed = r.committed,
            refunded = r.refunded,
            "resolved reservations left open by the last run"
        );
    }
    Ok(r)
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm): month
/// arithmetic for tariff volumes and invoices without a calendar dependency.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m)
}

/// UTC (year, month) of a time: the month an invoice or a volume tier counts it in.
pub fn year_month(at: UnixMicros) -> (i64, u32) {
    civil_from_days(at.div_euclid(MICROS_PER_DAY))
}

fn first_of(y: i64, m: u32) -> UnixMicros {
    days_from_civil(y, m, 1).saturating_mul(MICROS_PER_DAY)
}

/// Start of the calendar month (UTC) that contains `at`.
pub fn month_start(at: UnixMicros) -> UnixMicros {
    let (y, m) = year_month(at);
    first_of(y, m)
}

/// Start of the calendar month (UTC) after the one that contains `at`.
pub fn next_month_start(at: UnixMicros) -> UnixMicros {
    let (y, m) = year_month(at);
    if m == 12 {
        first_of(y + 1, 1)
    } else {
        first_of(y, m + 1)
    }
}

/// [start, end) of a calendar month (UTC).
pub fn month_bounds(year: i32, month: u32) -> Result<(UnixMicros, UnixMicros), BillingError> {
    if !(1..=12).contains(&month) || !(1970..=9999).contains(&year) {
        return Err(BillingError::InvalidRequest(format!(
            "no such month {year}-{month:02}"
        )));
    }
    let s = first_of(i64::from(year), month);
    Ok((s, next_month_start(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_boundaries() {
        let (s, e) = month_bounds(2026, 12).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(month_start(s), s);
        assert_eq!(month_start(e - 1), s);
        assert_eq!(next_month_start(s), e);
        assert_eq!(month_bounds(2027, 1).map(|b| b.0).ok(), Some(e));
        assert!(month_bounds(2026, 13).is_err());
        // 2024-03-01T00:00:00Z and 2024-02-01T00:00:00Z (a leap February).
        assert_eq!(
            month_bounds(2024, 3).map(|b| b.0).ok(),
            Some(1_709_251_200_000_000)
        );
        assert_eq!(
            month_bounds(2024, 2).map(|b| b.1).ok(),
            Some(1_709_251_200_000_000)
        );
        assert_eq!(month_start(1_709_251_199_999_999), 1_706_745_600_000_000);
        assert_eq!(month_bounds(1970, 1).map(|b| b.0).ok(), Some(0));
    }
}
