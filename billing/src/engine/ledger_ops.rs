//! Money in and out by people: top-ups and adjustments, written through the store
//! before they return, each with its audit line.

use std::borrow::Cow;

use crate::account::AccountId;
use crate::audit::AuditEvent;
use crate::error::BillingError;
use crate::ledger::{EntryKind, LedgerEntry, Op, now_micros};
use crate::money::Micros;

use super::*;

impl BillingEngine {
    /// Credits an account (and/or its sms_count quota). Returns once the entry is
    /// committed to the store. Idempotent by (account, reference).
    pub async fn top_up(&self, req: LedgerRequest) -> Result<LedgerOutcome, BillingError> {
        if req.amount.0 < 0 || req.sms_count < 0 || (req.amount.0 == 0 && req.sms_count == 0) {
            return Err(BillingError::InvalidAmount(format!(
                "top-up must be positive, got {} and {} sms",
                req.amount, req.sms_count
            )));
        }
        self.admin_entry(EntryKind::TopUp, req).await
    }

    /// A signed manual correction with a mandatory reason. Returns once committed.
    pub async fn adjust(&self, req: LedgerRequest) -> Result<LedgerOutcome, BillingError> {
        if req.amount.0 == 0 || req.sms_count != 0 {
            return Err(BillingError::InvalidAmount(
                "adjustment must be a non-zero amount (sms_count is changed by top-up)".into(),
            ));
        }
        if req.reason.trim().is_empty() {
            return Err(BillingError::InvalidRequest(
                "an adjustment needs a reason".into(),
            ));
        }
        self.admin_entry(EntryKind::Adjust, req).await
    }

    async fn admin_entry(
        &self,
        kind: EntryKind,
        req: LedgerRequest,
    ) -> Result<LedgerOutcome, BillingError> {
        check_reference(&req.reference)?;
        if req.actor.trim().is_empty() {
            return Err(BillingError::InvalidRequest("an actor is required".into()));
        }
        let shared = &self.inner.shared;
        if !self.is_store_healthy() || !shared.has_room(2) {
            return Err(BillingError::StoreUnavailable(
                "top-ups and adjustments wait for the store; it is not reachable now".into(),
            ));
        }
        let balance = {
            let mut guard = shared.shards.lock(req.account);
            let shard = &mut *guard;
            let s = shard
                .accounts
                .get_mut(&req.account)
                .ok_or(BillingError::UnknownAccount(req.account))?;
            if s.account.currency != req.currency {
                return Err(BillingError::CurrencyMismatch {
                    account: req.account,
                    account_currency: s.account.currency,
                    given: req.currency,
                });
            }
            if req.sms_count != 0 && !s.account.quota.sms_count_limited {
                return Err(BillingError::InvalidRequest(format!(
                    "account {} has no sms_count quota",
                    req.account
                )));
            }
            if s.admin_refs.contains(req.reference.as_str()) {
                return Ok(LedgerOutcome {
                    balance: Micros(s.balance),
                    duplicate: true,
                });
            }
            let new_balance = s.balance.checked_add(req.amount.0).ok_or_else(|| {
                BillingError::InvalidAmount(format!("{} overflows the balance", req.amount))
            })?;
            s.balance = new_balance;
            s.sms_count += req.sms_count;
            s.admin_refs.insert(req.reference.as_str().into());
            let mut e = LedgerEntry::new(
                req.account,
                kind,
                req.amount,
                req.reference.into(),
                Cow::Owned(req.actor),
                now_micros(),
            );
            e.sms_delta = req.sms_count;
            e.reason = (!req.reason.is_empty()).then(|| req.reason.as_str().into());
            let audit = AuditEvent::new(
                e.actor.as_ref(),
                req.origin,
                match kind {
                    EntryKind::TopUp => "balance.top_up",
                    _ => "balance.adjust",
                },
                format!("account:{}", req.account),
                format!(
                    "amount={} {} sms_count={:+} reference={} reason={:?} balance={}",
                    req.amount,
                    req.currency.as_str(),
                    req.sms_count,
                    e.reference,
                    req.reason,
                    Micros(new_balance),
                ),
            );
            shard.pending.push(Op::Entry(e));
            // Same shard, same drain, same batch: the line and the entry commit together.
            shard.pending.push(Op::Audit(audit));
            // Counted before the lock goes: the writer may drain and subtract right after.
            shared.added(2);
            new_balance
        };
        self.flush().await?;
        Ok(LedgerOutcome {
            balance: Micros(balance),
            duplicate: false,
        })
    }

    /// Appends a line to the audit log (a configuration change, say). Returns once it is
    /// committed to the store.
    pub async fn record_audit(&self, event: AuditEvent) -> Result<(), BillingError> {
        let shared = &self.inner.shared;
        if !self.is_store_healthy() || !shared.has_room(1) {
            return Err(BillingError::StoreUnavailable(
                "the audit log waits for the store; it is not reachable now".into(),
            ));
        }
        {
            let mut shard = shared.shards.lock(AccountId(0));
            shard.pending.push(Op::Audit(event));
            shared.added(1);
        }
        self.flush().await
    }

    /// The newest `limit` audit lines, newest first; only those of `action` if given.
    pub async fn audit_log(
        &self,
        action: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, BillingError> {
        self.inner.store.audit_log(action, limit).await
    }
}
