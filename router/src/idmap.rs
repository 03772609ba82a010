//! Operator message id → our message, for matching receipts (Jasmin's
//! `queue-msgid:<smsc id>` in Redis). Behind a trait so cluster mode can use Redis.
//!
//! Ids are matched ignoring case and leading zeros. Hex vs decimal (an operator that
//! answers submit_sm_resp in hex and receipts in decimal, or the reverse) follows the
//! connector's `dlr_id_form` ([`IdForm`]): short numeric ids are each other's aliases
//! ("10" hex is "16" decimal), so guessing can hand a receipt to another client.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use smpp_core::receipt::{self, IdBase};

use crate::receipts::DlrEntry;

/// How a connector's receipt ids relate to its submit_sm_resp ids (Jasmin `dlr_msgid`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdForm {
    /// The same id on both sides (`dlr_msgid` 0).
    Exact,
    /// Receipt ids in hex, submit_sm_resp ids in decimal (`dlr_msgid` 2).
    Hex,
    /// Receipt ids in decimal, submit_sm_resp ids in hex (`dlr_msgid` 1).
    Decimal,
    /// Exact first, else a hex/decimal alias, but only when just one message matches.
    #[default]
    Auto,
}

impl IdForm {
    /// The keys a receipt id stands for: (exact or only key, aliases for `Auto`).
    fn keys(self, id: &str) -> (Option<String>, Vec<String>) {
        let key = |base| receipt::receipt_key(id, base);
        match self {
            Self::Exact => (key(IdBase::Same), Vec::new()),
            Self::Hex => (key(IdBase::RespDecReceiptHex), Vec::new()),
            Self::Decimal => (key(IdBase::RespHexReceiptDec), Vec::new()),
            Self::Auto => {
                let exact = key(IdBase::Same);
                let aliases = candidates(id)
                    .into_iter()
                    .filter(|k| Some(k) != exact.as_ref())
                    .collect();
                (exact, aliases)
            }
        }
    }
}

/// What a receipt id finds.
#[derive(Debug, Clone)]
pub enum Lookup {
    Found(Arc<DlrEntry>),
    /// Only aliases matched, and more than one: no one gets the receipt.
    Ambiguous(usize),
    Missing,
}

pub trait IdMap: Send + Sync + 'static {
    fn insert(&self, connector: &str, operator_id: &str, entry: Arc<DlrEntry>, ttl: Duration);
    /// Find the entry for a receipt's id, read as `form` says.
    fn get(&self, connector: &str, operator_id: &str, form: IdForm) -> Lookup;
    /// Remove the entry `get` would find (and nothing else).
    fn remove(&self, connector: &str, operator_id: &str, form: IdForm);
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

impl MemoryIdMap {
    fn live(&self, connector: &str, key: &str, now: Instant) -> Option<Arc<DlrEntry>> {
        let shard = self.shard(key).lock();
        shard
            .get(&(Arc::from(connector), key.to_owned()))
            .filter(|slot| slot.expires > now)
            .map(|slot| slot.entry.clone())
    }

    /// The key and entry a receipt id matches, or how many aliases matched when more
    /// than one did.
    fn resolve(
        &self,
        connector: &str,
        operator_id: &str,
        form: IdForm,
    ) -> Result<Option<(String, Arc<DlrEntry>)>, usize> {
        let now = Instant::now();
        let (first, aliases) = form.keys(operator_id);
        if let Some(key) = first
            && let Some(entry) = self.live(connector, &key, now)
        {
            return Ok(Some((key, entry)));
        }
        let mut found: Vec<(String, Arc<DlrEntry>)> = aliases
            .into_iter()
            .filter_map(|key| self.live(connector, &key, now).map(|e| (key, e)))
            .collect();
        match found.len() {
            0 | 1 => Ok(found.pop()),
            n => Err(n),
        }
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

    fn get(&self, connector: &str, operator_id: &str, form: IdForm) -> Lookup {
        match self.resolve(connector, operator_id, form) {
            Ok(Some((_, entry))) => Lookup::Found(entry),
            Ok(None) => Lookup::Missing,
            Err(n) => Lookup::Ambiguous(n),
        }
    }

    fn remove(&self, connector: &str, operator_id: &str, form: IdForm) {
        // Only the entry a lookup matches: the other spellings of this id (hex/decimal)
        // may be the keys of different messages.
        if let Ok(Some((key, _))) = self.resolve(connector, operator_id, form) {
            self.shard(&key).lock().remove(&(Arc::from(connector), key));
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
                trace: Default::default(),
            })
        };
        let map = MemoryIdMap::new();
        let ttl = Duration::from_secs(60);
        // Operator ids 0x274 and 0x628: "628" is also 0x274 written in decimal.
        map.insert("c", "274", entry("a"), ttl);
        map.insert("c", "628", entry("b"), ttl);
        map.remove("c", "274", IdForm::Auto);
        let id = |l: Lookup| match l {
            Lookup::Found(e) => Some(e.id.to_string()),
            _ => None,
        };
        assert_ne!(id(map.get("c", "274", IdForm::Auto)).as_deref(), Some("a"));
        assert_eq!(id(map.get("c", "628", IdForm::Auto)).as_deref(), Some("b"));
        // Fixed forms read the receipt id one way only.
        map.insert("c", "16", entry("sixteen"), ttl);
        map.insert("c", "10", entry("ten"), ttl);
        assert_eq!(
            id(map.get("c", "10", IdForm::Exact)).as_deref(),
            Some("ten")
        );
        assert_eq!(
            id(map.get("c", "10", IdForm::Hex)).as_deref(),
            Some("sixteen")
        );
        assert_eq!(
            id(map.get("c", "16", IdForm::Decimal)).as_deref(),
            Some("ten")
        );
        assert!(matches!(map.get("c", "G", IdForm::Hex), Lookup::Missing));
        // "10" alone: "16" (hex read) and "A" (decimal read) are both aliases.
        map.remove("c", "10", IdForm::Exact);
        map.insert("c", "A", entry("a-hex"), ttl);
        assert!(matches!(
            map.get("c", "10", IdForm::Auto),
            Lookup::Ambiguous(2)
        ));
        map.remove("c", "10", IdForm::Auto);
        assert!(matches!(
            map.get("c", "10", IdForm::Auto),
            Lookup::Ambiguous(2)
        ));
    }
}
