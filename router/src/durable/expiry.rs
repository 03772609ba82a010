//! Deadlines of the records that expire (receipt waits, kept deliveries, callbacks).

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, VecDeque},
    time::{Duration, Instant},
};

/// Deadlines of the records that expire (receipt waits, pending deliveries and
/// callbacks), tracked only while the record is live: its completion forgets it in O(1),
/// so memory follows what is in flight, not throughput × TTL.
///
/// `deadlines` is the truth; `heap` orders them and is cleaned lazily: an entry whose
/// key was forgotten (or re-armed with another deadline) is skipped when it surfaces,
/// and the heap is rebuilt from `deadlines` once stale entries outnumber live ones, so
/// each completion costs amortised O(1) and the heap stays within 2 × live + slack.
pub(super) struct Expiries {
    /// Milliseconds since `base`: 8 bytes instead of an `Instant`'s 16.
    pub(super) deadlines: HashMap<u128, u64>,
    pub(super) heap: BinaryHeap<Reverse<(u64, u128)>>,
    pub(super) base: Instant,
}

/// Milliseconds from `base` to `at`: 8 bytes a deadline instead of an `Instant`'s 16.
fn millis_since(base: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(base).as_millis()).unwrap_or(u64::MAX)
}

/// Stale heap entries tolerated before a rebuild, beyond one per live entry.
pub(super) const HEAP_SLACK: usize = 1024;

impl Expiries {
    pub(super) fn new() -> Self {
        Self {
            deadlines: HashMap::new(),
            heap: BinaryHeap::new(),
            base: Instant::now(),
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        millis_since(self.base, at)
    }

    pub(super) fn arm(&mut self, key: u128, ttl: Duration) {
        let at = self.millis(Instant::now() + ttl);
        self.deadlines.insert(key, at);
        self.heap.push(Reverse((at, key)));
        self.compact();
    }

    pub(super) fn forget(&mut self, key: u128) {
        if self.deadlines.remove(&key).is_some() {
            self.compact();
        }
    }

    /// Pop the keys whose deadline passed.
    pub(super) fn due(&mut self, now: Instant) -> Vec<u128> {
        let now = self.millis(now);
        let mut due = Vec::new();
        while let Some(&Reverse((at, key))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            // Only if this is still the key's current deadline (else it is stale).
            if self.deadlines.get(&key) == Some(&at) {
                self.deadlines.remove(&key);
                due.push(key);
            }
        }
        due
    }

    pub(super) fn compact(&mut self) {
        if self.heap.len() <= 2 * self.deadlines.len() + HEAP_SLACK {
            return;
        }
        self.heap = self
            .deadlines
            .iter()
            .map(|(&key, &at)| Reverse((at, key)))
            .collect();
        // Give back what a burst left behind.
        if self.deadlines.capacity() > 4 * self.deadlines.len() + HEAP_SLACK {
            self.deadlines.shrink_to(2 * self.deadlines.len());
        }
    }

    /// Bytes held, by capacity (the hash table's control bytes included).
    pub(super) fn bytes(&self) -> usize {
        let map_slot = std::mem::size_of::<(u128, u64)>() + 1;
        self.deadlines.capacity() * map_slot
            + self.heap.capacity() * std::mem::size_of::<Reverse<(u64, u128)>>()
    }
}

/// Records that all live the same fixed TTL and are never finished early, so they
/// expire in the order they came: a queue of (deadline, key) costs a push and a pop
/// each, where [`Expiries`]' hash table and heap cost several times that at full rate.
pub(super) struct FixedTtlQueue {
    queue: VecDeque<(u64, u128)>,
    base: Instant,
}

impl FixedTtlQueue {
    pub(super) fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            base: Instant::now(),
        }
    }

    pub(super) fn push(&mut self, key: u128, ttl: Duration) {
        let at = millis_since(self.base, Instant::now() + ttl);
        self.queue.push_back((at, key));
    }

    /// Pop the keys whose deadline passed.
    pub(super) fn due(&mut self, now: Instant) -> Vec<u128> {
        let now = millis_since(self.base, now);
        let mut due = Vec::new();
        while let Some(&(at, key)) = self.queue.front() {
            if at > now {
                break;
            }
            self.queue.pop_front();
            due.push(key);
        }
        // Give back what a burst left behind.
        let len = self.queue.len();
        if self.queue.capacity() > 4 * len + HEAP_SLACK {
            self.queue.shrink_to(2 * len);
        }
        due
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn bytes(&self) -> usize {
        self.queue.capacity() * std::mem::size_of::<(u64, u128)>()
    }
}
