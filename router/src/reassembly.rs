//! Reassembly of long MO on top of `smpp_core::text::Reassembler` (UDH 8- and 16-bit
//! references in any IE position, SAR TLVs, parts in any order, retransmitted parts
//! ignored). The router also keeps each part as received: SMPP users get the original
//! parts, HTTP connectors the concatenated message (docs/jasmin-compat.md §3.1).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use parking_lot::Mutex;
use smpp_core::text::{self, Outcome, Partial, ReassemblyError};
use tracing::warn;

use crate::model::{Message, TAG_SAR_MSG_REF_NUM, TAG_SAR_SEGMENT_SEQNUM, TAG_SAR_TOTAL_SEGMENTS};

/// Incomplete long MO kept at most; the oldest is dropped beyond it.
pub const MAX_PENDING: usize = 100_000;

/// (connector, source, destination): references are only unique per sender.
type Key = (Arc<str>, String, String);
/// A message as the reassembler identifies it: key, reference, total.
type MessageKey = (Key, u16, u8);

/// Outcome of offering one part.
pub enum Offer {
    /// Not a part: handle as is.
    Single(Box<Message>),
    /// Stored; more parts to come (or a retransmitted part, ignored).
    Waiting,
    /// All parts here: the whole message (content concatenated, UDH/SAR removed) and
    /// the original parts in order.
    Complete {
        whole: Box<Message>,
        parts: Vec<Message>,
    },
}

struct Inner {
    parts: text::Reassembler<Key>,
    /// The received PDUs of each incomplete message, by seq.
    originals: HashMap<MessageKey, BTreeMap<u8, Message>>,
}

pub struct MoReassembler {
    inner: Mutex<Inner>,
}

fn sar(m: &Message) -> Option<(u16, u8, u8)> {
    let r = m.tlv(TAG_SAR_MSG_REF_NUM)?;
    let t = m.tlv(TAG_SAR_TOTAL_SEGMENTS)?;
    let s = m.tlv(TAG_SAR_SEGMENT_SEQNUM)?;
    let reference = u16::from_be_bytes(<[u8; 2]>::try_from(r.as_ref()).ok()?);
    Some((reference, *t.first()?, *s.first()?))
}

impl Inner {
    fn forget(&mut self, partial: Partial<Key>) {
        let (connector, source, destination) = &partial.key;
        warn!(
            %connector, %source, %destination,
            reference = partial.reference,
            missing = ?partial.missing(),
            "long MO incomplete: dropped"
        );
        self.originals
            .remove(&(partial.key, partial.reference, partial.total));
    }
}

impl MoReassembler {
    pub fn new(timeout: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner {
                parts: text::Reassembler::new(timeout, MAX_PENDING),
                originals: HashMap::new(),
            }),
        }
    }

    pub fn offer(&self, m: Message) -> Offer {
        let key: Key = (
            m.connector.clone(),
            m.source.addr.clone(),
            m.destination.addr.clone(),
        );
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let pushed = match sar(&m) {
            Some((reference, total, seq)) => inner.parts.push_sar(
                key.clone(),
                reference,
                total,
                seq,
                &m.content,
                m.data_coding,
                now,
            ),
            None if m.has_udhi() => {
                inner
                    .parts
                    .push_udh(key.clone(), &m.content, m.data_coding, now)
            }
            None => Err(ReassemblyError::NotConcatenated),
        };
        // What does not parse as a part goes on as a single message, UDH and all.
        let Ok(outcome) = pushed else {
            return Offer::Single(Box::new(m));
        };
        match outcome {
            Outcome::Duplicate => Offer::Waiting,
            Outcome::Complete(done) if done.total <= 1 => Offer::Single(Box::new(m)),
            Outcome::Incomplete { evicted, total, .. } => {
                if let Some(partial) = evicted {
                    inner.forget(partial);
                }
                let Some((reference, seq)) = part_position(&m) else {
                    return Offer::Waiting;
                };
                inner
                    .originals
                    .entry((key, reference, total))
                    .or_default()
                    .insert(seq, m);
                Offer::Waiting
            }
            Outcome::Complete(done) => {
                let mut originals = inner
                    .originals
                    .remove(&(key, done.reference, done.total))
                    .unwrap_or_default();
                if let Some((_, seq)) = part_position(&m) {
                    originals.insert(seq, m);
                }
                let parts: Vec<Message> = originals.into_values().collect();
                let Some(first) = parts.first() else {
                    return Offer::Waiting;
                };
                let mut whole = first.clone();
                whole.content = Bytes::from(done.payload);
                whole.esm_class &= !text::ESM_CLASS_UDHI;
                whole.tlvs.retain(|t| {
                    ![
                        TAG_SAR_MSG_REF_NUM,
                        TAG_SAR_TOTAL_SEGMENTS,
                        TAG_SAR_SEGMENT_SEQNUM,
                    ]
                    .contains(&t.tag)
                });
                Offer::Complete {
                    whole: Box::new(whole),
                    parts,
                }
            }
        }
    }

    /// Forget parts older than the timeout; returns how many messages were dropped.
    pub fn purge(&self) -> usize {
        let mut inner = self.inner.lock();
        let expired = inner.parts.expire(Instant::now());
        let n = expired.len();
        for partial in expired {
            inner.forget(partial);
        }
        n
    }

    /// Incomplete messages held.
    pub fn pending(&self) -> usize {
        self.inner.lock().parts.len()
    }
}

/// (reference, seq) of a part the reassembler accepted.
fn part_position(m: &Message) -> Option<(u16, u8)> {
    if let Some((reference, _, seq)) = sar(m) {
        return Some((reference, seq));
    }
    let concat = text::parse_udh(&m.content).ok()?.concat?;
    Some((concat.reference, concat.seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RawTlv;

    fn part(header: &[u8], body: &[u8]) -> Message {
        let mut content = header.to_vec();
        content.extend_from_slice(body);
        Message {
            esm_class: 0x40,
            content: Bytes::from(content),
            ..Message::default()
        }
    }

    fn udh8(seq: u8, body: &[u8]) -> Message {
        part(&[5, 0, 3, 7, 3, seq], body)
    }

    #[test]
    fn reassembles_out_of_order_and_ignores_retransmissions() {
        let r = MoReassembler::new(Duration::from_secs(60));
        assert!(matches!(r.offer(udh8(3, b"c")), Offer::Waiting));
        assert!(matches!(r.offer(udh8(1, b"a")), Offer::Waiting));
        assert!(matches!(r.offer(udh8(1, b"x")), Offer::Waiting));
        match r.offer(udh8(2, b"b")) {
            Offer::Complete { whole, parts } => {
                assert_eq!(&whole.content[..], b"abc");
                assert_eq!(whole.esm_class & 0x40, 0);
                let seqs: Vec<u8> = parts.iter().map(|p| p.content[5]).collect();
                assert_eq!(seqs, vec![1, 2, 3]);
                assert_eq!(&parts[0].content[6..], b"a", "the first copy is kept");
            }
            _ => panic!("expected complete"),
        }
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn sixteen_bit_references_other_ies_and_sar() {
        let r = MoReassembler::new(Duration::from_secs(60));
        // A port IE before a 16-bit concatenation IE.
        let header = |seq: u8| {
            [
                12, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x08, 0x04, 0x12, 0x34, 2, seq,
            ]
        };
        assert!(matches!(
            r.offer(part(&header(2), b"world")),
            Offer::Waiting
        ));
        match r.offer(part(&header(1), b"hello ")) {
            Offer::Complete { whole, parts } => {
                assert_eq!(&whole.content[..], b"hello world");
                assert_eq!(parts.len(), 2);
            }
            _ => panic!("expected complete"),
        }

        let sar_part = |seq: u8, body: &'static [u8]| Message {
            content: Bytes::from_static(body),
            tlvs: vec![
                RawTlv {
                    tag: TAG_SAR_MSG_REF_NUM,
                    value: Bytes::from_static(&[0x01, 0x02]),
                },
                RawTlv {
                    tag: TAG_SAR_TOTAL_SEGMENTS,
                    value: Bytes::from_static(&[2]),
                },
                RawTlv {
                    tag: TAG_SAR_SEGMENT_SEQNUM,
                    value: Bytes::copy_from_slice(&[seq]),
                },
            ],
            ..Message::default()
        };
        assert!(matches!(r.offer(sar_part(2, b"B")), Offer::Waiting));
        match r.offer(sar_part(1, b"A")) {
            Offer::Complete { whole, .. } => {
                assert_eq!(&whole.content[..], b"AB");
                assert!(whole.tlvs.is_empty(), "SAR TLVs removed");
            }
            _ => panic!("expected complete"),
        }
    }

    #[test]
    fn singles_pass_through_and_incomplete_parts_expire() {
        let r = MoReassembler::new(Duration::ZERO);
        let plain = Message {
            content: Bytes::from_static(b"hi"),
            ..Message::default()
        };
        assert!(matches!(r.offer(plain), Offer::Single(_)));
        // UDHI with a UDH that has no concatenation IE, and a one-part "long" message.
        assert!(matches!(
            r.offer(part(&[2, 0x70, 0x00], b"x")),
            Offer::Single(_)
        ));
        match r.offer(part(&[5, 0, 3, 9, 1, 1], b"x")) {
            Offer::Single(m) => assert_eq!(m.content.len(), 7, "kept as received"),
            _ => panic!("expected single"),
        }
        assert!(matches!(r.offer(udh8(1, b"a")), Offer::Waiting));
        assert_eq!(r.purge(), 1);
        assert_eq!(r.pending(), 0);
    }
}
