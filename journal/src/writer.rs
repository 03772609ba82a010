//! Group commit on one thread: the writer appends a group of records, fsyncs it and
//! releases its acknowledgements. Records that arrive during the fsync queue up and form
//! the next group, so one fsync covers many acknowledgements, and a busy writer is never
//! parked: callers that queue a record while it writes or syncs wake nobody. (Handing
//! each group to a second, syncing thread kept the writer idle between groups, and every
//! record then paid for waking it.) In `Batched` mode a timer thread fsyncs what was
//! written at least every `sync_interval`.

use std::{
    fs::File,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        mpsc as std_mpsc,
    },
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, oneshot};
use tracing::error;

use crate::{Command, Durability, JournalConfig, JournalError, segment::Segments};

/// Counters, readable from anywhere.
#[derive(Debug, Default)]
pub struct JournalStats {
    pub records: AtomicU64,
    pub groups: AtomicU64,
    pub syncs: AtomicU64,
    pub write_errors: AtomicU64,
    pub live: AtomicUsize,
    pub segments: AtomicUsize,
    /// Time of each fsync (successful or not), for `/metrics`.
    pub fsync: latency::LatencyHistogram,
    /// The last group write failed; cleared by the next one that succeeds.
    write_failing: AtomicBool,
    /// The last fsync failed; cleared by the next one that succeeds.
    sync_failing: AtomicBool,
}

impl JournalStats {
    /// Did the latest write and the latest fsync succeed? (`write_errors` keeps the
    /// total; health follows the current state, so a transient error, such as a full
    /// disk that was cleaned, does not leave the gateway unready until a restart.)
    pub fn healthy(&self) -> bool {
        !self.write_failing.load(Ordering::Relaxed) && !self.sync_failing.load(Ordering::Relaxed)
    }

    /// Time and count one fsync, and keep its outcome for `healthy`.
    fn synced(&self, started: Instant, result: &Result<(), String>) {
        self.fsync.observe(started.elapsed());
        match result {
            Ok(()) => {
                self.syncs.fetch_add(1, Ordering::Relaxed);
                self.sync_failing.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                error!(error = %e, "journal fsync failed");
                self.write_errors.fetch_add(1, Ordering::Relaxed);
                self.sync_failing.store(true, Ordering::Relaxed);
            }
        }
    }
}

type Ack = oneshot::Sender<Result<(), String>>;

/// The segment the `Batched` timer fsyncs, replaced when the writer rolls over.
struct SyncTarget {
    file: Mutex<File>,
    dirty: AtomicBool,
}

pub(crate) fn spawn(
    config: JournalConfig,
    segments: Segments,
    rx: mpsc::Receiver<Command>,
    stats: Arc<JournalStats>,
) -> Result<(), JournalError> {
    let spawn_error = |source| JournalError::Io {
        path: "journal threads".into(),
        source,
    };
    // The timer ends when the writer drops its sender.
    let (timer, timer_stop) = if config.durability == Durability::Batched {
        let target = Arc::new(SyncTarget {
            file: Mutex::new(segments.active_handle()?),
            dirty: AtomicBool::new(false),
        });
        let (stop_tx, stop_rx) = std_mpsc::channel::<()>();
        let stats = stats.clone();
        let interval = config.sync_interval;
        let timer_target = target.clone();
        std::thread::Builder::new()
            .name("journal-sync".into())
            .spawn(move || sync_timer(stop_rx, timer_target, stats, interval))
            .map_err(spawn_error)?;
        (Some(target), Some(stop_tx))
    } else {
        (None, None)
    };
    std::thread::Builder::new()
        .name("journal-writer".into())
        .spawn(move || {
            write_loop(config, segments, rx, stats, timer);
            drop(timer_stop);
        })
        .map_err(spawn_error)?;
    Ok(())
}

fn write_loop(
    config: JournalConfig,
    mut segments: Segments,
    mut rx: mpsc::Receiver<Command>,
    stats: Arc<JournalStats>,
    timer: Option<Arc<SyncTarget>>,
) {
    let mut active = segments.active_number();
    let mut last_sync: Option<Instant> = None;
    while let Some(first) = rx.blocking_recv() {
        let mut acks: Vec<Ack> = Vec::new();
        let mut must_sync = config.durability == Durability::Fsync;
        let mut count = 0usize;
        let mut next = Some(first);
        // Group commit delay (see `JournalConfig::sync_gap`): waited out once, after
        // the queue first runs dry.
        let mut gap_ends = last_sync
            .map(|at| at + config.sync_gap)
            .filter(|_| must_sync);
        loop {
            let Some(command) = next else {
                match gap_ends.take() {
                    Some(end) if count < config.max_batch => {
                        let now = Instant::now();
                        if now < end {
                            std::thread::sleep(end - now);
                        }
                        next = rx.try_recv().ok();
                        continue;
                    }
                    _ => break,
                }
            };
            match command {
                Command::Put {
                    id,
                    kind,
                    payload,
                    ack,
                } => {
                    segments.put(id, kind, &payload);
                    count += 1;
                    if let Some(ack) = ack {
                        acks.push(ack);
                    }
                }
                Command::Remove { id } => segments.remove(id),
                Command::Flush { ack } => {
                    must_sync = true;
                    acks.push(ack);
                }
                Command::Adopt { index, ack } => {
                    let _ = ack.send(segments.adopt(*index).map_err(|e| e.to_string()));
                }
            }
            next = if count < config.max_batch {
                rx.try_recv().ok()
            } else {
                None
            };
        }

        let written = segments.write();
        // A group that waits for its fsync gets it here; rolling over below syncs the
        // segment it closes as well, so this covers the group in either case.
        let synced = match (&written, must_sync) {
            (Ok(()), true) => {
                let started = Instant::now();
                last_sync = Some(started);
                let result = segments.sync().map_err(|e| e.to_string());
                stats.synced(started, &result);
                result
            }
            _ => Ok(()),
        };
        let result = written
            .map_err(|e| e.to_string())
            .and_then(|()| segments.maintain(&config).map_err(|e| e.to_string()));
        if let Some(timer) = &timer {
            if segments.active_number() != active
                && let Ok(handle) = segments.active_handle()
                && let Ok(mut file) = timer.file.lock()
            {
                *file = handle;
            }
            timer.dirty.store(!must_sync, Ordering::Release);
        }
        active = segments.active_number();
        // Before any ack: whoever was answered sees the counts of what it waited for.
        stats.live.store(segments.live(), Ordering::Relaxed);
        stats
            .segments
            .store(segments.segment_count(), Ordering::Relaxed);
        match result {
            Ok(()) => {
                stats.write_failing.store(false, Ordering::Relaxed);
                stats.records.fetch_add(count as u64, Ordering::Relaxed);
                stats.groups.fetch_add(1, Ordering::Relaxed);
                for ack in acks {
                    let _ = ack.send(synced.clone());
                }
            }
            Err(e) => {
                error!(error = %e, "journal write failed");
                stats.write_errors.fetch_add(1, Ordering::Relaxed);
                stats.write_failing.store(true, Ordering::Relaxed);
                fail(acks, &e);
            }
        }
    }
    // Every handle is gone: make what was written durable before the threads end.
    let _ = segments.write();
    let _ = segments.sync();
}

fn fail(acks: Vec<Ack>, reason: &str) {
    for ack in acks {
        let _ = ack.send(Err(reason.to_owned()));
    }
}

/// `Batched` mode: fsync at least every `interval` while there are unsynced writes.
fn sync_timer(
    stop: std_mpsc::Receiver<()>,
    target: Arc<SyncTarget>,
    stats: Arc<JournalStats>,
    interval: Duration,
) {
    while let Err(std_mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(interval) {
        if !target.dirty.swap(false, Ordering::AcqRel) {
            continue;
        }
        let started = Instant::now();
        let result = match target.file.lock() {
            Ok(file) => file.sync_data().map_err(|e| e.to_string()),
            Err(_) => Err("journal sync handle poisoned".to_owned()),
        };
        stats.synced(started, &result);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::{Durability, Journal, JournalConfig, segment::Segments};

    #[tokio::test]
    async fn readiness_recovers_after_a_failed_write() {
        let dir = tempfile::tempdir().unwrap();
        let config = JournalConfig::new(dir.path(), Durability::Fsync);
        let (mut segments, _, _) = Segments::open(&config).unwrap();
        segments.fail_writes = 1;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let stats = std::sync::Arc::new(super::JournalStats::default());
        super::spawn(config.clone(), segments, rx, stats.clone()).unwrap();
        let journal = Journal {
            tx: Some(tx),
            stats,
            durability: Durability::Fsync,
            replay: Default::default(),
        };
        assert!(journal.stats().healthy());
        assert!(journal.put(1, 1, Bytes::from_static(b"a")).await.is_err());
        assert!(
            !journal.stats().healthy(),
            "a failed write makes it unready"
        );
        journal.put(2, 1, Bytes::from_static(b"b")).await.unwrap();
        assert!(journal.stats().healthy(), "the next good write clears it");
        // The failed put left no ghost in the index (it would pin its segment forever).
        assert_eq!(
            journal
                .stats()
                .live
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        assert_eq!(
            journal
                .stats()
                .write_errors
                .load(std::sync::atomic::Ordering::Relaxed),
            1,
            "the total is kept"
        );
        drop(journal);
        let (_j, live) = Journal::open(config).unwrap();
        assert_eq!(live.iter().map(|r| r.id).collect::<Vec<_>>(), vec![2]);
    }
}

#[cfg(test)]
mod gap_tests {
    use std::{
        sync::atomic::Ordering,
        time::{Duration, Instant},
    };

    use bytes::Bytes;

    use crate::{Durability, Journal, JournalConfig};

    /// Records that come within `sync_gap` of the last fsync wait for its end and share
    /// the next fsync; the first record after a quiet spell is synced at once.
    #[tokio::test]
    async fn records_within_the_gap_share_one_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let gap = Duration::from_millis(300);
        let config = JournalConfig {
            sync_gap: gap,
            ..JournalConfig::new(dir.path(), Durability::Fsync)
        };
        let (journal, _) = Journal::open(config).unwrap();
        // Opening may have synced: let a quiet spell pass.
        tokio::time::sleep(gap).await;
        let before = journal.stats().syncs.load(Ordering::Relaxed);
        let started = Instant::now();
        journal.put(1, 1, Bytes::from_static(b"a")).await.unwrap();
        assert!(started.elapsed() < gap, "the first record does not wait");
        let puts: Vec<_> = (2..12u128)
            .map(|id| journal.put(id, 1, Bytes::from_static(b"b")))
            .collect();
        for put in futures_util::future::join_all(puts).await {
            put.unwrap();
        }
        assert!(
            started.elapsed() >= gap,
            "the next group waited out the gap"
        );
        assert_eq!(journal.stats().syncs.load(Ordering::Relaxed), before + 2);
    }
}

#[cfg(test)]
mod undo_tests {
    use bytes::Bytes;

    use crate::{Durability, Journal, JournalConfig, segment::Segments};

    /// A remove lost with a failed write is written with the next one.
    #[tokio::test]
    async fn a_remove_lost_in_a_failed_write_is_written_later() {
        let dir = tempfile::tempdir().unwrap();
        let config = JournalConfig::new(dir.path(), Durability::Fsync);
        {
            let (journal, _) = Journal::open(config.clone()).unwrap();
            journal.put(1, 1, Bytes::from_static(b"a")).await.unwrap();
            journal.flush().await.unwrap();
        }
        let (mut segments, live, _) = Segments::open(&config).unwrap();
        assert_eq!(live.len(), 1);
        segments.remove(1);
        segments.fail_writes = 1;
        assert!(segments.write().is_err());
        assert_eq!(segments.live(), 0, "still removed in the index");
        segments.put(2, 1, b"b");
        segments.write().unwrap();
        segments.sync().unwrap();
        drop(segments);
        let (_j, live) = Journal::open(config).unwrap();
        assert_eq!(live.iter().map(|r| r.id).collect::<Vec<_>>(), vec![2]);
    }
}
