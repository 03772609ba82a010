//! What an uplink exchanges with the layer above it.

use std::{
    future::Future,
    sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    time::Duration,
};

use rusmpp::{
    CommandStatus,
    pdus::{DataSm, DeliverSm, SubmitSm},
};
use tokio::sync::mpsc;

/// A message for the operator. `tag` is the caller's handle, returned with the result.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    pub tag: u64,
    pub pdu: Box<SubmitSm>,
    /// Sends so far whose fate was unknown (timeouts, lost links).
    pub attempts: u32,
}

impl SubmitRequest {
    pub fn new(tag: u64, pdu: SubmitSm) -> Self {
        Self {
            tag,
            pdu: Box::new(pdu),
            attempts: 0,
        }
    }
}

/// The fate of a [`SubmitRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// submit_sm_resp ESME_ROK with the operator's message id.
    Accepted { message_id: String },
    /// submit_sm_resp (or generic_nack) with an error status other than throttling.
    Rejected(CommandStatus),
    /// No answer after `max_attempts` sends: the operator may or may not have it.
    TimedOut,
    /// The uplink stopped before the message could be sent; it was not sent.
    NotSent,
}

#[derive(Debug, Clone)]
pub struct SubmitResult {
    pub tag: u64,
    pub outcome: SubmitOutcome,
    /// From the last submit_sm to its response.
    pub latency: Duration,
    pub attempts: u32,
    /// The request itself, so a caller can route it elsewhere after `NotSent`/`TimedOut`.
    pub request: Option<SubmitRequest>,
}

/// deliver_sm or data_sm from the operator: receipts and MO.
#[derive(Debug)]
pub enum Inbound {
    DeliverSm(Box<DeliverSm>),
    DataSm(Box<DataSm>),
}

/// Link state changes, for logs, readiness and failover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Bound,
    Disconnected { reason: String },
    Stopped,
}

/// Where an uplink takes its messages from. `next_submit` must be cancel-safe: the uplink
/// drops the future when something else needs attention. `None` means no more messages:
/// the uplink drains what is in flight, unbinds and stops.
pub trait SubmitSource: Send {
    fn next_submit(&mut self) -> impl Future<Output = Option<SubmitRequest>> + Send;
}

impl SubmitSource for mpsc::Receiver<SubmitRequest> {
    fn next_submit(&mut self) -> impl Future<Output = Option<SubmitRequest>> + Send {
        self.recv()
    }
}

/// Receives results, receipts and MO from an uplink.
pub trait UplinkHandler: Send + Sync + 'static {
    /// Called once per message with its final outcome.
    fn on_submit_result(&self, result: SubmitResult);

    /// A deliver_sm/data_sm; the returned status is sent in its response.
    fn on_inbound(&self, inbound: Inbound) -> impl Future<Output = CommandStatus> + Send;

    fn on_state(&self, _state: LinkState) {}
}

/// Counters of one uplink, cheap to read from anywhere (metrics, routing health).
#[derive(Debug, Default)]
pub struct UplinkStats {
    pub bound: AtomicBool,
    pub in_flight: AtomicUsize,
    pub submitted: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub throttled: AtomicU64,
    pub timeouts: AtomicU64,
    pub inbound: AtomicU64,
    pub connects: AtomicU64,
}

impl UplinkStats {
    pub fn is_bound(&self) -> bool {
        self.bound.load(Ordering::Relaxed)
    }
}
