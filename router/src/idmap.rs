//! Operator message id → our message, for matching receipts (Jasmin's
//! `queue-msgid:<smsc id>` in Redis). Behind a trait so cluster mode can use Redis.
//!
//! Ids are matched tolerantly: case, leading zeros, and hex vs decimal (an operator that
//! answers submit_sm_resp in hex and receipts in decimal, or the reverse).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use smpp_core::receipt;

use crate::receipts::DlrEntry;

pub trait IdMap: Send + Sync + 'static {
    fn insert(&self, connector: &str, operator_id: &str, entry: Arc<DlrEntry>, ttl: Duration);
    /// Find (tolerantly) the entry for a receipt's id.
    fn get(&self, connector: &str, operator_id: &str) -> Option<Arc<DlrEntry>>;
    fn remove(&self, connector: &str, operator_id: &str);
    /// Drop expired entries; returns how many.
    fn purge(&self) -> usize;
}

/// Upper-case, trimmed, leading zeros stripped (Jasmin's normalisation,
/// `smpp_core::receipt::normalize_id`).
pub fn normalize(id: &str) -> String {
    receipt::normalize_id(id)
}

/// The keys a receipt id may have been stored under: as is, and converted between
/// decimal and hex when it reads as a number (`smpp_core::receipt::candidate_keys`).
pub fn candidates(id: &str) -> Vec<String> {
    receipt::candidate_keys(id)
}

type Shard = HashMap<(Arc<str>, String), Slot>;

struct Slot {
    entry: Arc<DlrEntry>,
    expires: Instant,
}

/// In-process id map, sharded to keep lock hold times short under load.
pub struct MemoryIdMap {
    shards: Vec<Mutex<Shard>>,
}

impl Default for MemoryIdMap {
    fn default() -> Self {
        Self {
            shards: (0..16).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl MemoryIdMap {
    pub fn new() -> Self {
        Self::default()
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        let h = key
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        &self.shards[h as usize % self.shards.len()]
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl IdMap for MemoryIdMap {
    fn insert(&self, connector: &str, operator_id: &str, entry: Arc<DlrEntry>, ttl: Duration) {
        let key = normalize(operator_id);
        self.shard(&key).lock().insert(
            (Arc::from(connector), key),
            Slot {
                entry,
                expires: Instant::now() + ttl,
            },
        );
    }

    fn get(&self, connector: &str, operator_id: &str) -> Option<Arc<DlrEntry>> {
        let now = Instant::now();
        for key in candidates(operator_id) {
            let shard = self.shard(&key).lock();
            if let Some(slot) = shard.get(&(Arc::from(connector), key))
                && slot.expires > now
            {
                return Some(slot.entry.clone());
            }
        }
        None
    }

    fn remove(&self, connector: &str, operator_id: &str) {
        // Only the entry a lookup would have matched: the other spellings of this id
        // (hex/decimal) may be the keys of different messages.
        for key in candidates(operator_id) {
            if self
                .shard(&key)
                .lock()
                .remove(&(Arc::from(connector), key))
                .is_some()
            {
                return;
            }
        }
    }

    fn purge(&self) -> usize {
        let now = Instant::now();
        let mut removed = 0;
        for shard in &self.shards {
            let mut shard = shard.lock();
            let before = shard.len();
            shard.retain(|_, slot| slot.expires > now);
            removed += before - shard.len();
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerant_candidates() {
        assert_eq!(normalize(" 00abC "), "ABC");
        assert!(candidates("255").contains(&"FF".to_owned()));
        assert!(candidates("ff").contains(&"255".to_owned()));
        assert!(candidates("000123").contains(&"123".to_owned()));
    }

    #[test]
    fn removing_one_id_leaves_its_hex_decimal_aliases_alone() {
        use crate::{model::Address, receipts::DlrEntry};
        let entry = |id: &str| {
            Arc::new(DlrEntry {
                id: Arc::from(id),
                uid: Arc::from("u"),
                username: Arc::from("u"),
                origin: crate::model::Origin::Http,
                source: Address::default(),
                destination: Address::default(),
                registered_delivery: 1,
                dlr: None,
                connector: Arc::from("c"),
                submitted_at: chrono::Local::now(),
                part: 0,
                multipart: None,
            })
        };
        let map = MemoryIdMap::new();
        let ttl = Duration::from_secs(60);
        // Operator ids 0x274 and 0x628: "628" is also 0x274 written in decimal.
        map.insert("c", "274", entry("a"), ttl);
        map.insert("c", "628", entry("b"), ttl);
        map.remove("c", "274");
        assert!(map.get("c", "274").is_none_or(|e| &*e.id != "a"));
        assert_eq!(
            map.get("c", "628").map(|e| e.id.to_string()),
            Some("b".into())
        );
    }
}
