//! Property tests for the text module: codec round trips, and split followed by
//! reassembly in shuffled order giving back the original message.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use smpp_core::text::{
    Encoding, Outcome, Part, Reassembler, SplitMode, coding, gsm7, parts, split, ucs2,
};

/// Every character of the GSM alphabet (basic table without ESC, plus the
/// extension table), derived from the library's own decoder.
fn gsm_alphabet() -> Vec<char> {
    let mut chars: Vec<char> = (0u8..128)
        .filter(|&s| s != gsm7::ESC)
        .flat_map(|s| gsm7::decode(&[s]).chars().collect::<Vec<_>>())
        .collect();
    chars.extend(gsm7::EXTENSION.iter().map(|&(_, c)| c));
    chars
}

fn gsm_string(max: usize) -> impl Strategy<Value = String> {
    let alphabet = gsm_alphabet();
    prop::collection::vec(prop::sample::select(alphabet), 0..max)
        .prop_map(|v| v.into_iter().collect())
}

fn latin1_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(|v| v.into_iter().map(char::from).collect())
}

/// Unicode text that is heavy in astral characters and surrogate-pair boundaries.
fn unicode_string(max: usize) -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        any::<char>(),
        prop::sample::select(vec!['😀', '𝄞', '🇫', 'ж', 'a', '€']),
    ];
    prop::collection::vec(ch, 0..max).prop_map(|v| v.into_iter().collect())
}

fn mode() -> impl Strategy<Value = SplitMode> {
    prop_oneof![Just(SplitMode::Udh), Just(SplitMode::Sar)]
}

/// Feeds `parts` in the order given by `order_keys` (plus one duplicate) and
/// returns the reassembled payload.
fn reassemble(parts: &[Part], order_keys: &[u32], dc: u8) -> Vec<u8> {
    if let [single] = parts {
        assert!(single.udh.is_none() && single.sar.is_none());
        return single.payload.to_vec();
    }
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| order_keys.get(i).copied().unwrap_or(0));
    if let Some(&first) = order.first() {
        // A retransmitted part right after the original must be ignored.
        order.insert(1, first);
    }
    let now = Instant::now();
    let mut r = Reassembler::new(Duration::from_secs(300), 16);
    let mut done = None;
    for (n, &i) in order.iter().enumerate() {
        let p = &parts[i];
        let outcome = match p.sar {
            Some(sar) => r.push_sar(
                "key",
                sar.msg_ref_num,
                sar.total_segments,
                sar.segment_seqnum,
                &p.payload,
                dc,
                now,
            ),
            None => r.push_udh("key", &p.short_message(), dc, now),
        }
        .expect("valid part");
        match outcome {
            Outcome::Complete(c) => {
                assert_eq!(n, order.len() - 1, "completed early");
                done = Some(c.payload);
            }
            Outcome::Duplicate => assert_eq!(n, 1),
            Outcome::Incomplete { evicted, .. } => assert!(evicted.is_none()),
        }
    }
    assert!(r.is_empty());
    done.expect("message completed")
}

fn check_split(
    text: &str,
    encoding: Encoding,
    mode: SplitMode,
    reference: u16,
    order_keys: &[u32],
) -> Result<(), TestCaseError> {
    let encoded = coding::encode(text, encoding).expect("encodable");
    let parts = split(encoded.clone(), encoding, mode, reference).expect("split");
    let count = parts::count_encoded(&encoded, encoding);
    prop_assert_eq!(count.parts, parts.len());
    prop_assert_eq!(
        parts::count(text, encoding).expect("count").parts,
        parts.len()
    );
    for p in &parts {
        let units = parts::units_of(&p.payload, encoding);
        let limit = if parts.len() == 1 {
            encoding.single_limit()
        } else {
            encoding.part_limit()
        };
        prop_assert!(units <= limit, "part of {} units > {}", units, limit);
        // No part may end inside a GSM escape pair or a surrogate pair:
        // each part must decode on its own to a prefix-free piece of the text.
        let piece = coding::decode_as(&p.payload, encoding);
        let damaged = piece.contains(char::REPLACEMENT_CHARACTER)
            && !text.contains(char::REPLACEMENT_CHARACTER);
        prop_assert!(!damaged, "a part decodes with a replacement character");
        if encoding == Encoding::Gsm7 {
            prop_assert_ne!(p.payload.last().copied(), Some(gsm7::ESC));
        }
    }
    let joined = reassemble(&parts, order_keys, encoding.data_coding());
    prop_assert_eq!(&joined, &encoded);
    prop_assert_eq!(coding::decode_as(&joined, encoding), text);
    Ok(())
}

proptest! {
    #[test]
    fn gsm7_pack_unpack_round_trip(
        septets in prop::collection::vec(0u8..128, 0..400),
        fill in 0u8..7,
    ) {
        let packed = gsm7::pack(&septets, fill).expect("septets");
        let bits = usize::from(fill) + septets.len() * 7;
        let expected_len = if septets.is_empty() { 0 } else { bits.div_ceil(8) };
        prop_assert_eq!(packed.len(), expected_len);
        let unpacked = gsm7::unpack(&packed, septets.len(), fill).expect("enough bits");
        prop_assert_eq!(unpacked, septets);
    }

    #[test]
    fn gsm7_unpack_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..50),
                                count in 0usize..80, fill in 0u8..10) {
        let _ = gsm7::unpack(&bytes, count, fill);
        let _ = gsm7::decode(&bytes);
    }

    #[test]
    fn gsm7_encode_decode_round_trip(text in gsm_string(400)) {
        prop_assert!(gsm7::is_gsm7(&text));
        let septets = gsm7::encode(&text).expect("alphabet only");
        prop_assert_eq!(Some(septets.len()), gsm7::septet_len(&text));
        prop_assert!(septets.iter().all(|&s| s < 0x80));
        prop_assert_eq!(gsm7::decode(&septets), text.clone());
        prop_assert_eq!(gsm7::encode_lossy(&text), septets);
        prop_assert_eq!(coding::choose(&text), Encoding::Gsm7);
    }

    #[test]
    fn ucs2_round_trip(text in unicode_string(200)) {
        let bytes = ucs2::encode(&text);
        prop_assert_eq!(bytes.len(), ucs2::unit_len(&text) * 2);
        prop_assert_eq!(ucs2::decode(&bytes), text.clone());
        prop_assert_eq!(ucs2::decode_strict(&bytes).expect("valid utf-16"), text);
    }

    #[test]
    fn ucs2_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
        let lossy = ucs2::decode(&bytes);
        if let Ok(strict) = ucs2::decode_strict(&bytes) {
            prop_assert_eq!(strict, lossy);
        }
    }

    #[test]
    fn split_reassemble_gsm7(text in gsm_string(700), mode in mode(), reference in any::<u16>(),
                             keys in prop::collection::vec(any::<u32>(), 8)) {
        check_split(&text, Encoding::Gsm7, mode, reference, &keys)?;
    }

    #[test]
    fn split_reassemble_ucs2(text in unicode_string(350), mode in mode(), reference in any::<u16>(),
                             keys in prop::collection::vec(any::<u32>(), 12)) {
        check_split(&text, Encoding::Ucs2, mode, reference, &keys)?;
    }

    #[test]
    fn split_reassemble_latin1(text in latin1_string(600), mode in mode(), reference in any::<u16>(),
                               keys in prop::collection::vec(any::<u32>(), 8)) {
        check_split(&text, Encoding::Latin1, mode, reference, &keys)?;
    }

    #[test]
    fn split_reassemble_octets(payload in prop::collection::vec(any::<u8>(), 0..700),
                               mode in mode(), reference in any::<u16>(),
                               keys in prop::collection::vec(any::<u32>(), 8)) {
        let encoding = Encoding::Octet(4);
        let parts = split(payload.clone(), encoding, mode, reference).expect("split");
        prop_assert_eq!(parts::count_encoded(&payload, encoding).parts, parts.len());
        prop_assert!(parts.iter().all(|p| p.payload.len() <= 140));
        prop_assert_eq!(reassemble(&parts, &keys, 4), payload);
    }

    #[test]
    fn count_auto_matches_split(text in unicode_string(400)) {
        let c = parts::count_auto(&text);
        let encoded = coding::encode(&text, c.encoding).expect("choose picks an encodable alphabet");
        let parts = split(encoded, c.encoding, SplitMode::Udh, 0).expect("split");
        prop_assert_eq!(c.parts, parts.len());
    }

    #[test]
    fn parse_udh_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        if let Ok(udh) = smpp_core::text::parse_udh(&bytes) {
            prop_assert_eq!(udh.header_len + udh.body.len(), bytes.len());
        }
    }
}
