//! The SMPP test kit, for every crate's tests and the benchmarks: an SMSC simulator that
//! plays the operator ([`sim`]), handles on a running one ([`operator`]), ESME clients
//! that play the client application ([`esme`] over smpp-core's client, [`raw`] PDU by
//! PDU), PDU builders ([`pdu`]) and one way to wait ([`wait`]).

pub mod esme;
pub mod operator;
pub mod pdu;
pub mod raw;
pub mod sim;
pub mod wait;

pub use wait::{Deadline, LONG_WAIT, WAIT, wait_for, wait_until};
