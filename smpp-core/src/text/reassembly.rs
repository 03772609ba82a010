//! Reassembly of inbound long messages (MO and, rarely, receipts).
//!
//! Jasmin keeps parts in Redis and only concatenates when the part whose seq ==
//! total arrives, so a last part that overtakes the others loses the message;
//! it also only understands `05 00 03` at offset 0. Here parts may arrive in any
//! order, duplicates (SMSC retransmissions after a lost `deliver_sm_resp`) are
//! ignored, any concatenation IE position and 16-bit references are accepted,
//! and incomplete messages are handed back on expiry or eviction so the caller
//! can still log or deliver what arrived.
//!
//! Time is passed in by the caller (`now: Instant`) so the structure is pure and
//! testable without sleeping; the caller drives [`Reassembler::expire`] from its
//! own timer (see [`Reassembler::next_deadline`]).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;

use super::udh::{Concat, UdhError, parse_udh};

/// Why a part was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReassemblyError {
    /// The UDH could not be parsed.
    #[error("malformed UDH: {0}")]
    Udh(#[from] UdhError),
    /// The UDH has no (valid) concatenation IE: this is a single message and
    /// should be delivered as is.
    #[error("the UDH carries no concatenation information")]
    NotConcatenated,
    /// SAR values that cannot describe a part (total 0, seq 0 or seq > total).
    #[error("invalid segment {seq} of {total}")]
    InvalidSegment {
        /// sar_total_segments.
        total: u8,
        /// sar_segment_seqnum.
        seq: u8,
    },
}

/// A message whose parts all arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complete<K> {
    /// The caller's key.
    pub key: K,
    /// The concatenation reference.
    pub reference: u16,
    /// Number of parts.
    pub total: u8,
    /// The payloads concatenated in seq order (UDHs stripped). Other IEs of the
    /// parts' UDHs are not kept.
    pub payload: Vec<u8>,
    /// `data_coding` of the first part that arrived; parts of one message share it.
    pub data_coding: u8,
    /// When the first part arrived.
    pub first_seen: Instant,
}

/// A message dropped before all its parts arrived (expired or evicted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial<K> {
    /// The caller's key.
    pub key: K,
    /// The concatenation reference.
    pub reference: u16,
    /// Number of parts announced.
    pub total: u8,
    /// `data_coding` of the first part that arrived.
    pub data_coding: u8,
    /// When the first part arrived.
    pub first_seen: Instant,
    /// The parts that did arrive, as (seq, payload), in seq order.
    pub parts: Vec<(u8, Bytes)>,
}

impl<K> Partial<K> {
    /// The seq numbers that never arrived.
    pub fn missing(&self) -> Vec<u8> {
        (1..=self.total)
            .filter(|s| !self.parts.iter().any(|(seq, _)| seq == s))
            .collect()
    }
}

/// What happened to a pushed part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<K> {
    /// The part completed its message.
    Complete(Complete<K>),
    /// Stored; more parts are needed. `evicted` is a message that had to make
    /// room (the oldest one when the bound was hit, or a stale one with the same
    /// key and reference that had outlived the timeout).
    Incomplete {
        /// Distinct parts stored so far.
        received: u8,
        /// Parts expected.
        total: u8,
        /// A message dropped to store this one.
        evicted: Option<Partial<K>>,
    },
    /// That seq was already stored; the part was ignored.
    Duplicate,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MsgKey<K> {
    key: K,
    reference: u16,
    total: u8,
}

#[derive(Debug)]
struct Pending {
    parts: Vec<Option<Bytes>>,
    received: u8,
    data_coding: u8,
    first_seen: Instant,
    order: (Instant, u64),
}

/// Collects parts of long messages until they are complete.
///
/// Messages are identified by (caller key, reference, total). The key should
/// name the sender and recipient as seen on one connector (for example
/// connector id + source + destination), because references are only unique
/// per originating handset or SMSC. Memory is bounded by `max_pending`
/// messages: when it is reached the oldest incomplete message is evicted.
#[derive(Debug)]
pub struct Reassembler<K> {
    timeout: Duration,
    max_pending: usize,
    pending: HashMap<MsgKey<K>, Pending>,
    order: BTreeMap<(Instant, u64), MsgKey<K>>,
    next_id: u64,
}

impl<K: Eq + Hash + Clone> Reassembler<K> {
    /// A reassembler that drops messages incomplete after `timeout` and keeps at
    /// most `max_pending` of them (at least 1). Jasmin uses a fixed 300 s.
    pub fn new(timeout: Duration, max_pending: usize) -> Self {
        Self {
            timeout,
            max_pending: max_pending.max(1),
            pending: HashMap::new(),
            order: BTreeMap::new(),
            next_id: 0,
        }
    }

    /// Number of incomplete messages held.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when no incomplete message is held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// When the oldest incomplete message will expire, so the caller can arm a
    /// single timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.order
            .keys()
            .next()
            .and_then(|(first_seen, _)| first_seen.checked_add(self.timeout))
    }

    /// Pushes the `short_message` of a PDU with UDHI set. A UDH without a
    /// concatenation IE gives [`ReassemblyError::NotConcatenated`].
    pub fn push_udh(
        &mut self,
        key: K,
        short_message: &[u8],
        data_coding: u8,
        now: Instant,
    ) -> Result<Outcome<K>, ReassemblyError> {
        let udh = parse_udh(short_message)?;
        let concat = udh.concat.ok_or(ReassemblyError::NotConcatenated)?;
        self.push(
            key,
            concat,
            Bytes::copy_from_slice(udh.body),
            data_coding,
            now,
        )
    }

    /// Pushes a part described by the SAR TLVs.
    #[allow(clippy::too_many_arguments)]
    pub fn push_sar(
        &mut self,
        key: K,
        sar_msg_ref_num: u16,
        sar_total_segments: u8,
        sar_segment_seqnum: u8,
        payload: &[u8],
        data_coding: u8,
        now: Instant,
    ) -> Result<Outcome<K>, ReassemblyError> {
        let concat = Concat::new(sar_msg_ref_num, sar_total_segments, sar_segment_seqnum).ok_or(
            ReassemblyError::InvalidSegment {
                total: sar_total_segments,
                seq: sar_segment_seqnum,
            },
        )?;
        self.push(
            key,
            concat,
            Bytes::copy_from_slice(payload),
            data_coding,
            now,
        )
    }

    /// Pushes a part whose concatenation info is already known (the fields of
    /// [`Concat`] are public, so they are checked again here).
    pub fn push(
        &mut self,
        key: K,
        concat: Concat,
        payload: Bytes,
        data_coding: u8,
        now: Instant,
    ) -> Result<Outcome<K>, ReassemblyError> {
        let concat = Concat::new(concat.reference, concat.total, concat.seq).ok_or(
            ReassemblyError::InvalidSegment {
                total: concat.total,
                seq: concat.seq,
            },
        )?;
        Ok(self.push_valid(key, concat, payload, data_coding, now))
    }

    fn push_valid(
        &mut self,
        key: K,
        concat: Concat,
        payload: Bytes,
        data_coding: u8,
        now: Instant,
    ) -> Outcome<K> {
        if concat.total == 1 {
            return Outcome::Complete(Complete {
                key,
                reference: concat.reference,
                total: 1,
                payload: payload.to_vec(),
                data_coding,
                first_seen: now,
            });
        }
        let mk = MsgKey {
            key,
            reference: concat.reference,
            total: concat.total,
        };
        let idx = usize::from(concat.seq.saturating_sub(1));

        // A stale entry under the same reference belongs to an earlier message
        // (references wrap); don't glue the new parts onto it.
        let mut evicted = None;
        let stale = self
            .pending
            .get(&mk)
            .is_some_and(|p| now.saturating_duration_since(p.first_seen) >= self.timeout);
        if stale {
            evicted = self.remove(&mk);
        }

        if let Some(p) = self.pending.get_mut(&mk) {
            let Some(slot) = p.parts.get_mut(idx) else {
                return Outcome::Duplicate;
            };
            if slot.is_some() {
                return Outcome::Duplicate;
            }
            *slot = Some(payload);
            p.received = p.received.saturating_add(1);
            if p.received < concat.total {
                return Outcome::Incomplete {
                    received: p.received,
                    total: concat.total,
                    evicted: None,
                };
            }
            return match self.pending.remove(&mk) {
                Some(done) => {
                    self.order.remove(&done.order);
                    let mut out = Vec::with_capacity(
                        done.parts.iter().flatten().map(Bytes::len).sum::<usize>(),
                    );
                    for part in done.parts.iter().flatten() {
                        out.extend_from_slice(part);
                    }
                    Outcome::Complete(Complete {
                        key: mk.key,
                        reference: mk.reference,
                        total: mk.total,
                        payload: out,
                        data_coding: done.data_coding,
                        first_seen: done.first_seen,
                    })
                }
                None => Outcome::Duplicate,
            };
        }

        if evicted.is_none() && self.pending.len() >= self.max_pending {
            evicted = self
                .order
                .first_key_value()
                .map(|(_, k)| k.clone())
                .and_then(|oldest| self.remove(&oldest));
        }
        let order = (now, self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        let mut parts = vec![None; usize::from(concat.total)];
        if let Some(slot) = parts.get_mut(idx) {
            *slot = Some(payload);
        }
        self.order.insert(order, mk.clone());
        self.pending.insert(
            mk,
            Pending {
                parts,
                received: 1,
                data_coding,
                first_seen: now,
                order,
            },
        );
        Outcome::Incomplete {
            received: 1,
            total: concat.total,
            evicted,
        }
    }

    /// Drops and returns every message whose first part arrived `timeout` or
    /// more before `now`, oldest first.
    pub fn expire(&mut self, now: Instant) -> Vec<Partial<K>> {
        let mut out = Vec::new();
        while let Some((&(first_seen, id), _)) = self.order.first_key_value() {
            if now.saturating_duration_since(first_seen) < self.timeout {
                break;
            }
            match self.order.remove(&(first_seen, id)) {
                Some(mk) => {
                    if let Some(p) = self.pending.remove(&mk) {
                        out.push(into_partial(mk, p));
                    }
                }
                None => break,
            }
        }
        out
    }

    fn remove(&mut self, mk: &MsgKey<K>) -> Option<Partial<K>> {
        let p = self.pending.remove(mk)?;
        self.order.remove(&p.order);
        Some(into_partial(mk.clone(), p))
    }
}

fn into_partial<K>(mk: MsgKey<K>, p: Pending) -> Partial<K> {
    let parts = (1..=mk.total)
        .zip(p.parts)
        .filter_map(|(seq, part)| part.map(|b| (seq, b)))
        .collect();
    Partial {
        key: mk.key,
        reference: mk.reference,
        total: mk.total,
        data_coding: p.data_coding,
        first_seen: p.first_seen,
        parts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udh_part(r: u8, total: u8, seq: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![0x05, 0x00, 0x03, r, total, seq];
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn out_of_order_with_duplicates() {
        let t0 = Instant::now();
        let mut r = Reassembler::new(Duration::from_secs(300), 10);
        let o = r.push_udh("k", &udh_part(7, 3, 3, b"ghi"), 0, t0);
        assert!(matches!(
            o,
            Ok(Outcome::Incomplete {
                received: 1,
                total: 3,
                evicted: None
            })
        ));
        assert!(matches!(
            r.push_udh("k", &udh_part(7, 3, 1, b"abc"), 0, t0),
            Ok(Outcome::Incomplete { received: 2, .. })
        ));
        assert_eq!(
            r.push_udh("k", &udh_part(7, 3, 1, b"zzz"), 0, t0),
            Ok(Outcome::Duplicate)
        );
        match r.push_udh("k", &udh_part(7, 3, 2, b"def"), 0, t0) {
            Ok(Outcome::Complete(c)) => {
                assert_eq!(c.payload, b"abcdefghi");
                assert_eq!((c.key, c.reference, c.total), ("k", 7, 3));
            }
            other => panic!("expected complete, got {other:?}"),
        }
        assert!(r.is_empty());
    }

    #[test]
    fn keys_and_references_separate_messages() {
        let t0 = Instant::now();
        let mut r = Reassembler::new(Duration::from_secs(300), 10);
        for key in ["a", "b"] {
            let _ = r.push_sar(key, 1, 2, 1, b"x", 0, t0);
        }
        let _ = r.push_sar("a", 2, 2, 1, b"y", 0, t0);
        assert_eq!(r.len(), 3);
        assert!(matches!(
            r.push_sar("b", 1, 2, 2, b"z", 0, t0),
            Ok(Outcome::Complete(Complete { ref payload, .. })) if payload == b"xz"
        ));
    }

    #[test]
    fn sixteen_bit_udh_and_single_part() {
        let t0 = Instant::now();
        let mut r = Reassembler::new(Duration::from_secs(300), 10);
        let sm = [0x06, 0x08, 0x04, 0x01, 0x02, 0x01, 0x01, b'o', b'k'];
        assert!(matches!(
            r.push_udh(1u32, &sm, 8, t0),
            Ok(Outcome::Complete(Complete { ref payload, data_coding: 8, reference: 0x0102, .. })) if payload == b"ok"
        ));
    }

    #[test]
    fn errors() {
        let t0 = Instant::now();
        let mut r: Reassembler<u8> = Reassembler::new(Duration::from_secs(1), 10);
        assert_eq!(
            r.push_udh(0, &[0x04, 0x05, 0x02, 0x00, 0x00], 0, t0),
            Err(ReassemblyError::NotConcatenated)
        );
        assert_eq!(
            r.push_udh(0, &[0x05, 0x00], 0, t0),
            Err(ReassemblyError::Udh(UdhError::LengthOverrun {
                udhl: 5,
                available: 1
            }))
        );
        assert_eq!(
            r.push_sar(0, 1, 2, 3, b"", 0, t0),
            Err(ReassemblyError::InvalidSegment { total: 2, seq: 3 })
        );
        assert_eq!(
            r.push_sar(0, 1, 0, 0, b"", 0, t0),
            Err(ReassemblyError::InvalidSegment { total: 0, seq: 0 })
        );
    }

    #[test]
    fn expiry_returns_partials() {
        let t0 = Instant::now();
        let mut r = Reassembler::new(Duration::from_secs(300), 10);
        let _ = r.push_sar("a", 1, 3, 2, b"b", 0, t0);
        let _ = r.push_sar("b", 1, 2, 1, b"x", 0, t0 + Duration::from_secs(100));
        assert_eq!(r.next_deadline(), Some(t0 + Duration::from_secs(300)));
        assert!(r.expire(t0 + Duration::from_secs(299)).is_empty());
        let gone = r.expire(t0 + Duration::from_secs(300));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].key, "a");
        assert_eq!(gone[0].parts, vec![(2, Bytes::from_static(b"b"))]);
        assert_eq!(gone[0].missing(), vec![1, 3]);
        assert_eq!(r.len(), 1);
        assert_eq!(r.expire(t0 + Duration::from_secs(1000)).len(), 1);
        assert!(r.is_empty());
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn stale_entry_with_same_reference_is_replaced() {
        let t0 = Instant::now();
        let mut r = Reassembler::new(Duration::from_secs(10), 10);
        let _ = r.push_sar("a", 1, 2, 1, b"old", 0, t0);
        match r.push_sar("a", 1, 2, 2, b"new", 0, t0 + Duration::from_secs(11)) {
            Ok(Outcome::Incomplete {
                received: 1,
                evicted: Some(p),
                ..
            }) => assert_eq!(p.parts, vec![(1, Bytes::from_static(b"old"))]),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn bounded_evicts_oldest() {
        let t0 = Instant::now();
        let mut r = Reassembler::new(Duration::from_secs(300), 2);
        let _ = r.push_sar(1u8, 1, 2, 1, b"a", 0, t0);
        let _ = r.push_sar(2u8, 1, 2, 1, b"b", 0, t0 + Duration::from_secs(1));
        match r.push_sar(3u8, 1, 2, 1, b"c", 0, t0 + Duration::from_secs(2)) {
            Ok(Outcome::Incomplete {
                evicted: Some(p), ..
            }) => assert_eq!(p.key, 1),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(r.len(), 2);
        // Message 1 is gone: its second part starts a new entry.
        assert!(matches!(
            r.push_sar(2u8, 1, 2, 2, b"B", 0, t0),
            Ok(Outcome::Complete(_))
        ));
    }
}
