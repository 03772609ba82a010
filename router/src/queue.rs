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

/// What a queued part costs besides its text and TLVs: the PDU's fixed fields, the
/// addresses, and the queue's and in-flight table's bookkeeping, rounded up.
const PART_OVERHEAD_BYTES: usize = 256;

impl Queued {
    pub fn new(request: SubmitRequest, expires_at: Option<Instant>) -> Self {
        Self {
            request,
            expires_at,
        }
    }

    /// The memory this part holds while it waits, for the queue's byte bound.
    pub fn bytes(&self) -> usize {
        let pdu = &self.request.pdu;
        let tlvs: usize = pdu
            .tlvs()
            .iter()
            .map(|t| usize::from(t.value_length()))
            .sum();
        PART_OVERHEAD_BYTES + pdu.short_message().as_ref().len() + tlvs
    }
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
    /// New bounds for new traffic (a connector reconfigured live); what waits stays.
    fn set_bounds(&self, capacity: usize, max_bytes: usize);
    /// Bytes held by the parts waiting (see [`Queued::bytes`]).
    fn bytes(&self) -> usize;
    /// The byte bound for new traffic.
    fn max_bytes(&self) -> usize;
    fn notify(&self) -> &Notify;
}

/// A connector's queue in memory, bounded by a count and by bytes: a count alone lets
/// a few clients sending long payloads hold gigabytes.
#[derive(Debug)]
pub struct MemoryQueue {
    items: Mutex<VecDeque<Queued>>,
    len: AtomicUsize,
    bytes: AtomicUsize,
    capacity: AtomicUsize,
    max_bytes: AtomicUsize,
    notify: Notify,
}

impl MemoryQueue {
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            capacity: AtomicUsize::new(capacity.max(1)),
            max_bytes: AtomicUsize::new(max_bytes.max(PART_OVERHEAD_BYTES)),
            notify: Notify::new(),
        }
    }
}

impl MessageQueue for MemoryQueue {
    fn try_push(&self, items: Vec<Queued>) -> Result<(), Vec<Queued>> {
        let added: usize = items.iter().map(Queued::bytes).sum();
        {
            let mut q = self.items.lock();
            if q.len() + items.len() > self.capacity.load(Ordering::Relaxed)
                || self.bytes.load(Ordering::Relaxed) + added
                    > self.max_bytes.load(Ordering::Relaxed)
            {
                return Err(items);
            }
            q.extend(items);
            self.len.store(q.len(), Ordering::Relaxed);
            self.bytes.fetch_add(added, Ordering::Relaxed);
        }
        self.notify.notify_one();
        Ok(())
    }

    fn push_front(&self, item: Queued) {
        {
            let mut q = self.items.lock();
            self.bytes.fetch_add(item.bytes(), Ordering::Relaxed);
            q.push_front(item);
            self.len.store(q.len(), Ordering::Relaxed);
        }
        self.notify.notify_one();
    }

    fn pop(&self) -> Option<Queued> {
        let mut q = self.items.lock();
        let item = q.pop_front();
        if let Some(item) = &item {
            self.bytes.fetch_sub(item.bytes(), Ordering::Relaxed);
        }
        self.len.store(q.len(), Ordering::Relaxed);
        item
    }

    fn drain(&self) -> Vec<Queued> {
        let mut q = self.items.lock();
        self.len.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        q.drain(..).collect()
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    fn set_bounds(&self, capacity: usize, max_bytes: usize) {
        self.capacity.store(capacity.max(1), Ordering::Relaxed);
        self.max_bytes
            .store(max_bytes.max(PART_OVERHEAD_BYTES), Ordering::Relaxed);
    }

    fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn max_bytes(&self) -> usize {
        self.max_bytes.load(Ordering::Relaxed)
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

#[cfg(test)]
mod tests {
    use smpp_core::rusmpp::{pdus::SubmitSm, types::OctetString};

    use super::*;

    fn part(text_len: usize) -> Queued {
        let pdu = SubmitSm::builder()
            .short_message(OctetString::from_vec(vec![b'a'; text_len]).unwrap_or_default())
            .build();
        Queued::new(SubmitRequest::new(1, pdu), None)
    }

    #[test]
    fn bounded_by_bytes_as_well_as_count() {
        let one = part(200).bytes();
        let queue = MemoryQueue::new(100, 3 * one);
        assert!(queue.try_push(vec![part(200), part(200)]).is_ok());
        assert_eq!(queue.bytes(), 2 * one);
        // Room for one more by count, not for two by bytes: all or none.
        assert!(queue.try_push(vec![part(200), part(200)]).is_err());
        assert!(queue.try_push(vec![part(200)]).is_ok());
        assert!(queue.try_push(vec![part(10)]).is_err(), "full in bytes");
        // Requeues go past the bound, and what leaves gives its bytes back.
        queue.push_front(part(200));
        assert_eq!(queue.bytes(), 4 * one);
        assert!(queue.pop().is_some());
        assert_eq!(queue.bytes(), 3 * one);
        assert_eq!(queue.drain().len(), 3);
        assert_eq!(queue.bytes(), 0);
    }
}
