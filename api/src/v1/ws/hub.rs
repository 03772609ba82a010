//! Every user's recent WebSocket events and the live feed of new ones. Events are
//! numbered in one sequence that only grows, across restarts too: a number is at least
//! the microsecond it was issued in, so a process never reuses the numbers of an
//! earlier one, even of events that earlier one lost.

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::extract::ws::Utf8Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use super::{
    super::time::now_us,
    event_log::{self, EventLog, Restored},
};

/// How long events are kept for resuming.
pub const KEEP: Duration = Duration::from_secs(3600);
/// Events kept per user at most (older ones go first).
pub const KEEP_MAX: usize = 100_000;
/// Live events buffered per user for slow sockets before they re-read the backlog.
const LIVE: usize = 1024;
/// Events a socket takes from the backlog under one lock, and writes with one flush.
pub(super) const READ_BATCH: usize = 256;

/// An event as every socket sends it: serialised once, shared (a clone is a refcount).
pub(super) type Frame = Utf8Bytes;

struct Kept {
    seq: u64,
    at: Instant,
    text: Frame,
}

struct UserLog {
    kept: VecDeque<Kept>,
    live: broadcast::Sender<u64>,
}

impl UserLog {
    fn new() -> Self {
        Self {
            kept: VecDeque::new(),
            live: broadcast::channel(LIVE).0,
        }
    }

    fn trim(&mut self, now: Instant) {
        while self
            .kept
            .front()
            .is_some_and(|k| now.duration_since(k.at) > KEEP || self.kept.len() > KEEP_MAX)
        {
            self.kept.pop_front();
        }
    }
}

pub struct Hub {
    epoch: u64,
    /// The last number issued.
    last: AtomicU64,
    users: Mutex<HashMap<Arc<str>, UserLog>>,
    /// Where events outlive the process, if anywhere.
    log: Option<EventLog>,
    /// Segments of earlier processes, until they are read back.
    earlier: Mutex<Vec<PathBuf>>,
    restored: AtomicBool,
    restored_notify: Notify,
}

impl Default for Hub {
    /// Events in memory only: tokens die with the process.
    fn default() -> Self {
        Self::with_log(None, rand::random::<u64>() >> 16, Vec::new())
    }
}

impl Hub {
    /// Events also kept in `dir`: tokens outlive restarts. Falls back to memory only
    /// (and says why) when the directory cannot be used.
    pub fn persistent(dir: &Path) -> Self {
        match EventLog::open(dir) {
            Ok((log, earlier)) => {
                let epoch = log.epoch();
                Self::with_log(Some(log), epoch, earlier)
            }
            Err(error) => {
                tracing::warn!(%error, dir = %dir.display(), "WebSocket events kept in memory only: resume tokens will not outlive a restart");
                Self::default()
            }
        }
    }

    fn with_log(log: Option<EventLog>, epoch: u64, earlier: Vec<PathBuf>) -> Self {
        let nothing_to_read = earlier.is_empty();
        Self {
            epoch,
            last: AtomicU64::new(0),
            users: Mutex::new(HashMap::new()),
            log,
            earlier: Mutex::new(earlier),
            restored: AtomicBool::new(nothing_to_read),
            restored_notify: Notify::new(),
        }
    }

    pub(super) fn token(&self, seq: u64) -> String {
        format!("{:x}-{seq}", self.epoch)
    }

    /// The sequence number in `token`, if this log issued it.
    pub(super) fn parse(&self, token: &str) -> Option<u64> {
        let (epoch, seq) = token.split_once('-')?;
        (u64::from_str_radix(epoch, 16).ok()? == self.epoch)
            .then(|| seq.parse().ok())
            .flatten()
    }

    /// The last number issued (a socket without a token starts after it).
    pub(super) fn last_issued(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }

    /// `count` numbers in a row, none below the current microsecond.
    fn issue(&self, count: u64) -> u64 {
        let now = u64::try_from(now_us()).unwrap_or(0);
        let mut current = self.last.load(Ordering::Acquire);
        loop {
            let first = current.max(now) + 1;
            match self.last.compare_exchange_weak(
                current,
                first + count - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return first,
                Err(seen) => current = seen,
            }
        }
    }

    /// Keeps `events` (each for its user) and hands them to connected sockets. With a
    /// log, they are written before any socket can see them: one write to the page
    /// cache per batch (no fsync), short enough for the async thread it runs on.
    pub fn publish(&self, events: Vec<(Arc<str>, Value)>) {
        if events.is_empty() {
            return;
        }
        let first = self.issue(events.len() as u64);
        let at_ms = event_log::now_ms();
        let mut lines = Vec::new();
        let frames: Vec<(Arc<str>, u64, Frame)> = events
            .into_iter()
            .zip(first..)
            .map(|((uid, mut event), seq)| {
                event["token"] = json!(self.token(seq));
                let text = event.to_string();
                if self.log.is_some() {
                    event_log::line(&mut lines, seq, at_ms, &uid, &text);
                }
                (uid, seq, Frame::from(text))
            })
            .collect();
        if let Some(log) = &self.log {
            log.append(&lines);
        }
        let now = Instant::now();
        let mut users = self.users.lock();
        for (uid, seq, text) in frames {
            let log = users.entry(uid).or_insert_with(UserLog::new);
            log.kept.push_back(Kept { seq, at: now, text });
            log.trim(now);
            let _ = log.live.send(seq);
        }
    }

    /// Reads the events of earlier processes back (blocking: run it off the async
    /// threads). Sockets resuming meanwhile wait for it ([`Hub::restored`]).
    pub fn restore(&self) {
        let earlier = std::mem::take(&mut *self.earlier.lock());
        if !earlier.is_empty() {
            let keep_ms = i64::try_from(KEEP.as_millis()).unwrap_or(i64::MAX);
            let users = event_log::read_back(&earlier, event_log::now_ms() - keep_ms, KEEP_MAX);
            self.insert_restored(users);
        }
        self.restored.store(true, Ordering::Release);
        self.restored_notify.notify_waiters();
    }

    /// Puts events read back in front of what this process published since.
    fn insert_restored(&self, restored: HashMap<Arc<str>, Vec<Restored>>) {
        let (now, now_ms) = (Instant::now(), event_log::now_ms());
        let newest = restored
            .values()
            .filter_map(|events| events.last())
            .map(|e| e.seq)
            .max()
            .unwrap_or(0);
        // Numbers issued from here on stay above the restored ones (a clock set back).
        self.last.fetch_max(newest, Ordering::AcqRel);
        let mut users = self.users.lock();
        for (uid, events) in restored {
            let log = users.entry(uid).or_insert_with(UserLog::new);
            let mut kept: VecDeque<Kept> = events
                .into_iter()
                .map(|e| {
                    let age = Duration::from_millis(u64::try_from(now_ms - e.at_ms).unwrap_or(0));
                    Kept {
                        seq: e.seq,
                        at: now.checked_sub(age).unwrap_or(now),
                        text: Frame::from(e.text),
                    }
                })
                .collect();
            kept.extend(log.kept.drain(..));
            kept.make_contiguous().sort_by_key(|k| k.seq);
            log.kept = kept;
            log.trim(now);
        }
    }

    /// Waits (at most `limit`) until earlier processes' events are back.
    pub(super) async fn restored(&self, limit: Duration) {
        let wait = async {
            loop {
                let notified = self.restored_notify.notified();
                if self.restored.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }

    /// Drops users whose events are all older than [`KEEP`] and who have no socket.
    pub fn purge(&self) {
        let now = Instant::now();
        self.users.lock().retain(|_, log| {
            log.kept.retain(|k| now.duration_since(k.at) <= KEEP);
            !log.kept.is_empty() || log.live.receiver_count() > 0
        });
    }

    /// A live subscription and `uid`'s kept events after `after`, taken together so
    /// nothing falls between them.
    pub(super) fn subscribe(
        &self,
        uid: &Arc<str>,
        after: u64,
    ) -> (broadcast::Receiver<u64>, Vec<(u64, Frame)>) {
        let mut users = self.users.lock();
        let log = users.entry(uid.clone()).or_insert_with(UserLog::new);
        (
            log.live.subscribe(),
            Self::after(log, after, u64::MAX, usize::MAX),
        )
    }

    /// At most `limit` kept events past `after` and up to `up_to`.
    fn after(log: &UserLog, after: u64, up_to: u64, limit: usize) -> Vec<(u64, Frame)> {
        // Sequence numbers only grow: find the first one past `after`.
        let start = log.kept.partition_point(|k| k.seq <= after);
        log.kept
            .range(start..)
            .take_while(|k| k.seq <= up_to)
            .take(limit)
            .map(|k| (k.seq, k.text.clone()))
            .collect()
    }

    /// A socket's next events: a batch, not the whole backlog (a hundred sockets each
    /// copying everything kept, for every event, was the fan-out's cost).
    pub(super) fn kept_after(&self, uid: &str, after: u64, up_to: u64) -> Vec<(u64, Frame)> {
        self.users
            .lock()
            .get(uid)
            .map(|log| Self::after(log, after, up_to, READ_BATCH))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish_one(hub: &Hub, uid: &Arc<str>, event: Value) {
        hub.publish(vec![(uid.clone(), event)]);
    }

    fn token_of(frame: &Frame) -> String {
        let event: Value = serde_json::from_str(frame.as_str()).expect("json");
        event["token"].as_str().expect("token").to_owned()
    }

    #[test]
    fn tokens_resume_within_the_process() {
        let hub = Hub::default();
        let uid: Arc<str> = Arc::from("u1");
        for i in 0..5 {
            publish_one(&hub, &uid, json!({"n": i}));
        }
        let kept = hub.kept_after("u1", 0, u64::MAX);
        assert_eq!(kept.len(), 5);
        let token = token_of(&kept[1].1);
        assert_eq!(hub.parse(&token), Some(kept[1].0));
        assert_eq!(hub.kept_after("u1", kept[1].0, u64::MAX).len(), 3);
        assert_eq!(hub.kept_after("u1", kept[1].0, kept[3].0).len(), 2, "up to");
        assert_eq!(Hub::default().parse(&token), None);
        assert!(hub.kept_after("u2", 0, u64::MAX).is_empty());
        for i in 0..(READ_BATCH + 10) {
            publish_one(&hub, &uid, json!({"m": i}));
        }
        assert_eq!(
            hub.kept_after("u1", 0, u64::MAX).len(),
            READ_BATCH,
            "a batch"
        );
    }

    #[test]
    fn tokens_resume_across_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (u1, u2): (Arc<str>, Arc<str>) = (Arc::from("u1"), Arc::from("u2"));
        let first = Hub::persistent(dir.path());
        first.publish(vec![
            (u1.clone(), json!({"n": 1})),
            (u2.clone(), json!({"n": 2})),
            (u1.clone(), json!({"n": 3})),
        ]);
        let kept = first.kept_after("u1", 0, u64::MAX);
        let token = token_of(&kept[0].1);
        let last_before = first.last_issued();
        drop(first);

        let second = Hub::persistent(dir.path());
        // Published by the new process before the old events are read back.
        publish_one(&second, &u1, json!({"n": 4}));
        second.restore();
        let seq = second.parse(&token).expect("the token is still honoured");
        let after: Vec<Value> = second
            .kept_after("u1", seq, u64::MAX)
            .iter()
            .map(|(_, f)| serde_json::from_str::<Value>(f.as_str()).expect("json")["n"].clone())
            .collect();
        assert_eq!(after, [json!(3), json!(4)], "in order, nothing missed");
        assert!(second.last_issued() > last_before);
        assert_eq!(second.kept_after("u2", 0, u64::MAX).len(), 1);
        // Memory-only hubs do not honour it.
        assert_eq!(Hub::default().parse(&token), None);
    }
}
