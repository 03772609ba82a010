//! `smsgw billing reconcile`: recomputes every balance from the ledger and every charged
//! total from the CDR, and lists what disagrees. Read-only; it does not run recovery, so
//! reservations a crash left open show as PENDING (consistent), not as discrepancies.

use std::fmt;

use crate::account::AccountId;
use crate::error::BillingError;
use crate::ledger::ChargeStatus;
use crate::money::Micros;
use crate::store::{LedgerStore, RefAudit};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discrepancy {
    /// The balances snapshot disagrees with the sum of the account's ledger entries.
    Balance {
        account: AccountId,
        field: &'static str,
        snapshot: i64,
        ledger: i64,
    },
    /// Ledger entries that name an account the accounts table does not have.
    UnknownAccount { account: AccountId },
    /// A message whose ledger entries and CDR row do not tell the same story.
    Message {
        reference: String,
        account: Option<AccountId>,
        problem: String,
    },
}

impl fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Discrepancy::Balance {
                account,
                field,
                snapshot,
                ledger,
            } => {
                let (s, l) = if *field == "sms_count" {
                    (snapshot.to_string(), ledger.to_string())
                } else {
                    (Micros(*snapshot).to_string(), Micros(*ledger).to_string())
                };
                write!(
                    f,
                    "account {account}: {field} is {s} but its ledger sums to {l}"
                )
            }
            Discrepancy::UnknownAccount { account } => {
                write!(f, "account {account}: ledger entries but no such account")
            }
            Discrepancy::Message {
                reference,
                account,
                problem,
            } => match account {
                Some(a) => write!(f, "message {reference} (account {a}): {problem}"),
                None => write!(f, "message {reference}: {problem}"),
            },
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub accounts_checked: usize,
    pub messages_checked: usize,
    pub open_reservations: usize,
    pub discrepancies: Vec<Discrepancy>,
}

impl ReconcileReport {
    pub fn is_clean(&self) -> bool {
        self.discrepancies.is_empty()
    }
}

impl fmt::Display for ReconcileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "reconcile: {} accounts, {} messages ({} open reservations) checked",
            self.accounts_checked, self.messages_checked, self.open_reservations
        )?;
        if self.is_clean() {
            return writeln!(f, "no discrepancy");
        }
        writeln!(f, "{} discrepancies:", self.discrepancies.len())?;
        for d in &self.discrepancies {
            writeln!(f, "  {d}")?;
        }
        Ok(())
    }
}

pub async fn reconcile(store: &dyn LedgerStore) -> Result<ReconcileReport, BillingError> {
    let mut report = ReconcileReport::default();
    let ledger = store.ledger_sums().await?;
    let snapshot = store.balance_rows().await?;
    for l in &ledger {
        report.accounts_checked += 1;
        let Some(s) = snapshot.iter().find(|s| s.account == l.account).copied() else {
            report
                .discrepancies
                .push(Discrepancy::UnknownAccount { account: l.account });
            continue;
        };
        for (field, snap, led) in [
            ("balance", s.balance.0, l.balance.0),
            ("reserved", s.reserved.0, l.reserved.0),
            ("sms_count", s.sms_count, l.sms_count),
        ] {
            if snap != led {
                report.discrepancies.push(Discrepancy::Balance {
                    account: l.account,
                    field,
                    snapshot: snap,
                    ledger: led,
                });
            }
        }
    }
    store
        .audit_references(&mut |a: RefAudit| {
            report.messages_checked += 1;
            if a.cdr_status == Some(ChargeStatus::Pending) {
                report.open_reservations += 1;
            }
            for problem in message_problems(&a) {
                report.discrepancies.push(Discrepancy::Message {
                    reference: a.reference.clone(),
                    account: a.account,
                    problem,
                });
            }
        })
        .await?;
    Ok(report)
}

/// Every rule a message must satisfy, given its CDR row and its ledger entries.
fn message_problems(a: &RefAudit) -> Vec<String> {
    let mut out = Vec::new();
    let Some(status) = a.cdr_status else {
        out.push(format!(
            "ledger entries (reserved {}, charged {}, refunded {}) without a CDR row",
            a.reserved, a.charged, a.refunded
        ));
        return out;
    };
    if a.reserve_entries != 1 {
        out.push(format!("{} RESERVE entries, expected 1", a.reserve_entries));
    }
    if a.reserved != a.cdr_total {
        out.push(format!(
            "reserved {} but CDR total is {}",
            a.reserved, a.cdr_total
        ));
    }
    if a.charged != a.cdr_charged {
        out.push(format!(
            "ledger charged {} but CDR says {}",
            a.charged, a.cdr_charged
        ));
    }
    let left = a.reserved.0 - a.charged.0 - a.refunded.0;
    if left != a.reserved_left.0 {
        out.push(format!(
            "reservation left {} does not match reserve − charge − refund = {}",
            a.reserved_left,
            Micros(left)
        ));
    }
    match status {
        ChargeStatus::Charged if a.charged != a.cdr_total || a.refunded.0 != 0 => {
            out.push(format!(
                "CHARGED but charged {} + refunded {} for a total of {}",
                a.charged, a.refunded, a.cdr_total
            ))
        }
        ChargeStatus::Refunded if a.charged.0 + a.refunded.0 != a.cdr_total.0 => out.push(format!(
            "REFUNDED but charged {} + refunded {} ≠ total {}",
            a.charged, a.refunded, a.cdr_total
        )),
        ChargeStatus::Pending if a.reserved_left.0 <= 0 && a.cdr_total.0 != a.charged.0 => {
            out.push("PENDING but nothing is reserved".into())
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(status: ChargeStatus, total: i64, charged: i64, refunded: i64) -> RefAudit {
        RefAudit {
            reference: "m".into(),
            account: Some(AccountId(1)),
            cdr_status: Some(status),
            cdr_total: Micros(total),
            cdr_charged: Micros(charged),
            reserved: Micros(total),
            charged: Micros(charged),
            refunded: Micros(refunded),
            reserved_left: Micros(total - charged - refunded),
            reserve_entries: 1,
        }
    }

    #[test]
    fn consistent_messages_pass() {
        assert!(message_problems(&audit(ChargeStatus::Charged, 10, 10, 0)).is_empty());
        assert!(message_problems(&audit(ChargeStatus::Refunded, 10, 0, 10)).is_empty());
        assert!(message_problems(&audit(ChargeStatus::Refunded, 10, 3, 7)).is_empty());
        assert!(message_problems(&audit(ChargeStatus::Pending, 10, 3, 0)).is_empty());
    }

    #[test]
    fn each_broken_rule_is_reported() {
        assert!(!message_problems(&audit(ChargeStatus::Charged, 10, 3, 0)).is_empty());
        assert!(!message_problems(&audit(ChargeStatus::Refunded, 10, 0, 3)).is_empty());
        let mut a = audit(ChargeStatus::Charged, 10, 10, 0);
        a.cdr_charged = Micros(9);
        assert!(!message_problems(&a).is_empty());
        let mut a = audit(ChargeStatus::Charged, 10, 10, 0);
        a.reserve_entries = 2;
        assert!(!message_problems(&a).is_empty());
        let mut a = audit(ChargeStatus::Charged, 10, 10, 0);
        a.cdr_status = None;
        assert!(!message_problems(&a).is_empty());
        let mut a = audit(ChargeStatus::Pending, 10, 0, 0);
        a.reserved_left = Micros(0);
        assert!(!message_problems(&a).is_empty());
    }
}
