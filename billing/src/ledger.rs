//! What the write-behind buffer carries to the store: ledger entries (every movement of
//! money, with its actor) and CDR rows (one per message).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::account::AccountId;
use crate::money::{Currency, Micros};

/// Wall-clock time as unix microseconds: the one timestamp type of the crate.
pub type UnixMicros = i64;

pub fn now_micros() -> UnixMicros {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    TopUp,
    Reserve,
    Charge,
    Refund,
    Adjust,
    /// A reservation and its charge (or part of it) in one row: the write-behind merges a
    /// CHARGE into the RESERVE of the same message when both are in one batch.
    Debit,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::TopUp => "TOPUP",
            EntryKind::Reserve => "RESERVE",
            EntryKind::Charge => "CHARGE",
            EntryKind::Refund => "REFUND",
            EntryKind::Adjust => "ADJUST",
            EntryKind::Debit => "DEBIT",
        }
    }

    pub fn parse(s: &str) -> Option<EntryKind> {
        Some(match s {
            "TOPUP" => EntryKind::TopUp,
            "RESERVE" => EntryKind::Reserve,
            "CHARGE" => EntryKind::Charge,
            "REFUND" => EntryKind::Refund,
            "ADJUST" => EntryKind::Adjust,
            "DEBIT" => EntryKind::Debit,
            _ => return None,
        })
    }
}

/// One ledger row. `amount` is what the row is about (always ≥ 0 except ADJUST);
/// the deltas say what it did, so balance = Σ balance_delta and reserved = Σ reserved_delta:
///
/// | kind    | balance_delta | reserved_delta |
/// |---------|---------------|----------------|
/// | TOPUP   | +amount       | 0              |
/// | RESERVE | 0             | +amount        |
/// | CHARGE  | −amount       | −amount        |
/// | REFUND  | 0             | −amount        |
/// | ADJUST  | amount (±)    | 0              |
/// | DEBIT   | −charged      | amount − charged |
///
/// A DEBIT row is a RESERVE of `amount` with the charges of the same batch folded in
/// (`charged` = −balance_delta; all of `amount` once committed): one row per message
/// instead of two, on the path every message takes.
#[derive(Clone, Debug)]
pub struct LedgerEntry {
    pub account: AccountId,
    pub kind: EntryKind,
    pub amount: Micros,
    pub balance_delta: Micros,
    pub reserved_delta: Micros,
    /// sms_count quota movement (TOPUP of a quota, or −parts at RESERVE).
    pub sms_delta: i64,
    pub reference: Arc<str>,
    pub actor: Cow<'static, str>,
    pub reason: Option<Arc<str>>,
    pub at: UnixMicros,
}

impl LedgerEntry {
    pub(crate) fn new(
        account: AccountId,
        kind: EntryKind,
        amount: Micros,
        reference: Arc<str>,
        actor: Cow<'static, str>,
        at: UnixMicros,
    ) -> LedgerEntry {
        let (balance_delta, reserved_delta) = match kind {
            EntryKind::TopUp | EntryKind::Adjust => (amount, Micros::ZERO),
            EntryKind::Reserve => (Micros::ZERO, amount),
            EntryKind::Charge => (Micros(-amount.0), Micros(-amount.0)),
            EntryKind::Refund => (Micros::ZERO, Micros(-amount.0)),
            EntryKind::Debit => (Micros(-amount.0), Micros::ZERO),
        };
        LedgerEntry {
            account,
            kind,
            amount,
            balance_delta,
            reserved_delta,
            sms_delta: 0,
            reference,
            actor,
            reason: None,
            at,
        }
    }

    /// Folds a CHARGE of the same message into this RESERVE (or DEBIT): the row becomes a
    /// DEBIT whose deltas are the sum of both, so balances and reconcile see the same
    /// money as from two rows.
    pub(crate) fn absorb_charge(&mut self, charge: &LedgerEntry) {
        debug_assert!(matches!(self.kind, EntryKind::Reserve | EntryKind::Debit));
        debug_assert_eq!(charge.kind, EntryKind::Charge);
        self.kind = EntryKind::Debit;
        self.balance_delta.0 += charge.balance_delta.0;
        self.reserved_delta.0 += charge.reserved_delta.0;
        self.sms_delta += charge.sms_delta;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChargeStatus {
    Pending,
    Charged,
    Refunded,
}

impl ChargeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChargeStatus::Pending => "PENDING",
            ChargeStatus::Charged => "CHARGED",
            ChargeStatus::Refunded => "REFUNDED",
        }
    }

    pub fn parse(s: &str) -> Option<ChargeStatus> {
        Some(match s {
            "PENDING" => ChargeStatus::Pending,
            "CHARGED" => ChargeStatus::Charged,
            "REFUNDED" => ChargeStatus::Refunded,
            _ => return None,
        })
    }
}

/// What the router knows about a message when it reserves. The text is never stored:
/// only its length and a hash of it. Its strings are shared (`Arc<str>`): the store
/// binds them as they are, without a copy per row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageMeta {
    pub user: Arc<str>,
    pub connector: Arc<str>,
    /// Operator (e.g. "MCC-MNC" or a name) if known at routing time.
    pub operator: Arc<str>,
    pub destination: Arc<str>,
    pub sender: Arc<str>,
    pub parts: u32,
    pub text_length: u32,
    pub text_hash: Arc<str>,
    /// The destination's network, when the router resolved it.
    pub mcc: Option<u16>,
    pub mnc: Option<u16>,
    /// What the carrying operator charges us per SMS (the connector × network cost).
    pub carrier_cost: Micros,
}

impl MessageMeta {
    /// What the carrier charges us for this row: its cost per SMS × parts.
    pub fn cost(&self) -> Micros {
        Micros(self.carrier_cost.0.saturating_mul(i64::from(self.parts)))
    }
}

/// A CDR row in full. The money and identity columns are written once; the lifecycle
/// columns (submitted_at, operator id, receipt, final status, charged, charge status) are
/// filled in as the message progresses. Rows are never deleted.
#[derive(Clone, Debug)]
pub struct CdrRow {
    pub message_id: Arc<str>,
    pub account: AccountId,
    pub meta: Arc<MessageMeta>,
    pub currency: Currency,
    pub cost_per_part: Micros,
    pub total: Micros,
    /// What was actually debited so far (early share, or the total once charged).
    pub charged: Micros,
    pub charge_status: ChargeStatus,
    pub accepted_at: UnixMicros,
    pub submitted_at: Option<UnixMicros>,
    pub operator_msg_id: Option<Arc<str>>,
    pub final_status: Option<Arc<str>>,
    /// Set when the receipt arrived before the row was written (merged by the writer).
    pub receipt_at: Option<UnixMicros>,
}

/// A delivery receipt for a message whose reservation may be long closed.
#[derive(Clone, Debug)]
pub struct ReceiptUpdate {
    pub message_id: Arc<str>,
    pub final_status: Arc<str>,
    pub receipt_at: UnixMicros,
}

/// One unit of write-behind work.
#[derive(Clone, Debug)]
pub enum Op {
    Entry(LedgerEntry),
    Cdr(CdrRow),
    Receipt(ReceiptUpdate),
    Audit(crate::audit::AuditEvent),
}
