//! Requests we sent and still await a response for, with a per-PDU deadline.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

/// In-flight requests keyed by sequence number. Every request gets the same timeout, so
/// deadlines are ordered by send time and expiry only looks at the front of a queue.
#[derive(Debug)]
pub struct Window<T> {
    capacity: usize,
    timeout: Duration,
    pending: HashMap<u32, (Instant, T)>,
    order: VecDeque<(Instant, u32)>,
}

impl<T> Window<T> {
    pub fn new(capacity: usize, timeout: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            timeout,
            // Allocated as entries arrive: most sessions never fill their window.
            pending: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn has_room(&self) -> bool {
        self.pending.len() < self.capacity
    }

    pub fn insert(&mut self, sequence: u32, now: Instant, item: T) {
        let deadline = now + self.timeout;
        self.pending.insert(sequence, (now, item));
        self.order.push_back((deadline, sequence));
    }

    /// The request answered by `sequence`, with the time it was sent.
    pub fn complete(&mut self, sequence: u32) -> Option<(Instant, T)> {
        let found = self.pending.remove(&sequence);
        // Keep the deadline queue from growing with answered entries.
        while let Some(&(_, seq)) = self.order.front() {
            if self.pending.contains_key(&seq) {
                break;
            }
            self.order.pop_front();
        }
        found
    }

    /// Remove and return every request whose deadline has passed.
    pub fn expire(&mut self, now: Instant) -> Vec<T> {
        let mut expired = Vec::new();
        while let Some(&(deadline, seq)) = self.order.front() {
            if deadline > now {
                break;
            }
            self.order.pop_front();
            if let Some((_, item)) = self.pending.remove(&seq) {
                expired.push(item);
            }
        }
        expired
    }

    /// Everything still pending, oldest first (used when a connection is lost).
    pub fn drain(&mut self) -> Vec<T> {
        let mut items: Vec<(Instant, T)> = self.pending.drain().map(|(_, v)| v).collect();
        items.sort_by_key(|(sent, _)| *sent);
        self.order.clear();
        items.into_iter().map(|(_, item)| item).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_and_expires() {
        let now = Instant::now();
        let mut window = Window::new(2, Duration::from_secs(1));
        window.insert(1, now, "a");
        window.insert(2, now, "b");
        assert!(!window.has_room());
        assert_eq!(window.complete(1).map(|(_, v)| v), Some("a"));
        assert!(window.has_room());
        assert!(window.expire(now).is_empty());
        assert_eq!(window.expire(now + Duration::from_secs(2)), vec!["b"]);
        assert!(window.is_empty());
    }
}
