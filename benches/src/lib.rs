//! Tools for benchmarks: the SMSC simulator that plays the operator (it lives in the
//! SMPP test kit, `smpp-testkit`, and is re-exported here for the `smsc-sim` binary), and
//! an SMPP load generator that plays the client.

pub mod load;
pub use smpp_testkit::sim;
