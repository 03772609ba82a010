//! Drives a `Reassembler` with a sequence of operations decoded from the input
//! (SAR parts, UDH parts, clock steps, expiry) and checks it against a model of
//! what was pushed: a completed message is the concatenation of its parts in seq
//! order, every evicted or expired partial holds exactly the parts that were
//! stored for it, and duplicates are only reported for stored seqs.
#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use smpp_core::text::{Concat, Outcome, Partial, Reassembler, parse_udh};

type MsgKey = (u8, u16, u8);

#[derive(Debug)]
struct Pending {
    parts: BTreeMap<u8, Vec<u8>>,
    data_coding: u8,
    first_seen: Instant,
}

struct Harness {
    r: Reassembler<u8>,
    model: HashMap<MsgKey, Pending>,
    now: Instant,
}

impl Harness {
    fn check_partial(&mut self, p: &Partial<u8>) {
        let mk = (p.key, p.reference, p.total);
        let m = self
            .model
            .remove(&mk)
            .unwrap_or_else(|| panic!("partial {p:?} was not pending"));
        let expected: Vec<(u8, Vec<u8>)> = m.parts.into_iter().collect();
        let got: Vec<(u8, Vec<u8>)> = p.parts.iter().map(|(s, b)| (*s, b.to_vec())).collect();
        assert_eq!(got, expected, "partial parts differ for {mk:?}");
        assert_eq!(p.data_coding, m.data_coding);
        assert_eq!(p.first_seen, m.first_seen);
        let missing: Vec<u8> = (1..=p.total)
            .filter(|s| !expected.iter().any(|(q, _)| q == s))
            .collect();
        assert_eq!(p.missing(), missing);
    }

    /// Checks the outcome of pushing `payload` as part `c` under `key`.
    fn pushed(&mut self, key: u8, c: Concat, payload: &[u8], dc: u8, outcome: Outcome<u8>) {
        let mk = (key, c.reference, c.total);
        match outcome {
            Outcome::Complete(done) => {
                assert_eq!((done.key, done.reference, done.total), mk);
                if c.total == 1 {
                    assert_eq!(done.payload, payload);
                    assert_eq!(done.data_coding, dc);
                    return;
                }
                let mut m = self
                    .model
                    .remove(&mk)
                    .unwrap_or_else(|| panic!("{mk:?} completed but nothing was pending"));
                assert!(m.parts.insert(c.seq, payload.to_vec()).is_none());
                assert_eq!(m.parts.len(), usize::from(c.total), "completed too early");
                let expected: Vec<u8> = m.parts.values().flatten().copied().collect();
                assert_eq!(
                    done.payload, expected,
                    "payload is not the parts in seq order"
                );
                assert_eq!(done.data_coding, m.data_coding);
                assert_eq!(done.first_seen, m.first_seen);
            }
            Outcome::Incomplete {
                received,
                total,
                evicted,
            } => {
                assert_eq!(total, c.total);
                assert!(c.total > 1);
                if let Some(p) = &evicted {
                    self.check_partial(p);
                }
                let now = self.now;
                let m = self.model.entry(mk).or_insert_with(|| Pending {
                    parts: BTreeMap::new(),
                    data_coding: dc,
                    first_seen: now,
                });
                assert!(
                    m.parts.insert(c.seq, payload.to_vec()).is_none(),
                    "a stored seq was accepted again"
                );
                assert_eq!(usize::from(received), m.parts.len());
                assert!(received < total);
            }
            Outcome::Duplicate => {
                let m = self
                    .model
                    .get(&mk)
                    .unwrap_or_else(|| panic!("duplicate of {mk:?} that is not pending"));
                assert!(
                    m.parts.contains_key(&c.seq),
                    "seq {} reported duplicate",
                    c.seq
                );
            }
        }
    }
}

fn run(u: &mut Unstructured) -> Result<()> {
    let timeout = Duration::from_secs(u64::from(u.int_in_range(1u8..=20)?));
    let max_pending = usize::from(u.int_in_range(0u8..=6)?);
    // Far enough from the process start that the clock can also step back.
    let start = Instant::now() + Duration::from_secs(1000);
    let mut h = Harness {
        r: Reassembler::new(timeout, max_pending),
        model: HashMap::new(),
        now: start,
    };
    let mut latest = start;
    let cap = max_pending.max(1);

    while !u.is_empty() {
        match u.int_in_range(0u8..=5)? {
            // A part described by SAR TLVs.
            0 | 1 => {
                let key = u.int_in_range(0u8..=2)?;
                let reference = u16::from(u.int_in_range(0u8..=3)?);
                let total = small_or_any(u, 4)?;
                let seq = small_or_any(u, 5)?;
                let dc = u.arbitrary::<u8>()?;
                let len = u.int_in_range(0usize..=8)?;
                let payload = u.bytes(len)?;
                let res = h.r.push_sar(key, reference, total, seq, payload, dc, h.now);
                match (Concat::new(reference, total, seq), res) {
                    (Some(c), Ok(o)) => h.pushed(key, c, payload, dc, o),
                    (None, Err(_)) => {}
                    (c, res) => panic!("SAR {reference}/{total}/{seq}: {c:?} vs {res:?}"),
                }
            }
            // A part with a UDH: built from fields (8- or 16-bit IE, sometimes
            // behind another IE), or raw octets.
            2 | 3 => {
                let key = u.int_in_range(0u8..=2)?;
                let dc = u.arbitrary::<u8>()?;
                let sm: Vec<u8> = if u.ratio(1u8, 6u8)? {
                    let len = u.int_in_range(0usize..=16)?;
                    u.bytes(len)?.to_vec()
                } else {
                    let mut ies = Vec::new();
                    if u.ratio(1u8, 4u8)? {
                        // Port addressing IE before the concatenation one.
                        ies.extend_from_slice(&[0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0]);
                    }
                    let reference = u.int_in_range(0u8..=3)?;
                    let total = small_or_any(u, 4)?;
                    let seq = small_or_any(u, 5)?;
                    if u.arbitrary::<bool>()? {
                        ies.extend_from_slice(&[0x08, 0x04, 0x00, reference, total, seq]);
                    } else {
                        ies.extend_from_slice(&[0x00, 0x03, reference, total, seq]);
                    }
                    let mut sm = vec![ies.len() as u8];
                    sm.extend_from_slice(&ies);
                    let len = u.int_in_range(0usize..=8)?;
                    sm.extend_from_slice(u.bytes(len)?);
                    sm
                };
                let res = h.r.push_udh(key, &sm, dc, h.now);
                let parsed = parse_udh(&sm)
                    .ok()
                    .and_then(|udh| Some((udh.concat?, udh.body)));
                match (parsed, res) {
                    (Some((c, body)), Ok(o)) => h.pushed(key, c, body, dc, o),
                    (None, Err(_)) => {}
                    (p, res) => panic!("UDH {sm:02x?}: {p:?} vs {res:?}"),
                }
            }
            // The clock moves, usually forward, sometimes a little back (a
            // caller's `now` taken before an await).
            4 => {
                let step = u.int_in_range(0u8..=30)?;
                if u.ratio(1u8, 8u8)? {
                    h.now -= Duration::from_secs(u64::from(step % 4));
                } else {
                    h.now += Duration::from_millis(u64::from(step) * 500);
                }
                latest = latest.max(h.now);
            }
            _ => {
                let gone = h.r.expire(h.now);
                for p in &gone {
                    assert!(h.now.saturating_duration_since(p.first_seen) >= timeout);
                    h.check_partial(p);
                }
                if let Some(deadline) = h.r.next_deadline() {
                    assert!(deadline > h.now, "expire left an expired message");
                }
            }
        }
        assert_eq!(
            h.r.len(),
            h.model.len(),
            "pending count differs from the model"
        );
        assert!(h.r.len() <= cap, "more than max_pending messages held");
    }
    // Everything still pending comes back on a final expiry.
    let far = latest + timeout + Duration::from_secs(60);
    for p in h.r.expire(far) {
        h.check_partial(&p);
    }
    assert!(h.r.is_empty() && h.model.is_empty());
    Ok(())
}

/// Mostly small values (so parts of one message meet), sometimes any octet.
fn small_or_any(u: &mut Unstructured, max_small: u8) -> Result<u8> {
    if u.ratio(1u8, 16u8)? {
        u.arbitrary()
    } else {
        u.int_in_range(0..=max_small)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});
