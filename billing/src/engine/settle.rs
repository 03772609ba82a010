//! The hot path: pre-charging a message, and settling each reservation when the
//! operator answers. Decisions are made in memory under the account's shard lock; the
//! ledger and CDR rows are queued for the write-behind.

use std::borrow::Cow;
use std::collections::hash_map::Entry;

use std::sync::Arc;

use crate::account::{AccountId, AccountStatus};
use crate::error::BillingError;
use crate::ledger::{
    CdrRow, ChargeStatus, EntryKind, LedgerEntry, Op, ReceiptUpdate, UnixMicros, now_micros,
};
use crate::money::Micros;
use crate::recovery;

use super::*;

impl BillingEngine {
    /// Pre-charges a message. Succeeds only if balance − reserved + credit_limit ≥ amount
    /// (and, with an sms_count quota, parts ≤ sms_count). Retrying with the same
    /// reference and amount is a no-op. Never waits on the store.
    pub fn reserve(&self, req: ReserveRequest) -> Result<Reserved, BillingError> {
        // Zero is a free route (Jasmin's default rate 0.00): still counted against
        // sms_count and written to the CDR with cost 0.
        if req.amount.0 < 0 {
            return Err(BillingError::InvalidAmount(format!(
                "reservation amount must not be negative, got {}",
                req.amount
            )));
        }
        if req.meta.parts == 0 {
            return Err(BillingError::InvalidRequest(
                "a message has at least one part".into(),
            ));
        }
        check_reference(&req.reference)?;
        let shared = &self.inner.shared;
        let mut guard = shared.shards.lock(req.account);
        let shard = &mut *guard;
        // One hash of the reference for both the duplicate check and the insert.
        let vacant = match shard.open.entry(Arc::from(req.reference.as_str())) {
            Entry::Occupied(o) => {
                let open = o.get();
                return if open.cdr.account == req.account && open.amount == req.amount {
                    Ok(Reserved {
                        amount: open.amount,
                        charged_now: open.charged,
                        duplicate: true,
                    })
                } else {
                    Err(BillingError::DuplicateReference(req.reference))
                };
            }
            Entry::Vacant(v) => v,
        };
        if shard.settled.contains_key(vacant.key()) {
            return Err(BillingError::DuplicateReference(req.reference));
        }
        let s = shard
            .accounts
            .get_mut(&req.account)
            .ok_or(BillingError::UnknownAccount(req.account))?;
        if s.account.status == AccountStatus::Suspended {
            return Err(BillingError::Suspended(req.account));
        }
        if s.account.currency != req.currency {
            return Err(BillingError::CurrencyMismatch {
                account: req.account,
                account_currency: s.account.currency,
                given: req.currency,
            });
        }
        let available = s.balance - s.reserved + s.account.credit_limit.0;
        if available < req.amount.0 {
            return Err(BillingError::InsufficientFunds {
                account: req.account,
                needed: req.amount,
                available: Micros(available),
            });
        }
        let parts = i64::from(req.meta.parts);
        if s.account.quota.sms_count_limited && s.sms_count < parts {
            return Err(BillingError::QuotaExhausted {
                account: req.account,
                needed: parts,
                left: s.sms_count,
            });
        }
        if !shared.has_room(3) {
            return Err(BillingError::BufferFull {
                buffered: shared
                    .counters
                    .buffered
                    .load(std::sync::atomic::Ordering::Relaxed),
            });
        }

        let at = now_micros();
        let reference = vacant.key().clone();
        let early = s
            .account
            .quota
            .early_percent
            .map_or(Micros::ZERO, |p| req.amount.percent_floor(p));
        s.reserved += req.amount.0;
        let mut entry = LedgerEntry::new(
            req.account,
            EntryKind::Reserve,
            req.amount,
            reference.clone(),
            Cow::Borrowed(ACTOR_ROUTER),
            at,
        );
        if s.account.quota.sms_count_limited {
            s.sms_count -= parts;
            entry.sms_delta = -parts;
        }
        shard.pending.push(Op::Entry(entry));
        let mut n = 2;
        if early.0 > 0 {
            s.balance -= early.0;
            s.reserved -= early.0;
            shard.pending.push(Op::Entry(LedgerEntry::new(
                req.account,
                EntryKind::Charge,
                early,
                reference.clone(),
                Cow::Borrowed(ACTOR_ROUTER),
                at,
            )));
            n += 1;
        }
        let cdr = CdrRow {
            message_id: reference.clone(),
            account: req.account,
            cost_per_part: Micros(req.amount.0 / parts),
            meta: Arc::new(req.meta),
            currency: req.currency,
            total: req.amount,
            charged: early,
            charge_status: ChargeStatus::Pending,
            accepted_at: at,
            submitted_at: None,
            operator_msg_id: None,
            final_status: None,
            receipt_at: None,
        };
        shard.pending.push(Op::Cdr(cdr.clone()));
        vacant.insert(OpenRes {
            amount: req.amount,
            charged: early,
            cdr,
        });
        // Counted before the lock goes: the writer may drain and subtract right after.
        shared.added(n);
        drop(guard);
        Ok(Reserved {
            amount: req.amount,
            charged_now: early,
            duplicate: false,
        })
    }

    /// Turns a reservation into a charge (submit_sm_resp OK). A retried commit is a no-op;
    /// committing a refunded reservation is refused.
    pub fn commit(
        &self,
        account: AccountId,
        reference: &str,
        operator_msg_id: Option<&str>,
    ) -> Result<Settled, BillingError> {
        self.settle(
            account,
            reference,
            Close::Commit(operator_msg_id),
            Cow::Borrowed(ACTOR_ROUTER),
        )
    }

    /// Commits a reservation whose part was carried by `carrier` (least-cost routing: after
    /// a failover it is not the connector named at reservation), recording the carrier and
    /// its cost on the CDR under the same lock.
    pub fn commit_via(
        &self,
        account: AccountId,
        reference: &str,
        operator_msg_id: &str,
        carrier: Carrier<'_>,
    ) -> Result<Settled, BillingError> {
        self.settle(
            account,
            reference,
            Close::CommitVia(operator_msg_id, carrier),
            Cow::Borrowed(ACTOR_ROUTER),
        )
    }

    /// Releases a reservation (final failure, rejection, expiry). The early share of an
    /// early_percent account stays charged, as in Jasmin. A retried refund is a no-op;
    /// refunding a committed reservation is refused.
    pub fn refund(
        &self,
        account: AccountId,
        reference: &str,
        final_status: &str,
    ) -> Result<Settled, BillingError> {
        self.settle(
            account,
            reference,
            Close::Refund(final_status),
            Cow::Borrowed(ACTOR_ROUTER),
        )
    }

    pub(crate) fn settle(
        &self,
        account: AccountId,
        reference: &str,
        close: Close<'_>,
        actor: Cow<'static, str>,
    ) -> Result<Settled, BillingError> {
        let shared = &self.inner.shared;
        let mut guard = shared.shards.lock(account);
        let shard = &mut *guard;
        let Some((key, open)) = shard.open.remove_entry(reference) else {
            return match shard.settled.get(reference) {
                Some(s) if s.account == account => match (s.status, &close) {
                    (ChargeStatus::Charged, Close::Commit(_) | Close::CommitVia(..))
                    | (ChargeStatus::Refunded, Close::Refund(_)) => Ok(Settled {
                        settlement: Settlement::Duplicate,
                        amount: Micros::ZERO,
                    }),
                    (status, _) => Err(BillingError::AlreadySettled {
                        reference: reference.to_string(),
                        state: if status == ChargeStatus::Charged {
                            "committed"
                        } else {
                            "refunded"
                        },
                        attempted: close.verb(),
                    }),
                },
                _ => Err(BillingError::UnknownReservation {
                    account,
                    reference: reference.to_string(),
                }),
            };
        };
        if open.cdr.account != account {
            // Someone else's reference: put it back untouched.
            shard.open.insert(key, open);
            return Err(BillingError::UnknownReservation {
                account,
                reference: reference.to_string(),
            });
        }
        let rest = Micros(open.amount.0 - open.charged.0);
        let at = now_micros();
        let mut cdr = open.cdr;
        let mut n = 1;
        let s = shard.accounts.get_mut(&account);
        if let Close::CommitVia(_, carrier) = close {
            carrier.record_on(&mut cdr);
        }
        let (kind, status) = match close {
            Close::Commit(_) | Close::CommitVia(..) => {
                if let Some(s) = s {
                    s.balance -= rest.0;
                    s.reserved -= rest.0;
                    if at >= s.volume_until {
                        s.volume = 0;
                        s.volume_until = recovery::next_month_start(at);
                    }
                    s.volume += u64::from(cdr.meta.parts);
                }
                cdr.charged = open.amount;
                cdr.submitted_at = Some(at);
                cdr.operator_msg_id = close.operator_msg_id().map(Into::into);
                (EntryKind::Charge, ChargeStatus::Charged)
            }
            Close::Refund(final_status) => {
                if let Some(s) = s {
                    s.reserved -= rest.0;
                }
                cdr.final_status = Some(final_status.into());
                (EntryKind::Refund, ChargeStatus::Refunded)
            }
        };
        cdr.charge_status = status;
        if rest.0 != 0 {
            shard.pending.push(Op::Entry(LedgerEntry::new(
                account,
                kind,
                rest,
                key.clone(),
                actor,
                at,
            )));
            n += 1;
        }
        shard.pending.push(Op::Cdr(cdr));
        shard.remember_settled(key, SettledRef { account, status });
        // Counted before the lock goes: the writer may drain and subtract right after.
        shared.added(n);
        drop(guard);
        Ok(Settled {
            settlement: Settlement::Applied,
            amount: rest,
        })
    }

    /// Records a delivery receipt in the CDR (no money moves).
    pub fn record_receipt(
        &self,
        account: AccountId,
        reference: &str,
        final_status: &str,
        receipt_at: Option<UnixMicros>,
    ) -> Result<(), BillingError> {
        check_reference(reference)?;
        let shared = &self.inner.shared;
        let mut shard = shared.shards.lock(account);
        if !shard.accounts.contains_key(&account) {
            return Err(BillingError::UnknownAccount(account));
        }
        shard.pending.push(Op::Receipt(ReceiptUpdate {
            message_id: reference.into(),
            final_status: final_status.into(),
            receipt_at: receipt_at.unwrap_or_else(now_micros),
        }));
        shared.added(1);
        drop(shard);
        Ok(())
    }
}

/// How a reservation is closed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Close<'a> {
    Commit(Option<&'a str>),
    CommitVia(&'a str, Carrier<'a>),
    Refund(&'a str),
}

impl Close<'_> {
    pub(super) fn verb(&self) -> &'static str {
        match self {
            Close::Commit(_) | Close::CommitVia(..) => "commit",
            Close::Refund(_) => "refund",
        }
    }

    fn operator_msg_id(&self) -> Option<&str> {
        match self {
            Close::Commit(id) => *id,
            Close::CommitVia(id, _) => Some(id),
            Close::Refund(_) => None,
        }
    }
}

pub(super) fn check_reference(r: &str) -> Result<(), BillingError> {
    if r.is_empty() || r.len() > MAX_REFERENCE_LEN {
        return Err(BillingError::InvalidRequest(format!(
            "reference must be 1..={MAX_REFERENCE_LEN} bytes"
        )));
    }
    Ok(())
}
