//! Per-user and per-connector counters, cheap to read from a metrics endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct UserCounters {
    pub submit_requests: AtomicU64,
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub throttled: AtomicU64,
    pub receipts: AtomicU64,
    pub mo: AtomicU64,
}

#[derive(Debug, Default)]
pub struct ConnectorCounters {
    pub queued: AtomicU64,
    pub submitted: AtomicU64,
    pub failed: AtomicU64,
    pub requeued: AtomicU64,
    pub expired: AtomicU64,
    pub receipts: AtomicU64,
    pub receipts_unmatched: AtomicU64,
    pub mo: AtomicU64,
}

pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
