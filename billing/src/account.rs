//! Accounts: who pays. A reseller hierarchy (parent_id), a status and one currency each.

use std::fmt;
use std::str::FromStr;

use crate::error::BillingError;
use crate::money::{Currency, Micros};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(pub i64);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountKind {
    Admin,
    Reseller,
    Client,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Admin => "admin",
            AccountKind::Reseller => "reseller",
            AccountKind::Client => "client",
        }
    }
}

impl FromStr for AccountKind {
    type Err = BillingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(AccountKind::Admin),
            "reseller" => Ok(AccountKind::Reseller),
            "client" => Ok(AccountKind::Client),
            _ => Err(BillingError::InvalidRequest(format!("account type {s:?}"))),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    Suspended,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Suspended => "suspended",
        }
    }
}

impl FromStr for AccountStatus {
    type Err = BillingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(AccountStatus::Active),
            "suspended" => Ok(AccountStatus::Suspended),
            _ => Err(BillingError::InvalidRequest(format!(
                "account status {s:?}"
            ))),
        }
    }
}

/// Jasmin's quota options (`mt_messaging_cred quota early_percent|sms_count`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaOptions {
    /// 1–100: share of the price charged at acceptance (not refundable, as in Jasmin);
    /// the rest is charged on submit_sm_resp OK. `None`: everything on submit_sm_resp OK.
    pub early_percent: Option<u8>,
    /// When true the account also has an sms_count quota, decremented by the number of
    /// parts at acceptance (not refundable, as in Jasmin).
    pub sms_count_limited: bool,
}

/// An account as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub parent_id: Option<AccountId>,
    pub kind: AccountKind,
    pub name: String,
    pub status: AccountStatus,
    pub currency: Currency,
    pub quota: QuotaOptions,
    pub credit_limit: Micros,
}

impl Account {
    /// Checks the invariants the store's CHECK constraints also enforce.
    pub fn validate(&self) -> Result<(), BillingError> {
        if let Some(p) = self.quota.early_percent
            && !(1..=100).contains(&p)
        {
            return Err(BillingError::InvalidRequest(format!(
                "early_percent must be 1..=100, got {p}"
            )));
        }
        if self.credit_limit.0 < 0 {
            return Err(BillingError::InvalidAmount(format!(
                "credit limit must not be negative, got {}",
                self.credit_limit
            )));
        }
        if self.parent_id == Some(self.id) {
            return Err(BillingError::InvalidRequest(
                "an account cannot be its own parent".into(),
            ));
        }
        Ok(())
    }
}

/// What the balance of an account looks like right now (from memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalanceView {
    pub account: AccountId,
    pub currency: Currency,
    pub balance: Micros,
    pub credit_limit: Micros,
    pub reserved: Micros,
    /// balance − reserved + credit_limit: what a reservation may still take.
    pub available: Micros,
    /// Remaining sms_count quota, `None` when unlimited.
    pub sms_count: Option<i64>,
}
