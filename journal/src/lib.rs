//! A local, segmented, append-only log with group commit.
//!
//! The pipeline writes a record before it acknowledges a message to a client and removes
//! it once the message reached a final outcome, so that whatever was acknowledged is
//! still here after a crash. Records are keyed by a 128-bit id (our message UUID); a
//! later `put` of the same id replaces the earlier one (a message that was submitted and
//! now waits for its receipt, say), and `remove` ends it. Replay returns the latest
//! record of every id that was not removed.
//!
//! One writer thread owns the files. Callers queue records and wait for their group's
//! write (and fsync, in `Fsync` mode): records that arrive while a sync is running form
//! the next group, so one fsync covers many acknowledgements.

mod live;
mod record;
mod segment;
mod writer;

use std::{path::PathBuf, time::Duration};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

pub use record::{Op, Record};
pub use writer::JournalStats;

/// What an acknowledgement promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledged after the record is on disk (fsync of its group): survives a crash of
    /// the process and of the machine.
    #[default]
    Fsync,
    /// Acknowledged after the record is written to the OS; fsync runs every
    /// `sync_interval`. Survives a crash of the process, not of the machine.
    Batched,
    /// No log: a crash loses everything not yet final.
    Memory,
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fsync" => Ok(Self::Fsync),
            "batched" => Ok(Self::Batched),
            "memory" => Ok(Self::Memory),
            other => Err(format!(
                "unknown durability {other:?} (fsync, batched or memory)"
            )),
        }
    }
}

/// The default `JournalConfig::sync_gap`.
pub const DEFAULT_SYNC_GAP: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
pub struct JournalConfig {
    pub dir: PathBuf,
    pub durability: Durability,
    /// A segment is closed and a new one started beyond this size.
    pub segment_bytes: u64,
    /// Most records in one group commit.
    pub max_batch: usize,
    /// Records queued for the writer before `put` waits.
    pub queue: usize,
    /// fsync period in `Batched` mode.
    pub sync_interval: Duration,
    /// `Fsync` mode: the least time from one fsync's start to the next. A group that
    /// comes sooner waits out the rest, and records arriving meanwhile join it, so under
    /// load one fsync covers more acknowledgements (each fsync costs the kernel about
    /// as much CPU time as it takes, whatever it covers). A lone record after a quiet
    /// spell does not wait.
    pub sync_gap: Duration,
    /// Beyond this many closed segments, the live records of the oldest are copied
    /// forward so it can be deleted (long-lived records must not pin old segments).
    pub max_segments: usize,
}

impl JournalConfig {
    pub fn new(dir: impl Into<PathBuf>, durability: Durability) -> Self {
        Self {
            dir: dir.into(),
            durability,
            segment_bytes: 64 << 20,
            max_batch: 8192,
            queue: 65_536,
            sync_interval: Duration::from_millis(2),
            sync_gap: DEFAULT_SYNC_GAP,
            max_segments: 8,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the journal writer has stopped")]
    Stopped,
    #[error("the journal's queue is full")]
    Busy,
    #[error("the journal failed to write: {0}")]
    WriteFailed(String),
}

pub(crate) enum Command {
    Put {
        id: u128,
        kind: u8,
        payload: Bytes,
        ack: Option<oneshot::Sender<Result<(), String>>>,
    },
    Remove {
        id: u128,
    },
    Flush {
        ack: oneshot::Sender<Result<(), String>>,
    },
    /// The replay of the segments that existed at open is done: take in its index.
    Adopt {
        index: Box<segment::ReplayedIndex>,
        ack: oneshot::Sender<Result<(), String>>,
    },
}

/// Unreadable bytes that replay skipped (or, for a torn tail, cut off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub segment: u64,
    pub offset: u64,
    pub bytes: u64,
    /// Where the segment was copied before anything else happened to it.
    pub copy: Option<PathBuf>,
}

/// What opening the log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    pub segments: usize,
    /// Live records returned.
    pub records: usize,
    /// Damaged stretches skipped; replay resumed at the next valid record after each. A
    /// skipped record may have been a `remove` (its message comes back) or a `put`.
    pub damaged: Vec<Damage>,
    /// An incomplete last write of the newest segment (the normal crash case), truncated.
    pub torn_tail: Option<Damage>,
}

impl ReplayReport {
    pub fn skipped_bytes(&self) -> u64 {
        self.damaged.iter().map(|d| d.bytes).sum()
    }
}

/// Handle to the log; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    tx: Option<mpsc::Sender<Command>>,
    stats: std::sync::Arc<JournalStats>,
    durability: Durability,
    replay: std::sync::Arc<std::sync::OnceLock<ReplayReport>>,
}

/// The replay of the segments found at open, running on its own thread while the log
/// already takes new records.
pub struct Replay {
    done: std::sync::mpsc::Receiver<Result<(Vec<Record>, ReplayReport), JournalError>>,
    report: std::sync::Arc<std::sync::OnceLock<ReplayReport>>,
}

impl Replay {
    /// Wait for the live records of the old segments, oldest first. The writer has
    /// adopted their index by then, so removing or replacing them is safe.
    pub fn wait(self) -> Result<Vec<Record>, JournalError> {
        let (records, report) = self.done.recv().map_err(|_| JournalError::Stopped)??;
        let _ = self.report.set(report);
        Ok(records)
    }
}

static NO_REPLAY: ReplayReport = ReplayReport {
    segments: 0,
    records: 0,
    damaged: Vec::new(),
    torn_tail: None,
};

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("durability", &self.durability)
            .finish()
    }
}

impl Journal {
    /// Open (or create) the log in `config.dir`, replay it, and start the writer.
    /// Returns the live records, oldest first.
    pub fn open(config: JournalConfig) -> Result<(Self, Vec<Record>), JournalError> {
        let (journal, replay) = Self::open_replaying(config)?;
        let records = replay.wait()?;
        Ok((journal, records))
    }

    /// Open the log and take new records at once, while the segments already there are
    /// replayed on a thread of their own: start-up does not wait for a large log.
    pub fn open_replaying(config: JournalConfig) -> Result<(Self, Replay), JournalError> {
        let report = std::sync::Arc::new(std::sync::OnceLock::new());
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        if config.durability == Durability::Memory {
            let _ = done_tx.send(Ok((Vec::new(), ReplayReport::default())));
            return Ok((Self::memory(), Replay { done, report }));
        }
        let (state, existing) = segment::Segments::start(&config)?;
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let stats = std::sync::Arc::new(JournalStats::default());
        writer::spawn(config.clone(), state, rx, stats.clone())?;
        let writer = tx.clone();
        let dir = config.dir.clone();
        std::thread::Builder::new()
            .name("journal-replay".into())
            .spawn(move || {
                let _ = done_tx.send(replay_and_adopt(&dir, &existing, &writer));
            })
            .map_err(|source| JournalError::Io {
                path: "journal replay thread".into(),
                source,
            })?;
        Ok((
            Self {
                tx: Some(tx),
                stats,
                durability: config.durability,
                replay: report.clone(),
            },
            Replay { done, report },
        ))
    }

    /// A journal that keeps nothing (`durability = "memory"`).
    pub fn memory() -> Self {
        Self {
            tx: None,
            stats: Default::default(),
            durability: Durability::Memory,
            replay: Default::default(),
        }
    }

    /// What replay found when the log was opened (damage skipped, torn tail cut).
    /// (Empty until the replay is done.)
    pub fn replay_report(&self) -> &ReplayReport {
        self.replay.get().unwrap_or(&NO_REPLAY)
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    pub fn stats(&self) -> &JournalStats {
        &self.stats
    }

    /// Write (or replace) the record of `id`; returns when it is as durable as the
    /// configured mode promises.
    pub async fn put(&self, id: u128, kind: u8, payload: Bytes) -> Result<(), JournalError> {
        let Some(tx) = &self.tx else { return Ok(()) };
        let (ack, done) = oneshot::channel();
        tx.send(Command::Put {
            id,
            kind,
            payload,
            ack: Some(ack),
        })
        .await
        .map_err(|_| JournalError::Stopped)?;
        done.await
            .map_err(|_| JournalError::Stopped)?
            .map_err(JournalError::WriteFailed)
    }

    /// Queue the record of `id` without waiting, from synchronous code; the receiver
    /// completes when it is durable. Fails at once when the writer's queue is full (the
    /// caller refuses the message rather than stall).
    pub fn put_ack(
        &self,
        id: u128,
        kind: u8,
        payload: Bytes,
    ) -> Result<oneshot::Receiver<Result<(), String>>, JournalError> {
        let (ack, done) = oneshot::channel();
        let Some(tx) = &self.tx else {
            let _ = ack.send(Ok(()));
            return Ok(done);
        };
        tx.try_send(Command::Put {
            id,
            kind,
            payload,
            ack: Some(ack),
        })
        .map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => JournalError::Busy,
            mpsc::error::TrySendError::Closed(_) => JournalError::Stopped,
        })?;
        Ok(done)
    }

    /// Queue a replacement record without waiting for it (an update a crash may lose).
    pub fn try_put(&self, id: u128, kind: u8, payload: Bytes) -> bool {
        match &self.tx {
            None => true,
            Some(tx) => tx
                .try_send(Command::Put {
                    id,
                    kind,
                    payload,
                    ack: None,
                })
                .is_ok(),
        }
    }

    /// Write the record of `id` without waiting for it (an update that a crash may lose,
    /// such as the operator id of a message: replay then sends the message again).
    pub async fn put_nowait(&self, id: u128, kind: u8, payload: Bytes) -> Result<(), JournalError> {
        let Some(tx) = &self.tx else { return Ok(()) };
        tx.send(Command::Put {
            id,
            kind,
            payload,
            ack: None,
        })
        .await
        .map_err(|_| JournalError::Stopped)
    }

    /// End the record of `id` (the message reached its final outcome).
    pub async fn remove(&self, id: u128) -> Result<(), JournalError> {
        let Some(tx) = &self.tx else { return Ok(()) };
        tx.send(Command::Remove { id })
            .await
            .map_err(|_| JournalError::Stopped)
    }

    /// Like `remove`, from synchronous code; falls back to a blocking-free attempt and
    /// reports whether the removal was queued (a lost removal only means a resend after a
    /// crash, never a loss).
    pub fn try_remove(&self, id: u128) -> bool {
        match &self.tx {
            None => true,
            Some(tx) => tx.try_send(Command::Remove { id }).is_ok(),
        }
    }

    /// Write and sync everything queued so far.
    pub async fn flush(&self) -> Result<(), JournalError> {
        let Some(tx) = &self.tx else { return Ok(()) };
        let (ack, done) = oneshot::channel();
        tx.send(Command::Flush { ack })
            .await
            .map_err(|_| JournalError::Stopped)?;
        done.await
            .map_err(|_| JournalError::Stopped)?
            .map_err(JournalError::WriteFailed)
    }
}

/// The replay thread's work: read the old segments, hand their index to the writer and
/// wait until it is adopted, then give back the records.
fn replay_and_adopt(
    dir: &std::path::Path,
    existing: &[u64],
    writer: &mpsc::Sender<Command>,
) -> Result<(Vec<Record>, ReplayReport), JournalError> {
    let (index, records, report) = segment::replay(dir, existing)?.split();
    let (ack, adopted) = oneshot::channel();
    writer
        .blocking_send(Command::Adopt {
            index: Box::new(index),
            ack,
        })
        .map_err(|_| JournalError::Stopped)?;
    adopted
        .blocking_recv()
        .map_err(|_| JournalError::Stopped)?
        .map_err(JournalError::WriteFailed)?;
    Ok((records, report))
}
