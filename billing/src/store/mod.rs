//! Where the ledger, the CDR, accounts and tariffs are kept. The engine never waits on
//! the store in its hot path: the write-behind task is the only writer of ledger and CDR.

mod chunks;
mod memory;
mod postgres;
mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;

pub use chunks::{sized_builder, statement_chunks};
pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub use sqlite::{SqliteStore, write_gate as sqlite_write_gate};

use crate::account::{Account, AccountId};
use crate::audit::AuditEvent;
use crate::error::BillingError;
use crate::ledger::Op;
use crate::ledger::{CdrRow, ChargeStatus, EntryKind, LedgerEntry, ReceiptUpdate, UnixMicros};
use crate::money::{Currency, Micros};
use crate::tariff::{Tariff, TariffId};

/// One group commit: everything in it is written in one transaction, or nothing is.
#[derive(Debug, Default)]
pub struct Batch {
    /// Ledger entries with the ids the writer gave them (ids make a retried batch
    /// recognisable: if its first id is already stored, the batch was committed).
    pub entries: Vec<(i64, LedgerEntry)>,
    /// Full CDR rows, at most one per message (the last state wins).
    pub cdrs: Vec<CdrRow>,
    /// Receipts for messages whose row may have been written by an earlier batch.
    pub receipts: Vec<ReceiptUpdate>,
    /// Per account Σ of the entries' deltas, applied to the balances snapshot.
    pub balance_deltas: Vec<AccountSums>,
    /// Audit lines; written with the entries they describe.
    pub audit: Vec<AuditEvent>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
            && self.cdrs.is_empty()
            && self.receipts.is_empty()
            && self.audit.is_empty()
    }

    /// Empties the batch, keeping its vectors' capacity for the next one.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.cdrs.clear();
        self.receipts.clear();
        self.balance_deltas.clear();
        self.audit.clear();
    }

    pub fn first_entry_id(&self) -> Option<i64> {
        self.entries.first().map(|(id, _)| *id)
    }
}

/// Sums of one account: from the ledger or from the balances snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountSums {
    pub account: AccountId,
    pub balance: Micros,
    pub reserved: Micros,
    pub sms_count: i64,
}

/// A CDR still PENDING (an open reservation) with what the ledger says about it.
#[derive(Clone, Debug)]
pub struct PendingCdr {
    pub row: CdrRow,
    /// Σ reserved_delta of the reference: what the reservation still holds.
    pub reserved_left: Micros,
}

/// What the ledger and the CDR say about one message reference.
#[derive(Clone, Debug, Default)]
pub struct RefAudit {
    pub reference: String,
    pub account: Option<AccountId>,
    pub cdr_status: Option<ChargeStatus>,
    pub cdr_total: Micros,
    pub cdr_charged: Micros,
    pub reserved: Micros,
    pub charged: Micros,
    pub refunded: Micros,
    pub reserved_left: Micros,
    /// RESERVE entries: exactly one per message.
    pub reserve_entries: i64,
}

/// One invoice line: CDRs of an account in a period, grouped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceLine {
    pub operator: String,
    pub charge_status: ChargeStatus,
    pub price_per_part: Micros,
    pub messages: i64,
    pub parts: i64,
    pub amount: Micros,
}

/// One line of the margin report: CHARGED rows of one connector and network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarginLine {
    pub connector: String,
    pub operator: String,
    pub mcc: Option<u16>,
    pub mnc: Option<u16>,
    pub currency: String,
    pub messages: i64,
    pub parts: i64,
    /// What the clients were debited.
    pub revenue: Micros,
    /// What the carrying operators charge us.
    pub cost: Micros,
}

/// A reference closed recently, loaded at start so retried commits/refunds stay no-ops.
#[derive(Clone, Debug)]
pub struct ClosedRef {
    pub account: AccountId,
    pub reference: String,
    pub status: ChargeStatus,
    pub charged: Micros,
    pub total: Micros,
}

#[async_trait::async_trait]
pub trait LedgerStore: Send + Sync + 'static {
    fn backend(&self) -> &'static str;

    /// Does it keep the ledger and CDR at all? A store that does not (billing off) has
    /// the write-behind drop the operations instead of coalescing them into batches.
    fn keeps_records(&self) -> bool {
        true
    }

    /// Writes a batch atomically. Retrying a batch that was committed (e.g. the
    /// connection died after COMMIT) is a no-op.
    async fn write_batch(&self, batch: &Batch) -> Result<(), BillingError>;
    async fn max_ledger_id(&self) -> Result<i64, BillingError>;

    async fn insert_account(&self, account: &Account) -> Result<AccountId, BillingError>;
    async fn update_account(&self, account: &Account) -> Result<(), BillingError>;
    async fn load_accounts(&self) -> Result<Vec<Account>, BillingError>;

    /// Per account Σ of its ledger deltas; also for account ids the ledger names but the
    /// accounts table does not (reconcile reports those).
    async fn ledger_sums(&self) -> Result<Vec<AccountSums>, BillingError>;
    async fn balance_rows(&self) -> Result<Vec<AccountSums>, BillingError>;
    async fn pending_cdrs(&self) -> Result<Vec<PendingCdr>, BillingError>;
    async fn admin_refs(&self) -> Result<Vec<(AccountId, String)>, BillingError>;
    async fn recent_closed(
        &self,
        since: UnixMicros,
        limit: i64,
    ) -> Result<Vec<ClosedRef>, BillingError>;
    /// Parts charged per account with accepted_at in [from, to).
    async fn volumes(
        &self,
        from: UnixMicros,
        to: UnixMicros,
    ) -> Result<Vec<(AccountId, u64)>, BillingError>;

    async fn upsert_tariff(&self, tariff: &Tariff) -> Result<TariffId, BillingError>;
    async fn delete_tariff(&self, id: TariffId) -> Result<(), BillingError>;
    async fn load_tariffs(&self) -> Result<Vec<Tariff>, BillingError>;

    /// Calls `f` for every message reference known to the CDR or the ledger.
    async fn audit_references(
        &self,
        f: &mut (dyn FnMut(RefAudit) + Send),
    ) -> Result<(), BillingError>;
    /// The newest `limit` audit lines, newest first; only `action` if given.
    async fn audit_log(
        &self,
        action: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, BillingError>;
    async fn invoice_lines(
        &self,
        account: AccountId,
        from: UnixMicros,
        to: UnixMicros,
    ) -> Result<Vec<InvoiceLine>, BillingError>;

    /// CHARGED rows accepted in [from, to), summed per connector, network and currency.
    async fn margin_lines(
        &self,
        from: UnixMicros,
        to: UnixMicros,
    ) -> Result<Vec<MarginLine>, BillingError> {
        let _ = (from, to);
        Err(BillingError::InvalidRequest(format!(
            "the {} store keeps no CDR to report margins from",
            self.backend()
        )))
    }

    async fn close(&self);
}

/// Opens the store named by `url` and runs its migrations:
/// `sqlite://path` (created if missing), `sqlite::memory:`, or `postgres://…`.
pub async fn open_store(url: &str) -> Result<Arc<dyn LedgerStore>, BillingError> {
    if url == "memory:" {
        Ok(Arc::new(MemoryStore::new()))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else {
        Err(BillingError::InvalidUrl(url.to_string()))
    }
}

/// Reads stored enum text; a bad value in the store is a store error, not a panic.
pub(crate) fn parse_col<T>(
    v: &str,
    what: &str,
    f: impl Fn(&str) -> Option<T>,
) -> Result<T, BillingError> {
    f(v).ok_or_else(|| BillingError::Store(format!("bad {what} in store: {v:?}")))
}

pub(crate) fn currency_col(v: &str) -> Result<Currency, BillingError> {
    Currency::new(v).map_err(|_| BillingError::Store(format!("bad currency in store: {v:?}")))
}

/// Coalesces drained operations into batches: CDR rows by message id (the last wins, so
/// reserve+commit in one batch is a single insert), balances per account. Its maps are
/// kept between batches, like the batches' vectors (see `Batch::clear`): under load a
/// batch holds hundreds of thousands of operations, and growing fresh buffers for each
/// one cost more (page faults on new memory) than writing them.
#[derive(Default)]
pub(crate) struct BatchBuilder {
    cdr_index: HashMap<Arc<str>, usize>,
    /// RESERVE entries of this batch by reference: a CHARGE of the same message is folded
    /// into its row (see `EntryKind::Debit`).
    reserve_index: HashMap<Arc<str>, usize>,
    receipt_index: HashMap<Arc<str>, usize>,
    sums: HashMap<AccountId, AccountSums>,
}

impl BatchBuilder {
    /// Moves every op of `ops` (left empty, its capacity kept) into `batch` (cleared).
    pub(crate) fn build(&mut self, ops: &mut Vec<Op>, next_id: &mut i64, batch: &mut Batch) {
        batch.clear();
        for op in ops.drain(..) {
            match op {
                Op::Entry(e) => {
                    let s = self.sums.entry(e.account).or_insert(AccountSums {
                        account: e.account,
                        ..AccountSums::default()
                    });
                    s.balance.0 += e.balance_delta.0;
                    s.reserved.0 += e.reserved_delta.0;
                    s.sms_count += e.sms_delta;
                    if e.kind == EntryKind::Charge
                        && let Some(&i) = self.reserve_index.get(&e.reference)
                        && batch.entries[i].1.account == e.account
                    {
                        batch.entries[i].1.absorb_charge(&e);
                        continue;
                    }
                    if e.kind == EntryKind::Reserve {
                        self.reserve_index
                            .insert(e.reference.clone(), batch.entries.len());
                    }
                    batch.entries.push((*next_id, e));
                    *next_id += 1;
                }
                Op::Cdr(row) => match self.cdr_index.get(&row.message_id) {
                    Some(&i) => batch.cdrs[i] = row,
                    None => {
                        self.cdr_index
                            .insert(row.message_id.clone(), batch.cdrs.len());
                        batch.cdrs.push(row);
                    }
                },
                Op::Receipt(r) => match self.receipt_index.get(&r.message_id) {
                    Some(&i) => batch.receipts[i] = r,
                    None => {
                        self.receipt_index
                            .insert(r.message_id.clone(), batch.receipts.len());
                        batch.receipts.push(r);
                    }
                },
                Op::Audit(event) => batch.audit.push(event),
            }
        }
        // A receipt for a row this batch writes goes into the row: one insert instead of
        // an insert and an update (receipts often follow the submit within a batch).
        let cdrs = &mut batch.cdrs;
        let cdr_index = &self.cdr_index;
        batch
            .receipts
            .retain(|r| match cdr_index.get(&r.message_id) {
                Some(&i) => {
                    cdrs[i].final_status = Some(r.final_status.clone());
                    cdrs[i].receipt_at = Some(r.receipt_at);
                    false
                }
                None => true,
            });
        batch
            .balance_deltas
            .extend(self.sums.drain().map(|(_, s)| s));
        batch.balance_deltas.sort_by_key(|s| s.account);
        self.cdr_index.clear();
        self.receipt_index.clear();
        self.reserve_index.clear();
    }
}
