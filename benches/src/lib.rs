//! Tools for tests and benchmarks: an SMSC simulator that plays the operator, and an
//! SMPP load generator that plays the client.

pub mod load;
pub mod sim;
