//! Per-connector queues between the pipeline and the uplinks, and the journal hook
//! that the durability issue will fill with a local log.
//!
//! The pipeline only ever (1) takes room in a queue without waiting, (2) appends the
//! accepted message to the [`Journal`] and awaits its [`Durable`] answer, (3) pushes, and
//! reports every final outcome through the journal again (one place, in `dispatch`).

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;

use parking_lot::Mutex;
use smpp_core::{
    client::{SubmitRequest, SubmitSource},
    rusmpp::Pdu,
};
use tokio::sync::{Notify, oneshot};

use crate::{model::Message, receipts::DlrEntry};

/// One part of an accepted message on its way to an uplink.
#[derive(Debug)]
pub struct Queued {
    pub request: SubmitRequest,
    /// Validity period end: dropped (and refunded) when taken after it.
    pub expires_at: Option<Instant>,
}

/// A connector's queue. Bounded for new traffic; requeues and failover moves may go past
/// the bound so that nothing already accepted is lost.
pub trait MessageQueue: Send + Sync + 'static {
    /// Push all of `items` or none; never waits. Gives them back when full.
    fn try_push(&self, items: Vec<Queued>) -> Result<(), Vec<Queued>>;
    /// Put back ahead of new traffic, ignoring the bound.
    fn push_front(&self, item: Queued);
    fn pop(&self) -> Option<Queued>;
    fn drain(&self) -> Vec<Queued>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn capacity(&self) -> usize;
    fn notify(&self) -> &Notify;
}

#[derive(Debug)]
pub struct MemoryQueue {
    items: Mutex<VecDeque<Queued>>,
    len: AtomicUsize,
    capacity: usize,
    notify: Notify,
}

impl MemoryQueue {
    pub fn new(capacity: usize) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
            notify: Notify::new(),
        }
    }
}

impl MessageQueue for MemoryQueue {
    fn try_push(&self, items: Vec<Queued>) -> Result<(), Vec<Queued>> {
        {
            let mut q = self.items.lock();
            if q.len() + items.len() > self.capacity {
                return Err(items);
            }
            q.extend(items);
            self.len.store(q.len(), Ordering::Relaxed);
        }
        self.notify.notify_one();
        Ok(())
    }

    fn push_front(&self, item: Queued) {
        {
            let mut q = self.items.lock();
            q.push_front(item);
            self.len.store(q.len(), Ordering::Relaxed);
        }
        self.notify.notify_one();
    }

    fn pop(&self) -> Option<Queued> {
        let mut q = self.items.lock();
        let item = q.pop_front();
        self.len.store(q.len(), Ordering::Relaxed);
        item
    }

    fn drain(&self) -> Vec<Queued> {
        let mut q = self.items.lock();
        self.len.store(0, Ordering::Relaxed);
        q.drain(..).collect()
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn notify(&self) -> &Notify {
        &self.notify
    }
}

/// Called with the tag of a part whose validity ended while it waited.
pub type ExpiredHook = Arc<dyn Fn(u64) + Send + Sync>;

/// The uplink's view of a queue.
pub struct QueueSource {
    queue: Arc<dyn MessageQueue>,
    on_expired: ExpiredHook,
}

impl QueueSource {
    pub fn new(queue: Arc<dyn MessageQueue>, on_expired: ExpiredHook) -> Self {
        Self { queue, on_expired }
    }

    fn take(&self) -> Option<SubmitRequest> {
        let now = Instant::now();
        while let Some(item) = self.queue.pop() {
            if item.expires_at.is_some_and(|at| at <= now) {
                (self.on_expired)(item.request.tag);
                continue;
            }
            return Some(item.request);
        }
        None
    }
}

impl SubmitSource for QueueSource {
    // Cancel-safe: an item leaves the queue only in the synchronous `take`, never across
    // an await point.
    async fn next_submit(&mut self) -> Option<SubmitRequest> {
        loop {
            let notified = self.queue.notify().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(request) = self.take() {
                if !self.queue.is_empty() {
                    // Pass the wake-up on so another waiter does not sleep on a full queue.
                    self.queue.notify().notify_one();
                }
                return Some(request);
            }
            notified.await;
        }
    }
}

/// A message's final fate, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalOutcome {
    Failed { status: u32 },
    Expired,
}

/// What the journal is told.
#[derive(Debug)]
pub enum JournalRecord<'a> {
    /// One part accepted and charged, about to be queued. The client is answered only
    /// when this is durable.
    Accepted {
        message: &'a Message,
        username: &'a str,
        connector: &'a str,
        part: usize,
        parts: usize,
        content: &'a Bytes,
        esm_class: u8,
        registered_delivery: u8,
        charge_key: &'a str,
        /// This part's price, reserved under `charge_key`.
        amount: i64,
    },
    /// The operator took a part whose receipt the client wants: keep what is needed to
    /// match the receipt after a restart.
    AwaitingReceipt {
        entry: &'a DlrEntry,
        operator_id: &'a str,
        /// The part's (committed) charge, so a restart can tell billing it went out.
        charge_key: &'a str,
        ttl: Duration,
    },
    /// One part's final outcome (no receipt awaited).
    Outcome {
        id: &'a str,
        part: usize,
        outcome: FinalOutcome,
    },
    /// The final receipt of a part was handled.
    ReceiptDone { id: &'a str, part: usize },
    /// A deliver_sm (receipt or MO) for a client, kept until the client answers it.
    PendingDelivery {
        key: u128,
        username: &'a str,
        pdu: &'a Pdu,
        ttl: Duration,
    },
    /// The client answered that deliver_sm (or the HTTP callback of that key is done).
    Delivered { key: u128 },
    /// An HTTP callback (DLR or MO) not yet acknowledged or given up; ended by
    /// `Delivered { key }`.
    PendingCallback {
        key: u128,
        callback: &'a crate::callbacks::Callback,
        ttl: Duration,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("journal append failed: {0}")]
pub struct JournalError(pub String);

/// When an append is safe to acknowledge.
pub enum Durable {
    Done,
    /// Completed by the log's group commit.
    Pending(oneshot::Receiver<Result<(), String>>),
    /// Safe once this completes: e.g. a client's answer, or else a journal write.
    Deferred(Pin<Box<dyn Future<Output = Result<(), String>> + Send>>),
    /// Could not even be queued (log stopped or saturated).
    Failed(String),
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Done => f.write_str("Done"),
            Self::Pending(_) => f.write_str("Pending"),
            Self::Deferred(_) => f.write_str("Deferred"),
            Self::Failed(reason) => f.debug_tuple("Failed").field(reason).finish(),
        }
    }
}

impl Durable {
    pub async fn wait(self) -> Result<(), JournalError> {
        match self {
            Self::Done => Ok(()),
            Self::Pending(rx) => rx
                .await
                .map_err(|_| JournalError("log writer stopped".into()))?
                .map_err(JournalError),
            Self::Deferred(done) => done.await.map_err(JournalError),
            Self::Failed(reason) => Err(JournalError(reason)),
        }
    }
}

pub trait Journal: Send + Sync + 'static {
    fn append(&self, record: JournalRecord<'_>) -> Durable;

    /// Periodic upkeep (expiring records nobody will finish).
    fn housekeeping(&self) {}
}

/// No log (`durability = "memory"`): everything is "durable" at once.
#[derive(Debug, Default)]
pub struct NoJournal;

impl Journal for NoJournal {
    fn append(&self, _record: JournalRecord<'_>) -> Durable {
        Durable::Done
    }
}
