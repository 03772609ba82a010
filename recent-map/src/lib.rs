//! A bounded map of the entries inserted last: at least the last `size` are kept, at most
//! twice as many, the oldest forgotten first.
//!
//! The hot paths that remember what they recently finished (a message's last state for
//! query_sm, a settled charge for a retried commit) insert once per message under a lock
//! every message takes. Three ways a map behind such a lock stalls everything for
//! milliseconds, each seen in an open-loop run of the gateway:
//! - growing: a resize rehashes every entry (15 ms at 50,000 entries);
//! - FIFO removal: tombstones pile up until the map rehashes itself in place (5.7 ms);
//! - forgetting in bulk: freeing 100,000 entries one by one (4.5 ms).
//!
//! So: two generations instead of a FIFO. Inserts go to `current`; when it holds `size`
//! entries it becomes `previous` and the old `previous` is forgotten whole. Each map is
//! made at its full size, so it never grows; a forgotten one is emptied on a blocking
//! thread (off the async threads and off the caller's lock) and comes back as the next
//! generation, so after the first turns nothing is allocated either.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Arc;

use parking_lot::Mutex;

pub struct RecentMap<K, V, S = RandomState> {
    current: HashMap<K, V, S>,
    previous: HashMap<K, V, S>,
    /// Entries per generation; 0 keeps nothing.
    size: usize,
    /// A forgotten generation, emptied, waiting to be the next one.
    spare: Arc<Mutex<Option<HashMap<K, V, S>>>>,
}

impl<K, V, S> RecentMap<K, V, S>
where
    K: Eq + Hash + Send + 'static,
    V: Send + 'static,
    S: BuildHasher + Default + Send + 'static,
{
    /// Keeps at least the last `size` entries. Allocates nothing until the first insert.
    pub fn new(size: usize) -> Self {
        Self {
            current: HashMap::default(),
            previous: HashMap::default(),
            size,
            spare: Arc::default(),
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.current.get(key).or_else(|| self.previous.get(key))
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Inserts or replaces `key`'s value (a replaced key stays in its generation only
    /// if it is in the current one).
    pub fn insert(&mut self, key: K, value: V) {
        if self.size == 0 {
            return;
        }
        if self.current.capacity() == 0 {
            self.current = self.generation();
            self.previous = self.generation();
        } else if self.current.len() >= self.size && !self.current.contains_key(&key) {
            self.turn();
        }
        self.current.insert(key, value);
    }

    /// Entries kept now (both generations).
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn turn(&mut self) {
        // The spare is back long before the next turn, `size` inserts later; if it is
        // not, a new map it is.
        let next = self
            .spare
            .lock()
            .take()
            .unwrap_or_else(|| self.generation());
        let full = std::mem::replace(&mut self.current, next);
        let forgotten = std::mem::replace(&mut self.previous, full);
        let spare = self.spare.clone();
        let empty_and_keep = move || {
            let mut forgotten = forgotten;
            forgotten.clear();
            *spare.lock() = Some(forgotten);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(empty_and_keep)),
            Err(_) => empty_and_keep(),
        }
    }

    fn generation(&self) -> HashMap<K, V, S> {
        HashMap::with_capacity_and_hasher(self.size, S::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> String {
        format!("key-{n}")
    }

    #[test]
    fn the_last_size_are_kept_and_nothing_older_than_twice_that() {
        let mut map = RecentMap::<String, usize>::new(100);
        for n in 0..1_000 {
            map.insert(key(n), n);
            for back in 0..100.min(n + 1) {
                assert_eq!(map.get(key(n - back).as_str()), Some(&(n - back)));
            }
            if n >= 200 {
                assert!(!map.contains_key(key(n - 200).as_str()), "{n}");
            }
            assert!(map.len() <= 200);
        }
    }

    #[test]
    fn a_replaced_value_is_found_and_counted_once() {
        let mut map = RecentMap::<String, usize>::new(10);
        map.insert(key(1), 1);
        map.insert(key(1), 2);
        assert_eq!(map.get("key-1"), Some(&2));
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn nothing_is_allocated_before_the_first_insert_and_no_generation_grows() {
        let mut map = RecentMap::<String, usize>::new(500);
        assert_eq!(map.current.capacity(), 0);
        map.insert(key(0), 0);
        let born = map.current.capacity();
        assert!(born >= 500);
        for n in 1..5_000 {
            map.insert(key(n), n);
            assert!(map.current.capacity() >= 500);
            assert!(map.current.capacity() <= born, "grew at {n}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_forgotten_generation_is_emptied_aside_and_comes_back() {
        let mut map = RecentMap::<String, usize>::new(100);
        for n in 0..200 {
            map.insert(key(n), n);
        }
        // One turn so far, at the 101st insert: the generation it forgot (the empty one
        // made with the first insert) is emptied on a blocking thread and kept.
        for _ in 0..100 {
            if map.spare.lock().is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let spare = map.spare.lock().as_ref().map(|m| (m.len(), m.capacity()));
        let (len, capacity) = spare.expect("the forgotten generation came back");
        assert_eq!(len, 0);
        assert!(capacity >= 100);
        // The next turn takes it.
        map.insert(key(200), 200);
        assert_eq!(map.current.len(), 1);
        assert_eq!(map.previous.len(), 100);
    }

    #[test]
    fn size_zero_keeps_nothing() {
        let mut map = RecentMap::<String, usize>::new(0);
        map.insert(key(1), 1);
        assert!(map.is_empty());
    }
}
