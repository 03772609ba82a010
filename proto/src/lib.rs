//! Protobuf definitions of smsgw's internal boundaries and their generated tonic code.
//!
//! `billing` is the Billing service (`smsgw.billing.v1`). [`charging`] is its in-process
//! face: the trait the router calls and billing implements, so both sides share one
//! contract whether billing runs in the same process or behind gRPC. `admin` is the
//! admin API (`smsgw.admin.v1`) served by the api crate.

pub mod charging;

/// The admin API (`smsgw.admin.v1`): `admin_server::Admin`, `stats_server::Stats` and
/// their clients, for `smsgw admin` and grpcurl.
pub mod admin {
    #![allow(clippy::all, clippy::pedantic, rustdoc::invalid_html_tags)]
    tonic::include_proto!("smsgw.admin.v1");

    /// Encoded `FileDescriptorSet` of admin.proto, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("admin_descriptor");
}

/// Generated types and the `billing_server::Billing` / `billing_client::BillingClient` pair.
pub mod billing {
    #![allow(clippy::all, clippy::pedantic, rustdoc::invalid_html_tags)]
    tonic::include_proto!("smsgw.billing.v1");

    /// Encoded `FileDescriptorSet` of billing.proto, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("billing_descriptor");
}
