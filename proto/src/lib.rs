//! Protobuf definitions of smsgw's internal boundaries and their generated tonic code.
//!
//! `billing` is the Billing service (`smsgw.billing.v1`). [`charging`] is its in-process
//! face: the trait the router calls and billing implements, so both sides share one
//! contract whether billing runs in the same process or behind gRPC.

pub mod charging;

/// Generated types and the `billing_server::Billing` / `billing_client::BillingClient` pair.
pub mod billing {
    #![allow(clippy::all, clippy::pedantic, rustdoc::invalid_html_tags)]
    tonic::include_proto!("smsgw.billing.v1");
}
