//! Per-connector queues between the pipeline and the uplinks. The pipeline checks for
//! room, journals the accepted parts, then pushes them all or none without waiting; the
//! uplink takes them through [`QueueSource`], which drops parts whose validity ended.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use parking_lot::Mutex;
use smpp_core::client::{SubmitRequest, SubmitSource};
use tokio::sync::Notify;

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
