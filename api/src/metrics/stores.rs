//! The journal's and billing's figures: how long fsyncs take, how full the billing
//! write-behind buffer is. Both are read from their own counters at scrape time.

use std::{fmt, sync::atomic::Ordering};

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};

use super::encode::{counters, gauges, histograms};

/// The message journal (`[durability]`), when it writes to disk.
#[derive(Debug)]
pub struct JournalCollector(pub journal::Journal);

impl Collector for JournalCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let s = self.0.stats();
        let none = Vec::new;
        histograms(
            &mut encoder,
            "smsgw_journal_fsync_seconds",
            "Time of each fsync of the message journal (one covers a group of records).",
            [(none(), s.fsync.snapshot())],
        )?;
        counters(
            &mut encoder,
            "smsgw_journal_records",
            "Records appended to the journal.",
            [(none(), s.records.load(Ordering::Relaxed))],
        )?;
        counters(
            &mut encoder,
            "smsgw_journal_write_errors",
            "Failed journal writes and fsyncs.",
            [(none(), s.write_errors.load(Ordering::Relaxed))],
        )?;
        gauges(
            &mut encoder,
            "smsgw_journal_live_records",
            "Records the journal still keeps (messages not yet final).",
            [(none(), s.live.load(Ordering::Relaxed) as f64)],
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
        let none = Vec::new;
        let fill = if m.capacity == 0 {
            0.0
        } else {
            m.buffered as f64 / m.capacity as f64
        };
        gauges(
            &mut encoder,
            "smsgw_billing_buffer_fill",
            "Share (0 to 1) of billing's write-behind buffer in use; at 1 messages are refused.",
            [(none(), fill)],
        )?;
        gauges(
            &mut encoder,
            "smsgw_billing_buffered_ops",
            "Billing operations (ledger, CDR) not yet written to the store.",
            [(none(), m.buffered as f64)],
        )?;
        gauges(
            &mut encoder,
            "smsgw_billing_store_healthy",
            "1 while billing's store accepts writes.",
            [(none(), f64::from(u8::from(m.store_healthy)))],
        )?;
        gauges(
            &mut encoder,
            "smsgw_billing_last_flush_seconds",
            "Duration of billing's latest write to its store.",
            [(none(), m.last_flush_latency.as_secs_f64())],
        )?;
        counters(
            &mut encoder,
            "smsgw_billing_flushes",
            "Writes of billing's buffer to its store.",
            [(none(), m.flushes)],
        )?;
        counters(
            &mut encoder,
            "smsgw_billing_failed_flushes",
            "Failed writes of billing's buffer to its store.",
            [(none(), m.failed_flushes)],
        )
    }
}
