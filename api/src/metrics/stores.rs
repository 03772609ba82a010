//! The journal's and billing's figures: how long fsyncs take, how full the billing
//! write-behind buffer is. Both are read from their own counters at scrape time.

use std::{fmt, sync::atomic::Ordering};

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};

use super::encode::{counter, gauge, histogram};

/// The message journal (`[durability]`), when it writes to disk.
#[derive(Debug)]
pub struct JournalCollector(pub journal::Journal);

impl Collector for JournalCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let s = self.0.stats();
        histogram(
            &mut encoder,
            "smsgw_journal_fsync_seconds",
            "Time of each fsync of the message journal (one covers a group of records).",
            s.fsync.snapshot(),
        )?;
        counter(
            &mut encoder,
            "smsgw_journal_records",
            "Records appended to the journal.",
            s.records.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "smsgw_journal_write_errors",
            "Failed journal writes and fsyncs.",
            s.write_errors.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut encoder,
            "smsgw_journal_live_records",
            "Records the journal still keeps (messages not yet final).",
            s.live.load(Ordering::Relaxed) as f64,
        )
    }
}

/// Billing's write-behind to its store (ledger, CDR).
pub struct BillingCollector(pub billing::BillingEngine);

impl fmt::Debug for BillingCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BillingCollector")
    }
}

impl Collector for BillingCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let m = self.0.metrics();
        let fill = if m.capacity == 0 {
            0.0
        } else {
            m.buffered as f64 / m.capacity as f64
        };
        gauge(
            &mut encoder,
            "smsgw_billing_buffer_fill",
            "Share (0 to 1) of billing's write-behind buffer in use; at 1 messages are refused.",
            fill,
        )?;
        gauge(
            &mut encoder,
            "smsgw_billing_buffered_ops",
            "Billing operations (ledger, CDR) not yet written to the store.",
            m.buffered as f64,
        )?;
        gauge(
            &mut encoder,
            "smsgw_billing_store_healthy",
            "1 while billing's store accepts writes.",
            f64::from(u8::from(m.store_healthy)),
        )?;
        gauge(
            &mut encoder,
            "smsgw_billing_last_flush_seconds",
            "Duration of billing's latest write to its store.",
            m.last_flush_latency.as_secs_f64(),
        )?;
        counter(
            &mut encoder,
            "smsgw_billing_flushes",
            "Writes of billing's buffer to its store.",
            m.flushes,
        )?;
        counter(
            &mut encoder,
            "smsgw_billing_failed_flushes",
            "Failed writes of billing's buffer to its store.",
            m.failed_flushes,
        )
    }
}
