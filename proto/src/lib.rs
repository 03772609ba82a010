//! Protobuf definitions of smsgw's internal boundaries and their generated tonic code.
//!
//! `billing` is the Billing service (`smsgw.billing.v1`): the router calls the native
//! engine in-process and this service when billing runs as a separate process.

/// Generated types and the `billing_server::Billing` / `billing_client::BillingClient` pair.
pub mod billing {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("smsgw.billing.v1");
}
