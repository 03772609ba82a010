//! Billing for smsgw: the single source of truth for balances, charges and call detail
//! records. It never knows SMPP.
//!
//! - [`BillingEngine`] is the in-process API the router calls: [`BillingEngine::rate`]
//!   then [`BillingEngine::reserve`] before a message is accepted,
//!   [`BillingEngine::commit`] on submit_sm_resp OK, [`BillingEngine::refund`] on final
//!   failure, rejection or expiry. Decisions are made in memory, sharded per account;
//!   the ledger and CDR are written behind in batches ([`writer`]).
//! - [`grpc::BillingService`] serves the same operations as `smsgw.billing.v1.Billing`
//!   (from the `proto` crate): the boundary for running billing as a separate service.
//! - [`cli`] holds what `smsgw migrate` / `smsgw billing reconcile|invoice` call.
//!
//! Money is `i64` micro-units ([`Micros`]) everywhere in Rust.

pub mod account;
pub mod audit;
pub mod charging;
pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod grpc;
pub mod invoice;
pub mod ledger;
pub mod margin;
pub mod money;
pub mod reconcile;
pub mod recovery;
pub mod store;
pub mod tariff;
pub mod writer;

pub use account::{Account, AccountId, AccountKind, AccountStatus, BalanceView, QuotaOptions};
pub use audit::AuditEvent;
pub use charging::{EngineCharging, UserAccount};
pub use config::{BillingConfig, RecoveryPolicy};
pub use engine::{
    BillingEngine, LedgerOutcome, LedgerRequest, NewAccount, OpenReservation, ReserveRequest,
    Reserved, Settled, Settlement,
};
pub use error::BillingError;
pub use ledger::{ChargeStatus, EntryKind, MessageMeta};
pub use money::{Currency, Micros};
pub use reconcile::ReconcileReport;
pub use recovery::RecoveryReport;
pub use store::{LedgerStore, MemoryStore, PostgresStore, SqliteStore, open_store};
pub use tariff::{Quote, RateQuery, RateSource, Tariff, TariffId, VolumeTier};
pub use writer::WriterMetrics;
