//! The message pipeline with Jasmin semantics: users and credentials, MT/MO routes and
//! filters, interceptors, per-connector queues feeding the uplinks, pre-charging,
//! receipts and MO.
//!
//! Entry point: [`Gateway::start`] with a [`RouterConfig`]; serve its
//! [`GatewayHandle::smpp`] front with `smpp_core::server::Server`. The money side is
//! [`charging::Charging`], the contract billing implements.

pub mod callbacks;
pub mod config;
pub mod credentials;
pub mod durable;
pub mod filter;
pub mod gateway;
pub mod idmap;
pub mod journaling;
pub mod lcr;
pub mod model;
pub mod network;
pub mod queue;
pub mod reassembly;
pub mod receipts;
pub mod refusal;
pub mod route;
pub mod script;
pub mod snapshot;
pub mod split;
pub mod stats;
pub mod user;

pub use config::{ConfigError, RouterConfig};
pub use gateway::{
    Annex, Deps, Gateway, GatewayHandle, NotStored, Observed, RestoreReport, SmppFront,
    Subscription,
};
pub use model::{Address, DlrMethod, DlrRequest, Message, Origin, new_message_id};
pub use proto::charging;
pub use refusal::Refusal;
pub use snapshot::Snapshot;
