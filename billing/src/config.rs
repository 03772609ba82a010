//! Billing settings, as they appear in the `[billing]` section of `smsgw.toml`.

use std::time::Duration;

use serde::Deserialize;

/// What to do at start with reservations a crash left open (their CDR still PENDING).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryPolicy {
    /// The operator accepted it (CDR has an operator id): commit; otherwise the message
    /// never went out: refund, with actor `recovery`.
    #[default]
    RefundUnsent,
    /// Keep them open for a durability layer that resends messages and then commits or
    /// refunds them itself (see `BillingEngine::open_reservations`).
    KeepOpen,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct BillingConfig {
    /// `sqlite://smsgw.db` (default), `sqlite::memory:` or `postgres://…`.
    pub url: String,
    /// Group commit: write at least this often while anything is buffered.
    pub flush_interval_ms: u64,
    /// Group commit: write as soon as this many operations are buffered.
    pub batch_max: usize,
    /// Operations the write-behind buffer may hold (while the store is slow or away)
    /// before new reservations are refused.
    pub buffer_capacity: usize,
    /// Account shards (rounded up to a power of two); no lock is shared across shards.
    pub shards: usize,
    /// Settled references remembered per shard (at least this many, at most twice), so
    /// retried commits/refunds are no-ops.
    pub settled_memory_per_shard: usize,
    /// How far back settled references are reloaded at start (hours).
    pub settled_lookback_hours: u64,
    pub recovery: RecoveryPolicy,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            url: "sqlite://smsgw.db".into(),
            // Larger batches cost no durability (the journal holds every accepted message)
            // and let a reserve and its commit meet in one batch: one ledger row, not two.
            flush_interval_ms: 50,
            batch_max: 20_000,
            buffer_capacity: 1_000_000,
            shards: 64,
            settled_memory_per_shard: 16_384,
            settled_lookback_hours: 48,
            recovery: RecoveryPolicy::RefundUnsent,
        }
    }
}

impl BillingConfig {
    pub fn with_url(url: impl Into<String>) -> Self {
        BillingConfig {
            url: url.into(),
            ..BillingConfig::default()
        }
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms.max(1))
    }
}
