//! The typed refusals of billing. Each maps one-to-one to an outside answer: Jasmin's
//! HTTP 403 `Cannot charge submit_sm…` / SMPP ESME_RSYSERR for refused charges, a gRPC
//! status at the service boundary.

use crate::account::AccountId;
use crate::money::{Currency, Micros};

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("unknown account {0}")]
    UnknownAccount(AccountId),
    #[error("account {0} is suspended")]
    Suspended(AccountId),
    #[error("currency mismatch on account {account}: account is {account_currency}, got {given}")]
    CurrencyMismatch {
        account: AccountId,
        account_currency: Currency,
        given: Currency,
    },
    #[error("invalid currency code {0:?} (three upper-case letters expected)")]
    InvalidCurrency(String),
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error(
        "insufficient funds on account {account}: needs {needed}, available {available} \
         (balance - reserved + credit limit)"
    )]
    InsufficientFunds {
        account: AccountId,
        needed: Micros,
        available: Micros,
    },
    #[error("sms_count quota exhausted on account {account}: needs {needed}, left {left}")]
    QuotaExhausted {
        account: AccountId,
        needed: i64,
        left: i64,
    },
    #[error("unknown reservation {reference} on account {account}")]
    UnknownReservation {
        account: AccountId,
        reference: String,
    },
    #[error("reservation {reference} was already {state}; cannot {attempted} it")]
    AlreadySettled {
        reference: String,
        state: &'static str,
        attempted: &'static str,
    },
    #[error("reference {0} is already used by a different operation")]
    DuplicateReference(String),
    #[error(
        "billing write-behind buffer is full ({buffered} operations): the store is away or slower \
         than the traffic; refusing new reservations rather than losing records"
    )]
    BufferFull { buffered: usize },
    #[error("billing store unavailable: {0}")]
    StoreUnavailable(String),
    #[error("billing store error: {0}")]
    Store(String),
    #[error("invalid store URL {0:?}: expected sqlite://path, sqlite::memory: or postgres://…")]
    InvalidUrl(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("billing is shut down")]
    Closed,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl BillingError {
    /// True for refusals caused by the store being away (the client may retry later).
    pub fn is_store_fault(&self) -> bool {
        matches!(
            self,
            BillingError::BufferFull { .. } | BillingError::StoreUnavailable(_)
        )
    }
}

impl From<sqlx::Error> for BillingError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => BillingError::StoreUnavailable(e.to_string()),
            other => BillingError::Store(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for BillingError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        BillingError::Migration(e.to_string())
    }
}
