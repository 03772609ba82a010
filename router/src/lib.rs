//! The message pipeline with Jasmin semantics: users and credentials, MT/MO routes and
//! filters, interceptors, per-connector queues feeding the uplinks, pre-charging,
//! receipts and MO.
//!
//! Entry point: [`Gateway::start`] with a [`RouterConfig`]; serve its
//! [`GatewayHandle::smpp`] front with `smpp_core::server::Server`.

pub mod callbacks;
pub mod charging;
pub mod config;
pub mod credentials;
pub mod dispatch;
pub mod durable;
pub mod filter;
pub mod idmap;
pub mod mo;
pub mod model;
pub mod queue;
pub mod receipts;
pub mod refusal;
pub mod route;
pub mod script;
pub mod split;
pub mod stats;
pub mod user;

pub use config::{ConfigError, RouterConfig};
pub use dispatch::{Deps, Gateway, GatewayHandle, RestoreReport, SmppFront, Snapshot};
pub use model::{Address, DlrMethod, DlrRequest, Message, Origin};
pub use refusal::Refusal;
