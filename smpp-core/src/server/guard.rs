//! Defences of the bind path: a per-IP connection cap, and failure counters per
//! (IP, system_id) and per IP with a lockout that doubles while guessing goes on.
//!
//! The counters live in fixed-capacity LRU maps, so one address cycling random
//! system_ids costs memory and time bounded per bind, under a lock held for a few hash
//! operations. An attempt is counted before its password is verified.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Limits of the bind path.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Connections at once from one IP address.
    pub max_connections_per_ip: usize,
    /// Failed binds from one (IP, system_id) before it is locked out.
    pub max_bind_failures: u32,
    /// First lockout; doubles with each further failure.
    pub lockout: Duration,
    pub max_lockout: Duration,
    /// Failures older than this are forgotten.
    pub failure_window: Duration,
    /// Failed binds from one IP, whatever the system_id, before the IP is locked out.
    pub max_bind_failures_per_ip: u32,
    /// (IP, system_id) pairs and IPs whose failures are remembered; beyond it the least
    /// recently seen are forgotten, at constant cost.
    pub max_tracked: usize,
    /// Each failed bind is answered after this delay, doubled per failure (capped at 2 s),
    /// so guessing over many connections costs time even before the lockout.
    pub failure_delay: Duration,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            max_connections_per_ip: 256,
            max_bind_failures: 5,
            lockout: Duration::from_secs(30),
            max_lockout: Duration::from_secs(30 * 60),
            failure_window: Duration::from_secs(15 * 60),
            max_bind_failures_per_ip: 100,
            max_tracked: 100_000,
            failure_delay: Duration::from_millis(100),
        }
    }
}

#[derive(Debug)]
struct Failures {
    /// Failures, counting the binds still being verified (see `AccessGuard::begin`).
    count: u32,
    /// Of `count`, the binds still being verified.
    in_flight: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl Failures {
    fn new(now: Instant) -> Self {
        Self {
            count: 0,
            in_flight: 0,
            last: now,
            locked_until: None,
        }
    }

    fn locked(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }

    /// Locked out by failures that are settled, not by binds still being verified.
    fn locked_by_failures(&self, now: Instant, max: u32) -> bool {
        self.locked(now) && self.count.saturating_sub(self.in_flight) >= max
    }

    /// Count one more failure; from the `max`-th on, lock out for a lockout that doubles.
    fn record(&mut self, now: Instant, max: u32, config: &GuardConfig) {
        if now.duration_since(self.last) > config.failure_window {
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.last = now;
        if self.count >= max {
            let doublings = (self.count - max).min(16);
            let lockout = config
                .lockout
                .saturating_mul(1 << doublings)
                .min(config.max_lockout);
            self.locked_until = now.checked_add(lockout);
        }
    }
}

/// Failure counters per (IP, system_id) and per IP, each bounded.
#[derive(Debug)]
struct Tracked {
    by_user: Lru<(IpAddr, String), Failures>,
    /// One address cycling through system_ids is caught here; without it, it could
    /// also push its own lockout out of the bounded `by_user`.
    by_ip: Lru<IpAddr, Failures>,
}

#[derive(Debug)]
pub struct AccessGuard {
    config: GuardConfig,
    // Every critical section below is a few hash operations: no scan, no await.
    failures: Mutex<Tracked>,
    connections: Mutex<HashMap<IpAddr, usize>>,
}

impl AccessGuard {
    pub fn new(config: GuardConfig) -> Arc<Self> {
        let capacity = config.max_tracked.max(1);
        Arc::new(Self {
            failures: Mutex::new(Tracked {
                by_user: Lru::new(capacity),
                by_ip: Lru::new(capacity),
            }),
            connections: Mutex::default(),
            config,
        })
    }

    /// Count a connection from `ip` unless it already has the maximum.
    pub(crate) fn open(self: &Arc<Self>, ip: IpAddr) -> Option<IpConnection> {
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        let count = connections.entry(ip).or_default();
        if *count >= self.config.max_connections_per_ip {
            return None;
        }
        *count += 1;
        Some(IpConnection {
            guard: self.clone(),
            ip,
        })
    }

    /// A bind from (IP, system_id) is about to be verified. None: locked out, refuse it
    /// unverified. Otherwise the attempt is already counted as a failure (so parallel
    /// binds cannot all be verified before the lockout starts) until [`Self::succeeded`]
    /// clears it; the delay is what to wait before answering if it does fail.
    pub fn begin(&self, ip: IpAddr, system_id: &str) -> Option<Duration> {
        if self.is_locked(ip, system_id) {
            return None;
        }
        let delay = self.failed(ip, system_id);
        self.update_in_flight(ip, system_id, |n| n.saturating_add(1));
        Some(delay)
    }

    /// Moves the count of binds in flight of (ip, system_id) and of ip.
    fn update_in_flight(&self, ip: IpAddr, system_id: &str, change: impl Fn(u32) -> u32) {
        let key = (ip, system_id.to_owned());
        let mut tracked = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = tracked.by_user.get_mut(&key) {
            f.in_flight = change(f.in_flight);
        }
        if let Some(f) = tracked.by_ip.get_mut(&ip) {
            f.in_flight = change(f.in_flight);
        }
    }

    /// [`Self::begin`] refused (ip, system_id), but only because of binds still being
    /// verified: many binds at once from one client. Such a bind should wait for them
    /// rather than be refused; once they settle it either gets its turn (they were good)
    /// or meets a real lockout (they were guesses), so guesses are still verified only a
    /// few at a time.
    pub fn held_back_by_binds_in_flight(&self, ip: IpAddr, system_id: &str) -> bool {
        let now = Instant::now();
        let key = (ip, system_id.to_owned());
        let config = &self.config;
        let tracked = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let user = tracked.by_user.peek(&key);
        let by_ip = tracked.by_ip.peek(&ip);
        let in_flight = user.map_or(0, |f| f.in_flight) + by_ip.map_or(0, |f| f.in_flight);
        in_flight > 0
            && !user.is_some_and(|f| f.locked_by_failures(now, config.max_bind_failures))
            && !by_ip.is_some_and(|f| f.locked_by_failures(now, config.max_bind_failures_per_ip))
    }

    /// The bind begun with [`Self::begin`] failed, or was abandoned: it is no longer in
    /// flight, and stays counted as a failure.
    pub fn settled_failure(&self, ip: IpAddr, system_id: &str) {
        self.update_in_flight(ip, system_id, |n| n.saturating_sub(1));
    }

    /// The bind begun with [`Self::begin`] succeeded: forget the (IP, system_id)'s
    /// failures and take this attempt back from the IP's count.
    pub fn succeeded(&self, ip: IpAddr, system_id: &str) {
        let key = (ip, system_id.to_owned());
        let mut tracked = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        tracked.by_user.remove(&key);
        if let Some(f) = tracked.by_ip.get_mut(&ip) {
            f.count = f.count.saturating_sub(1);
            f.in_flight = f.in_flight.saturating_sub(1);
            // A lockout that only binds still in flight caused (many good binds at once
            // from one address) ends once they turn out good; real failures stay counted.
            if f.count < self.config.max_bind_failures_per_ip {
                f.locked_until = None;
            }
        }
    }

    /// For callers whose requests from one address come many at a time (an HTTP API
    /// sending its password with each request), where counting every attempt up front
    /// would lock out good traffic: is (IP, name) locked out now?
    pub fn is_locked(&self, ip: IpAddr, name: &str) -> bool {
        let now = Instant::now();
        let key = (ip, name.to_owned());
        let tracked = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        tracked.by_ip.peek(&ip).is_some_and(|f| f.locked(now))
            || tracked.by_user.peek(&key).is_some_and(|f| f.locked(now))
    }

    /// A verification of (IP, name) failed: count it, and return how long to wait
    /// before answering (growing with the failures, as for binds).
    pub fn failed(&self, ip: IpAddr, name: &str) -> Duration {
        let now = Instant::now();
        let config = &self.config;
        let mut tracked = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Tracked { by_user, by_ip } = &mut *tracked;
        let user = by_user.get_or_insert_with((ip, name.to_owned()), || Failures::new(now));
        user.record(now, config.max_bind_failures, config);
        let count = user.count;
        by_ip.get_or_insert_with(ip, || Failures::new(now)).record(
            now,
            config.max_bind_failures_per_ip,
            config,
        );
        drop(tracked);
        let doublings = count.saturating_sub(1).min(8);
        config
            .failure_delay
            .saturating_mul(1 << doublings)
            .min(Duration::from_secs(2))
    }

    /// A verification of (IP, name) succeeded: its failures are forgiven.
    pub fn cleared(&self, ip: IpAddr, name: &str) {
        let key = (ip, name.to_owned());
        let mut tracked = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if tracked.by_user.peek(&key).is_some() {
            tracked.by_user.remove(&key);
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> (usize, usize) {
        let tracked = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        (tracked.by_user.len(), tracked.by_ip.len())
    }
}

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Slot<K, V> {
    key: K,
    value: V,
    prev: usize,
    next: usize,
}

/// At most `capacity` entries; making room forgets the least recently used one. Every
/// operation is one or two hash operations and a few index updates: never a scan.
#[derive(Debug)]
struct Lru<K, V> {
    map: HashMap<K, usize>,
    slots: Vec<Slot<K, V>>,
    /// Slots of removed entries, reused before the vector grows.
    free: Vec<usize>,
    /// Most recently used.
    head: usize,
    /// Least recently used: the next to go.
    tail: usize,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            capacity: capacity.max(1),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }

    fn peek(&self, key: &K) -> Option<&V> {
        let &index = self.map.get(key)?;
        Some(&self.slots[index].value)
    }

    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let index = self.map.get(key).copied()?;
        self.unlink(index);
        self.push_front(index);
        Some(&mut self.slots[index].value)
    }

    fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if let Some(index) = self.map.get(&key).copied() {
            self.unlink(index);
            self.push_front(index);
            return &mut self.slots[index].value;
        }
        let slot = Slot {
            key: key.clone(),
            value: make(),
            prev: NIL,
            next: NIL,
        };
        let index = if self.map.len() >= self.capacity && self.tail != NIL {
            let oldest = self.tail;
            self.unlink(oldest);
            let evicted = std::mem::replace(&mut self.slots[oldest], slot);
            self.map.remove(&evicted.key);
            oldest
        } else if let Some(index) = self.free.pop() {
            self.slots[index] = slot;
            index
        } else {
            self.slots.push(slot);
            self.slots.len() - 1
        };
        self.map.insert(key, index);
        self.push_front(index);
        &mut self.slots[index].value
    }

    fn remove(&mut self, key: &K) {
        if let Some(index) = self.map.remove(key) {
            self.unlink(index);
            self.free.push(index);
        }
    }

    fn unlink(&mut self, index: usize) {
        let (prev, next) = (self.slots[index].prev, self.slots[index].next);
        match prev {
            NIL => self.head = next,
            prev => self.slots[prev].next = next,
        }
        match next {
            NIL => self.tail = prev,
            next => self.slots[next].prev = prev,
        }
        self.slots[index].prev = NIL;
        self.slots[index].next = NIL;
    }

    fn push_front(&mut self, index: usize) {
        self.slots[index].prev = NIL;
        self.slots[index].next = self.head;
        match self.head {
            NIL => self.tail = index,
            head => self.slots[head].prev = index,
        }
        self.head = index;
    }
}

/// Holds one of an IP's connection slots until dropped.
#[derive(Debug)]
pub(crate) struct IpConnection {
    guard: Arc<AccessGuard>,
    ip: IpAddr,
}

impl Drop for IpConnection {
    fn drop(&mut self) {
        let mut connections = self
            .guard
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = connections.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                connections.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(max_bind_failures: u32) -> Arc<AccessGuard> {
        AccessGuard::new(GuardConfig {
            max_bind_failures,
            failure_delay: Duration::from_millis(1),
            ..GuardConfig::default()
        })
    }

    /// A bind that fails: begun, never succeeded.
    fn fail(guard: &AccessGuard, ip: IpAddr, system_id: &str) -> Option<Duration> {
        guard.begin(ip, system_id)
    }

    #[test]
    fn locks_out_after_repeated_failures_and_forgets_on_success() {
        let guard = quick(3);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let first = fail(&guard, ip, "bank").unwrap();
        let second = fail(&guard, ip, "bank").unwrap();
        assert!(second > first, "the delay grows");
        // The third attempt is still verified; it is what starts the lockout.
        assert!(fail(&guard, ip, "bank").is_some());
        assert!(guard.begin(ip, "bank").is_none(), "locked out");
        assert!(guard.begin(ip, "other").is_some(), "per system_id");
        assert!(
            guard.begin([10, 0, 0, 2].into(), "bank").is_some(),
            "per IP"
        );

        let ip: IpAddr = [10, 0, 0, 3].into();
        fail(&guard, ip, "bank");
        fail(&guard, ip, "bank");
        assert!(guard.begin(ip, "bank").is_some());
        guard.succeeded(ip, "bank");
        for _ in 0..2 {
            assert!(
                fail(&guard, ip, "bank").is_some(),
                "success forgot the failures"
            );
        }
    }

    #[test]
    fn attempts_count_before_they_are_verified() {
        // Ten binds at once, none answered yet: only the first three get verified.
        let guard = quick(3);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let verified = (0..10)
            .filter(|_| guard.begin(ip, "bank").is_some())
            .count();
        assert_eq!(verified, 3);
    }

    #[test]
    fn one_address_cycling_system_ids_is_locked_out() {
        let guard = AccessGuard::new(GuardConfig {
            max_bind_failures_per_ip: 10,
            ..GuardConfig::default()
        });
        let ip: IpAddr = [10, 0, 0, 1].into();
        for n in 0..10 {
            assert!(fail(&guard, ip, &format!("guess{n}")).is_some());
        }
        assert!(guard.begin(ip, "bank").is_none());
        assert!(guard.begin([10, 0, 0, 2].into(), "bank").is_some());
    }

    #[test]
    fn many_good_binds_at_once_from_one_address_do_not_keep_it_locked() {
        let guard = AccessGuard::new(GuardConfig {
            max_bind_failures_per_ip: 10,
            ..GuardConfig::default()
        });
        let ip: IpAddr = [10, 0, 0, 1].into();
        for n in 0..10 {
            assert!(guard.begin(ip, &format!("user{n}")).is_some());
        }
        assert!(guard.begin(ip, "user10").is_none(), "ten in flight");
        for n in 0..10 {
            guard.succeeded(ip, &format!("user{n}"));
        }
        assert!(guard.begin(ip, "user10").is_some());
    }

    #[test]
    fn binds_in_flight_hold_others_back_without_locking_them_out() {
        let guard = quick(3);
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(guard.begin(ip, "bank").is_some());
        }
        assert!(guard.begin(ip, "bank").is_none(), "three in flight");
        assert!(
            guard.held_back_by_binds_in_flight(ip, "bank"),
            "only held back"
        );
        // The first turns out good: the others get their turn.
        guard.succeeded(ip, "bank");
        assert!(guard.begin(ip, "bank").is_some());
    }

    #[test]
    fn guesses_in_flight_that_fail_become_a_real_lockout() {
        let guard = quick(3);
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(guard.begin(ip, "bank").is_some());
        }
        assert!(guard.held_back_by_binds_in_flight(ip, "bank"));
        for _ in 0..3 {
            guard.settled_failure(ip, "bank");
        }
        assert!(guard.begin(ip, "bank").is_none());
        assert!(
            !guard.held_back_by_binds_in_flight(ip, "bank"),
            "locked out by settled failures: refuse, do not wait"
        );
        assert!(
            !guard.held_back_by_binds_in_flight(ip, "other"),
            "nothing in flight"
        );
    }

    #[test]
    fn lru_keeps_at_most_its_capacity_and_forgets_the_least_recent() {
        let mut lru: Lru<u32, u32> = Lru::new(3);
        for key in 0..3 {
            *lru.get_or_insert_with(key, || 0) += 1;
        }
        // Touch 0 so that 1 is now the least recently used.
        assert_eq!(lru.get_mut(&0).copied(), Some(1));
        lru.get_or_insert_with(3, || 0);
        assert_eq!(lru.len(), 3);
        assert!(lru.peek(&1).is_none(), "the least recent went");
        assert!(lru.peek(&0).is_some() && lru.peek(&2).is_some() && lru.peek(&3).is_some());
        lru.remove(&2);
        assert_eq!(lru.len(), 2);
        for key in 10..1000 {
            lru.get_or_insert_with(key, || key);
            assert!(lru.len() <= 3);
        }
        assert_eq!(lru.slots.len(), 3, "slots are reused, not added");
        assert_eq!(lru.peek(&999), Some(&999));
        assert_eq!(lru.peek(&997), Some(&997));
        assert!(lru.peek(&996).is_none());
    }

    #[test]
    fn failures_are_bounded_and_cost_the_same_when_full() {
        let capacity = 100_000;
        let guard = AccessGuard::new(GuardConfig {
            max_tracked: capacity,
            ..GuardConfig::default()
        });
        let ip = |n: u32| IpAddr::from((n % 50_000 + 1).to_be_bytes());
        let start = Instant::now();
        for n in 0..capacity as u32 {
            guard.begin(ip(n), &format!("id{n}"));
        }
        let filling = start.elapsed();
        let (users, ips) = guard.tracked();
        assert_eq!(users, capacity);
        assert!(ips <= capacity);

        // Full: the next as many failures evict instead of rescanning. A scan per failure
        // (what this replaced) would take 10^10 steps here; keep a wide margin for CI.
        let start = Instant::now();
        for n in capacity as u32..2 * capacity as u32 {
            guard.begin(ip(n), &format!("id{n}"));
        }
        let when_full = start.elapsed();
        assert_eq!(guard.tracked().0, capacity);
        assert!(
            when_full < filling * 10 + Duration::from_secs(2),
            "full map: {when_full:?} for {capacity} failures, filling took {filling:?}"
        );
    }

    #[test]
    fn caps_connections_per_ip() {
        let guard = AccessGuard::new(GuardConfig {
            max_connections_per_ip: 2,
            ..GuardConfig::default()
        });
        let ip: IpAddr = [10, 0, 0, 1].into();
        let a = guard.open(ip).unwrap();
        let _b = guard.open(ip).unwrap();
        assert!(guard.open(ip).is_none());
        drop(a);
        assert!(guard.open(ip).is_some());
    }
}
