//! The write-behind task: the only writer of ledger and CDR. It drains the shards'
//! buffers every `flush_interval` or as soon as `batch_max` operations wait, and writes
//! each drain as one transaction (group commit). While the store is away it keeps the
//! batches in order and retries; the engine refuses new reservations once the buffer is
//! full, so nothing acknowledged is dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot};

use crate::engine::Shards;
use crate::ledger::Op;
use crate::store::{Batch, BatchBuilder, LedgerStore};

/// Answer to a `flush()`: Ok once everything buffered before the call is committed.
pub(crate) type FlushWaiter = oneshot::Sender<Result<(), String>>;

/// Counters the engine, readiness probes and metrics read without locking.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub buffered: AtomicUsize,
    pub healthy: AtomicBool,
    pub flushed_ops: AtomicU64,
    pub flushed_entries: AtomicU64,
    pub flushes: AtomicU64,
    pub failed_flushes: AtomicU64,
    pub last_flush_us: AtomicU64,
    pub max_flush_us: AtomicU64,
    pub last_error: std::sync::Mutex<Option<String>>,
}

/// A cheap snapshot for `/metrics` and `/health/ready`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterMetrics {
    pub store_healthy: bool,
    /// Operations (ledger entries, CDR writes, receipts) not yet committed.
    pub buffered: usize,
    pub capacity: usize,
    pub flushed_ops: u64,
    pub flushed_entries: u64,
    pub flushes: u64,
    pub failed_flushes: u64,
    pub last_flush_latency: Duration,
    pub max_flush_latency: Duration,
    pub last_error: Option<String>,
}

impl Counters {
    pub(crate) fn snapshot(&self, capacity: usize) -> WriterMetrics {
        WriterMetrics {
            store_healthy: self.healthy.load(Ordering::Relaxed),
            buffered: self.buffered.load(Ordering::Relaxed),
            capacity,
            flushed_ops: self.flushed_ops.load(Ordering::Relaxed),
            flushed_entries: self.flushed_entries.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            failed_flushes: self.failed_flushes.load(Ordering::Relaxed),
            last_flush_latency: Duration::from_micros(self.last_flush_us.load(Ordering::Relaxed)),
            max_flush_latency: Duration::from_micros(self.max_flush_us.load(Ordering::Relaxed)),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// Everything the writer shares with the engine: the shards (whose `pending` buffers it
/// drains), the counters and the wake-up.
pub(crate) struct Shared {
    pub shards: Shards,
    pub counters: Counters,
    pub wake: Notify,
    pub batch_max: usize,
    pub capacity: usize,
}

impl Shared {
    /// Called by the engine after pushing `n` operations under a shard lock.
    #[inline]
    pub(crate) fn added(&self, n: usize) {
        let before = self.counters.buffered.fetch_add(n, Ordering::Relaxed);
        // Wake the writer once per crossing of a batch_max boundary, not on every push.
        if (before + n) / self.batch_max != before / self.batch_max {
            self.wake.notify_one();
        }
    }

    #[inline]
    pub(crate) fn has_room(&self, n: usize) -> bool {
        self.counters.buffered.load(Ordering::Relaxed) + n <= self.capacity
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub(crate) async fn run(
    shared: Arc<Shared>,
    store: Arc<dyn LedgerStore>,
    mut next_id: i64,
    mut flush_rx: mpsc::UnboundedReceiver<FlushWaiter>,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backlog: VecDeque<(Batch, usize)> = VecDeque::new();
    let mut backoff = Duration::ZERO;
    let mut retry_at = Instant::now();
    let mut closing = false;
    let mut drained: Vec<Op> = Vec::new();
    let mut builder = BatchBuilder::default();
    // Written batches, kept for their capacity (see `BatchBuilder`).
    let mut spare: Vec<Batch> = Vec::new();
    loop {
        let mut waiters: Vec<FlushWaiter> = Vec::new();
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.wake.notified() => {}
            w = flush_rx.recv() => match w {
                Some(w) => waiters.push(w),
                None => closing = true,
            },
        }
        while let Ok(w) = flush_rx.try_recv() {
            waiters.push(w);
        }
        shared.shards.drain_into(&mut drained);
        if !store.keeps_records() {
            discard(&shared.counters, &mut drained);
        } else if !drained.is_empty() {
            let n = drained.len();
            let mut batch = spare.pop().unwrap_or_default();
            builder.build(&mut drained, &mut next_id, &mut batch);
            backlog.push_back((batch, n));
        }
        // While the store is away, retry on a backoff unless someone is waiting on a flush.
        if backlog.is_empty() || (waiters.is_empty() && !closing && Instant::now() < retry_at) {
            reply(waiters, Ok(()), &backlog);
            if closing {
                return;
            }
            continue;
        }
        let mut result = write_backlog(&shared, store.as_ref(), &mut backlog, &mut spare).await;
        if closing {
            // Last chance before the engine is gone: a few more tries, then give up loudly.
            for _ in 0..5 {
                if result.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                result = write_backlog(&shared, store.as_ref(), &mut backlog, &mut spare).await;
            }
            if let Err(e) = &result {
                tracing::error!(
                    buffered = shared.counters.buffered.load(Ordering::Relaxed),
                    error = %e,
                    "billing writer stopping with unwritten operations"
                );
            }
            reply(waiters, result, &backlog);
            return;
        }
        match &result {
            Ok(()) => backoff = Duration::ZERO,
            Err(_) => {
                backoff = (backoff * 2).clamp(interval, MAX_BACKOFF);
                retry_at = Instant::now() + backoff;
            }
        }
        reply(waiters, result, &backlog);
    }
}

/// Billing off: the operations are done with once drained (nothing is written, so
/// nothing is coalesced either).
fn discard(c: &Counters, drained: &mut Vec<Op>) {
    let n = drained.len();
    drained.clear();
    c.flushed_ops.fetch_add(n as u64, Ordering::Relaxed);
    c.buffered.fetch_sub(n, Ordering::Relaxed);
}

fn reply(
    waiters: Vec<FlushWaiter>,
    result: Result<(), String>,
    backlog: &VecDeque<(Batch, usize)>,
) {
    let result = match result {
        Ok(()) if !backlog.is_empty() => Err("store unavailable; operations stay buffered".into()),
        other => other,
    };
    for w in waiters {
        // A caller that stopped waiting is not an error.
        let _ = w.send(result.clone());
    }
}

async fn write_backlog(
    shared: &Shared,
    store: &dyn LedgerStore,
    backlog: &mut VecDeque<(Batch, usize)>,
    spare: &mut Vec<Batch>,
) -> Result<(), String> {
    let c = &shared.counters;
    while let Some((batch, ops)) = backlog.front() {
        let started = Instant::now();
        match store.write_batch(batch).await {
            Ok(()) => {
                let us = started.elapsed().as_micros() as u64;
                c.last_flush_us.store(us, Ordering::Relaxed);
                c.max_flush_us.fetch_max(us, Ordering::Relaxed);
                c.flushes.fetch_add(1, Ordering::Relaxed);
                c.flushed_entries
                    .fetch_add(batch.entries.len() as u64, Ordering::Relaxed);
                c.flushed_ops.fetch_add(*ops as u64, Ordering::Relaxed);
                c.buffered.fetch_sub(*ops, Ordering::Relaxed);
                if !c.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("billing store reachable again; buffered operations written");
                }
                if let Some((batch, _)) = backlog.pop_front()
                    && spare.is_empty()
                {
                    spare.push(batch);
                }
            }
            Err(e) => {
                c.failed_flushes.fetch_add(1, Ordering::Relaxed);
                if c.healthy.swap(false, Ordering::Relaxed) {
                    tracing::error!(error = %e, "billing store write failed; buffering in memory");
                }
                let msg = e.to_string();
                *c.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg.clone());
                return Err(msg);
            }
        }
    }
    Ok(())
}
