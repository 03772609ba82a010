//! Per-user and per-connector counters, cheap to read from a metrics endpoint.
//!
//! Everything here is a relaxed atomic bumped on the message path; `/metrics` reads them
//! at scrape time, so the path itself never looks a metric up by name or label.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Local};
use latency::LatencyHistogram;
use smpp_core::client::{SubmitOutcome, SubmitResult};

use crate::refusal::Refusal;

/// The `reason` label of refused messages, indexed by [`refusal_reason`].
pub const REFUSAL_REASONS: [&str; 12] = [
    "authentication",
    "authorization",
    "value_filter",
    "charging",
    "charging_busy",
    "no_route",
    "no_bound_connector",
    "queue_full",
    "journal",
    "interceptor",
    "invalid",
    "other",
];

/// Index of a refusal's reason in [`REFUSAL_REASONS`]. Throughput refusals are counted
/// apart (`throttled`), so they fall under "other" if they ever come here.
pub fn refusal_reason(refusal: &Refusal) -> usize {
    match refusal {
        Refusal::Authentication { .. } => 0,
        Refusal::Authorization { .. } => 1,
        Refusal::ValueFilter { .. } => 2,
        Refusal::Charging(_) => 3,
        Refusal::ChargingBusy => 4,
        Refusal::NoRoute => 5,
        Refusal::NoBoundConnector => 6,
        Refusal::QueueFull => 7,
        Refusal::JournalBusy | Refusal::Enqueue => 8,
        Refusal::Intercepted { .. } | Refusal::InterceptorFailed => 9,
        Refusal::InvalidArgument { .. } | Refusal::InvalidTlv { .. } => 10,
        Refusal::Throughput | Refusal::Unknown(_) => 11,
    }
}

/// The `state` label of receipts: the SMPP `stat:` words, and "OTHER" for the rest.
pub const RECEIPT_STATES: [&str; 9] = [
    "DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD", "UNKNOWN", "REJECTD", "ENROUTE", "OTHER",
];

/// Index of a receipt's `stat:` in [`RECEIPT_STATES`], without allocating.
pub fn receipt_state(stat: &str) -> usize {
    let stat = stat.trim();
    RECEIPT_STATES[..RECEIPT_STATES.len() - 1]
        .iter()
        .position(|s| s.eq_ignore_ascii_case(stat))
        .unwrap_or(RECEIPT_STATES.len() - 1)
}

#[derive(Debug, Default)]
pub struct UserCounters {
    pub submit_requests: AtomicU64,
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    /// `refused`, split by [`REFUSAL_REASONS`].
    pub refused_by: [AtomicU64; REFUSAL_REASONS.len()],
    pub throttled: AtomicU64,
    pub receipts: AtomicU64,
    pub mo: AtomicU64,
}

impl UserCounters {
    pub fn refuse(&self, refusal: &Refusal) {
        bump(&self.refused);
        bump(&self.refused_by[refusal_reason(refusal)]);
    }
}

#[derive(Debug, Default)]
pub struct ConnectorCounters {
    pub queued: AtomicU64,
    pub submitted: AtomicU64,
    pub failed: AtomicU64,
    pub requeued: AtomicU64,
    pub expired: AtomicU64,
    pub receipts: AtomicU64,
    /// `receipts`, split by [`RECEIPT_STATES`].
    pub receipts_by_state: [AtomicU64; RECEIPT_STATES.len()],
    pub receipts_unmatched: AtomicU64,
    pub mo: AtomicU64,
    /// From the last submit_sm to its submit_sm_resp (answered ones only).
    pub submit_response: LatencyHistogram,
    /// From the client's submit to the operator's final receipt.
    pub receipt_delay: LatencyHistogram,
}

impl ConnectorCounters {
    /// The operator answered (or not) a submit_sm: time the answers.
    pub fn submit_answered(&self, result: &SubmitResult) {
        if matches!(
            result.outcome,
            SubmitOutcome::Accepted { .. } | SubmitOutcome::Rejected(_)
        ) {
            self.submit_response.observe(result.latency);
        }
    }

    /// A matched receipt; a final one also times the message's way to the handset.
    pub fn receipt(&self, stat: &str, submitted_at: DateTime<Local>, is_final: bool) {
        bump(&self.receipts);
        bump(&self.receipts_by_state[receipt_state(stat)]);
        if is_final {
            // A clock stepped back gives a negative span: count it as zero.
            let delay = (Local::now() - submitted_at).to_std().unwrap_or_default();
            self.receipt_delay.observe(delay);
        }
    }
}

pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_states_are_classified_without_case() {
        assert_eq!(RECEIPT_STATES[receipt_state("delivrd")], "DELIVRD");
        assert_eq!(RECEIPT_STATES[receipt_state(" UNDELIV ")], "UNDELIV");
        assert_eq!(RECEIPT_STATES[receipt_state("weird")], "OTHER");
        assert_eq!(RECEIPT_STATES[receipt_state("")], "OTHER");
    }

    #[test]
    fn refusals_count_by_reason() {
        let c = UserCounters::default();
        c.refuse(&Refusal::NoRoute);
        c.refuse(&Refusal::QueueFull);
        c.refuse(&Refusal::NoRoute);
        assert_eq!(c.refused.load(Ordering::Relaxed), 3);
        let no_route = REFUSAL_REASONS.iter().position(|r| *r == "no_route");
        let count = no_route.map(|i| c.refused_by[i].load(Ordering::Relaxed));
        assert_eq!(count, Some(2));
    }
}
