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
///
/// The queue is a chain of fixed-size chunks, not one ring buffer: it holds a TTL's
/// worth of messages (millions), and a ring that size doubling copied all of it under
/// the lock every sent part takes (29 ms in an open-loop run). A chunk is allocated when
/// the last one fills and freed when its last key is due.
pub(super) struct FixedTtlQueue {
    chunks: VecDeque<VecDeque<(u64, u128)>>,
    base: Instant,
}

/// Keys per chunk (32 bytes each: 128 KiB).
const CHUNK: usize = 4096;

impl FixedTtlQueue {
    pub(super) fn new() -> Self {
        Self {
            chunks: VecDeque::new(),
            base: Instant::now(),
        }
    }

    pub(super) fn push(&mut self, key: u128, ttl: Duration) {
        let at = millis_since(self.base, Instant::now() + ttl);
        match self.chunks.back_mut() {
            Some(last) if last.len() < CHUNK => last.push_back((at, key)),
            _ => {
                let mut chunk = VecDeque::with_capacity(CHUNK);
                chunk.push_back((at, key));
                self.chunks.push_back(chunk);
            }
        }
    }

    /// Pop the keys whose deadline passed.
    pub(super) fn due(&mut self, now: Instant) -> Vec<u128> {
        let now = millis_since(self.base, now);
        let mut due = Vec::new();
        'chunks: while let Some(first) = self.chunks.front_mut() {
            while let Some(&(at, key)) = first.front() {
                if at > now {
                    break 'chunks;
                }
                first.pop_front();
                due.push(key);
            }
            self.chunks.pop_front();
        }
        due
    }

    /// Read by the metrics, not per message: a sum over the chunks will do.
    pub(super) fn len(&self) -> usize {
        self.chunks.iter().map(VecDeque::len).sum()
    }

    pub(super) fn bytes(&self) -> usize {
        self.chunks.iter().map(VecDeque::capacity).sum::<usize>()
            * std::mem::size_of::<(u64, u128)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_ttl_queue_gives_keys_back_in_order_across_chunks() {
        let mut queue = FixedTtlQueue::new();
        let ttl = Duration::from_secs(60);
        let n = 3 * CHUNK + 17;
        for key in 0..n as u128 {
            queue.push(key, ttl);
        }
        assert_eq!(queue.len(), n);
        assert_eq!(queue.chunks.len(), 4, "chunks of {CHUNK}, none grown");
        assert!(queue.due(Instant::now()).is_empty(), "nothing due yet");
        let due = queue.due(Instant::now() + ttl + Duration::from_millis(5));
        assert_eq!(due, (0..n as u128).collect::<Vec<_>>());
        assert_eq!(queue.len(), 0);
        assert_eq!(queue.bytes(), 0, "emptied chunks are freed");
        queue.push(7, ttl);
        assert_eq!(queue.len(), 1);
    }
}
