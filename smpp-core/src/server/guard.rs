//! Defences of the bind path: a per-IP connection cap, and a failure counter per
//! (IP, system_id) with a lockout that doubles while guessing goes on.

use std::{
    collections::HashMap,
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
            failure_delay: Duration::from_millis(100),
        }
    }
}

#[derive(Debug)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct AccessGuard {
    config: GuardConfig,
    failures: Mutex<HashMap<(IpAddr, String), Failures>>,
    connections: Mutex<HashMap<IpAddr, usize>>,
}

impl AccessGuard {
    pub fn new(config: GuardConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            ..Self::default()
        })
    }

    /// Count a connection from `ip` unless it already has the maximum.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Option<IpConnection> {
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

    /// Is this (IP, system_id) locked out right now?
    pub fn locked(&self, ip: IpAddr, system_id: &str) -> bool {
        let now = Instant::now();
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures
            .get(&(ip, system_id.to_owned()))
            .and_then(|f| f.locked_until)
            .is_some_and(|until| until > now)
    }

    /// Record a failed bind; returns how long to wait before answering it.
    pub fn failed(&self, ip: IpAddr, system_id: &str) -> Duration {
        let now = Instant::now();
        let config = &self.config;
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, f| now.duration_since(f.last) < config.failure_window);
        }
        let entry = failures
            .entry((ip, system_id.to_owned()))
            .or_insert(Failures {
                count: 0,
                last: now,
                locked_until: None,
            });
        if now.duration_since(entry.last) > config.failure_window {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        if entry.count >= config.max_bind_failures {
            let doublings = (entry.count - config.max_bind_failures).min(16);
            let lockout = config
                .lockout
                .saturating_mul(1 << doublings)
                .min(config.max_lockout);
            entry.locked_until = Some(now + lockout);
        }
        let doublings = entry.count.saturating_sub(1).min(8);
        config
            .failure_delay
            .saturating_mul(1 << doublings)
            .min(Duration::from_secs(2))
    }

    pub fn succeeded(&self, ip: IpAddr, system_id: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&(ip, system_id.to_owned()));
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

    #[test]
    fn locks_out_after_repeated_failures_and_forgets_on_success() {
        let guard = AccessGuard::new(GuardConfig {
            max_bind_failures: 3,
            failure_delay: Duration::from_millis(1),
            ..GuardConfig::default()
        });
        let ip: IpAddr = [10, 0, 0, 1].into();
        assert!(!guard.locked(ip, "bank"));
        let first = guard.failed(ip, "bank");
        let second = guard.failed(ip, "bank");
        assert!(second > first, "the delay grows");
        assert!(!guard.locked(ip, "bank"));
        guard.failed(ip, "bank");
        assert!(guard.locked(ip, "bank"));
        assert!(!guard.locked(ip, "other"), "per system_id");
        assert!(!guard.locked([10, 0, 0, 2].into(), "bank"), "per IP");
        guard.succeeded(ip, "bank");
        assert!(!guard.locked(ip, "bank"));
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
