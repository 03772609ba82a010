//! Counting the parts a message needs, with the same cut rules the splitter uses.
//!
//! A naive `ceil(units / 153)` is wrong in two ways that operators bill for:
//! a GSM extension character cannot straddle two parts (its ESC would end one
//! part and the code start the next, and each part is decoded on its own), and
//! neither can a UTF-16 surrogate pair. When such a pair would straddle the
//! limit the part ends one unit early, which can add a part. Counting therefore
//! walks the encoded message exactly like [`super::split`](mod@super::split) does.

use super::coding::{Encoding, UnitKind, choose, encode, encode_lossy};
use super::{TextError, gsm7::ESC};

/// How many parts a message takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PartCount {
    /// The alphabet the count was made for.
    pub encoding: Encoding,
    /// Length in the SMSC's units: septets (extension characters 2), UTF-16 code
    /// units (astral characters 2), or octets.
    pub units: usize,
    /// Number of `submit_sm` needed; an empty message is still one.
    pub parts: usize,
}

/// Length of `payload` in units of `encoding`.
pub fn units_of(payload: &[u8], encoding: Encoding) -> usize {
    match encoding.unit_kind() {
        UnitKind::CodeUnit => payload.len().div_ceil(2),
        UnitKind::Septet | UnitKind::Octet => payload.len(),
    }
}

fn is_low_surrogate_at(payload: &[u8], i: usize) -> bool {
    matches!(payload.get(i), Some(0xDC..=0xDF))
}

/// End offset (exclusive, in octets) of the part that starts at `start` and may
/// hold at most `limit` units. Always makes progress when `start < len` and
/// `limit >= 2`, which every caller guarantees.
pub(crate) fn cut(payload: &[u8], start: usize, encoding: Encoding, limit: usize) -> usize {
    let len = payload.len();
    match encoding {
        Encoding::Gsm7 => {
            let mut i = start;
            let mut units = 0;
            while i < len {
                // ESC and the code that follows are one character.
                let w = if payload.get(i) == Some(&ESC) && i + 1 < len {
                    2
                } else {
                    1
                };
                if units + w > limit {
                    break;
                }
                units += w;
                i += w;
            }
            i
        }
        Encoding::Ucs2 => {
            let mut i = start;
            let mut units = 0;
            while i < len {
                let high = matches!(payload.get(i), Some(0xD8..=0xDB));
                let (w_units, w_octets) = if high && is_low_surrogate_at(payload, i + 2) {
                    (2, 4)
                } else {
                    (1, 2)
                };
                if units + w_units > limit {
                    break;
                }
                units += w_units;
                i = (i + w_octets).min(len);
            }
            i
        }
        Encoding::Ia5 | Encoding::Latin1 | Encoding::Octet(_) => {
            start.saturating_add(limit).min(len)
        }
    }
}

/// Octet ranges of the parts `payload` is cut into: one range covering
/// everything when it fits in a single message, otherwise consecutive ranges of
/// at most [`Encoding::part_limit`] units.
pub(crate) fn part_ranges(payload: &[u8], encoding: Encoding) -> Vec<std::ops::Range<usize>> {
    if units_of(payload, encoding) <= encoding.single_limit() {
        let whole = 0..payload.len();
        return vec![whole];
    }
    let limit = encoding.part_limit();
    let mut ranges = Vec::with_capacity(payload.len() / limit + 1);
    let mut start = 0;
    while start < payload.len() {
        let end = cut(payload, start, encoding, limit);
        if end <= start {
            // Cannot happen with limits >= 2; stop rather than loop forever.
            break;
        }
        ranges.push(start..end);
        start = end;
    }
    ranges
}

/// Counts the parts of an already encoded payload (unpacked septets for GSM).
pub fn count_encoded(payload: &[u8], encoding: Encoding) -> PartCount {
    let units = units_of(payload, encoding);
    let parts = if units <= encoding.single_limit() {
        1
    } else {
        let limit = encoding.part_limit();
        let mut start = 0;
        let mut parts = 0;
        while start < payload.len() {
            let end = cut(payload, start, encoding, limit);
            if end <= start {
                break;
            }
            parts += 1;
            start = end;
        }
        parts
    };
    PartCount {
        encoding,
        units,
        parts,
    }
}

/// Counts the parts of `text` sent in `encoding`; fails when `text` cannot be
/// written in it.
pub fn count(text: &str, encoding: Encoding) -> Result<PartCount, TextError> {
    Ok(count_encoded(&encode(text, encoding)?, encoding))
}

/// Counts the parts of `text` in the alphabet [`choose`] would pick.
pub fn count_auto(text: &str) -> PartCount {
    let encoding = choose(text);
    count_encoded(&encode_lossy(text, encoding), encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str, e: Encoding) -> (usize, usize) {
        let c = count(text, e).expect("encodable");
        (c.units, c.parts)
    }

    #[test]
    fn gsm_boundaries() {
        assert_eq!(n("", Encoding::Gsm7), (0, 1));
        assert_eq!(n(&"a".repeat(160), Encoding::Gsm7), (160, 1));
        assert_eq!(n(&"a".repeat(161), Encoding::Gsm7), (161, 2));
        assert_eq!(n(&"a".repeat(306), Encoding::Gsm7), (306, 2));
        assert_eq!(n(&"a".repeat(307), Encoding::Gsm7), (307, 3));
        // Extension characters count double.
        assert_eq!(n(&"€".repeat(80), Encoding::Gsm7), (160, 1));
        assert_eq!(n(&format!("{}a", "€".repeat(80)), Encoding::Gsm7), (161, 2));
    }

    #[test]
    fn gsm_escape_at_position_153() {
        // 152 plain septets then '€' (2 septets) at septets 153-154: the pair may
        // not straddle, so part one has 152 septets.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let c = count(&text, Encoding::Gsm7).expect("gsm");
        assert_eq!(c.units, 164);
        assert_eq!(c.parts, 2);
        let enc = encode(&text, Encoding::Gsm7).expect("gsm");
        let ranges = part_ranges(&enc, Encoding::Gsm7);
        assert_eq!(ranges[0], 0..152);
        // 306 septets fit two parts of 153 by arithmetic, but the escape pair
        // that would straddle the first boundary pushes a third part.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(n(&text, Encoding::Gsm7), (306, 3));
    }

    #[test]
    fn ucs2_boundaries() {
        assert_eq!(n(&"ж".repeat(70), Encoding::Ucs2), (70, 1));
        assert_eq!(n(&"ж".repeat(71), Encoding::Ucs2), (71, 2));
        assert_eq!(n(&"ж".repeat(134), Encoding::Ucs2), (134, 2));
        assert_eq!(n(&"ж".repeat(135), Encoding::Ucs2), (135, 3));
        assert_eq!(n(&"😀".repeat(35), Encoding::Ucs2), (70, 1));
    }

    #[test]
    fn emoji_at_ucs2_part_boundary() {
        // 66 units, then an emoji on units 67-68: part one ends at 66 units.
        let text = format!("{}😀{}", "ж".repeat(66), "ж".repeat(5));
        let enc = encode(&text, Encoding::Ucs2).expect("ucs2");
        let ranges = part_ranges(&enc, Encoding::Ucs2);
        assert_eq!(ranges[0], 0..132);
        assert_eq!(ranges[1], 132..enc.len());
        assert_eq!(count_encoded(&enc, Encoding::Ucs2).parts, 2);
    }

    #[test]
    fn octet_boundaries() {
        assert_eq!(count_encoded(&[0u8; 140], Encoding::Octet(4)).parts, 1);
        assert_eq!(count_encoded(&[0u8; 141], Encoding::Octet(4)).parts, 2);
        assert_eq!(count_encoded(&[0u8; 268], Encoding::Latin1).parts, 2);
        assert_eq!(count_encoded(&[0u8; 269], Encoding::Latin1).parts, 3);
        assert_eq!(count_encoded(&[b'a'; 161], Encoding::Ia5).parts, 2);
    }

    #[test]
    fn auto_and_odd_ucs2() {
        assert_eq!(count_auto("hello").encoding, Encoding::Gsm7);
        assert_eq!(count_auto("hello 😀").encoding, Encoding::Ucs2);
        assert_eq!(count_auto("hello 😀").units, 8);
        // A trailing odd octet is one unit and never makes the walk stall.
        let c = count_encoded(&[0x00; 143], Encoding::Ucs2);
        assert_eq!((c.units, c.parts), (72, 2));
        assert!(count("😀", Encoding::Gsm7).is_err());
    }
}
