//! The gRPC admin API (`smsgw.admin.v1`, the jCli replacement), its Stats service, and
//! billing's own service (`smsgw.billing.v1`) mounted beside them.
//!
//! - [`store`]: the router configuration's home in the billing store, seeded once from
//!   smsgw.toml;
//! - [`apply`]: every change goes through one funnel: validate the whole new
//!   configuration, persist it, swap it into the gateway, audit it;
//! - [`convert`]: protobuf messages to and from the router's config structs;
//! - [`service`] / [`tables`] / [`connectors`] / [`accounts`] / [`stats`]: the RPCs;
//! - [`auth`]: bearer tokens; the token's name is the audit actor, its role (admin,
//!   charging, read) the RPCs it may call.
//!
//! [`tls_incoming`]: TLS when `[admin.tls]` names a certificate.
//!
//! Health (`grpc.health.v1`) and reflection are served without a token: they reveal
//! only the schema and liveness.

pub mod accounts;
pub mod apply;
pub mod auth;
pub mod connectors;
pub mod convert;
mod document;
mod lcr_costs;
mod objects;
pub mod service;
pub mod stats;
pub mod store;
pub mod tables;
pub mod tariffs;
pub mod tls_incoming;

use std::sync::Arc;

use billing::EngineCharging;
use proto::{
    admin::{admin_server::AdminServer, stats_server::StatsServer},
    billing::billing_server::BillingServer,
};
use router::{Gateway, RouterConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use apply::AdminState;
pub use auth::{Auth, Role, Token, WithPath};
pub use store::{ConfigStore, Origin, load_or_seed};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("admin reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("admin gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The state the admin services share.
pub fn state(
    gateway: Arc<Gateway>,
    charging: Arc<EngineCharging>,
    store: Arc<dyn ConfigStore>,
    current: RouterConfig,
) -> Arc<AdminState> {
    Arc::new(AdminState::new(gateway, charging, store, current))
}

/// Admin, Stats and Billing (token-checked), health and reflection, ready to serve.
async fn services(
    state: Arc<AdminState>,
    auth: Auth,
) -> Result<tonic::transport::server::Router, ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AdminServer<service::AdminService>>()
        .await;
    health
        .set_serving::<StatsServer<stats::StatsService>>()
        .await;
    health
        .set_serving::<BillingServer<billing::grpc::BillingService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::admin::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(proto::billing::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    Ok(tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(WithPath(AdminServer::with_interceptor(
            service::AdminService::new(state.clone()),
            auth.clone(),
        )))
        .add_service(WithPath(StatsServer::with_interceptor(
            stats::StatsService::new(state.clone()),
            auth.clone(),
        )))
        // Billing (balance, top-up, rate, and the charging calls of a remote router) on
        // the same engine the gateway charges through, behind the same tokens; the
        // settlement calls only for tokens with role "charging".
        .add_service(WithPath(BillingServer::with_interceptor(
            billing::grpc::BillingService::new(state.charging.engine().clone()),
            auth,
        ))))
}

/// Serves the admin services in clear on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    auth: Auth,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    services(state, auth)
        .await?
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown.cancelled_owned(),
        )
        .await?;
    Ok(())
}

/// Serves the admin services over TLS (`tls` must offer ALPN `h2`, see
/// [`tls_incoming::server_tls`]) until `shutdown` is cancelled.
pub async fn serve_tls(
    listener: TcpListener,
    tls: tls::TlsAcceptor,
    state: Arc<AdminState>,
    auth: Auth,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let incoming = tls_incoming::incoming(listener, tls, shutdown.clone());
    services(state, auth)
        .await?
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await?;
    Ok(())
}
