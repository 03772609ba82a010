//! UCS-2 as used on SMPP (`data_coding` 8): in practice UTF-16BE.
//!
//! Handsets and SMSCs accept surrogate pairs, so characters outside the BMP
//! (emoji) are sent as two code units. The only rule that matters for long
//! messages is that a pair is never cut between two parts: a handset that
//! receives half a pair shows garbage, or drops the part.

use thiserror::Error;

/// Errors of the strict decoder.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Ucs2Error {
    /// UTF-16 data must have an even number of octets.
    #[error("odd number of octets ({0}) in UCS-2 data")]
    OddLength(usize),
    /// A surrogate without its partner.
    #[error("unpaired surrogate {unit:#06x} at octet offset {offset}")]
    LoneSurrogate {
        /// The code unit.
        unit: u16,
        /// Octet offset of the code unit.
        offset: usize,
    },
}

/// True for the first (high) half of a surrogate pair.
pub const fn is_high_surrogate(unit: u16) -> bool {
    matches!(unit, 0xD800..=0xDBFF)
}

/// Number of UTF-16 code units `text` takes (astral characters count 2).
pub fn unit_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Encodes `text` as UTF-16BE. Every Rust string is valid Unicode, so this
/// cannot fail.
pub fn encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2);
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_be_bytes());
    }
    out
}

fn units(bytes: &[u8]) -> impl Iterator<Item = u16> + '_ {
    bytes
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
}

/// Decodes UTF-16BE, replacing unpaired surrogates and a trailing odd octet with
/// U+FFFD. Inbound messages must be delivered even when an SMSC split a pair or
/// padded the body, so the lossy variant is the default one.
pub fn decode(bytes: &[u8]) -> String {
    let mut out: String = char::decode_utf16(units(bytes))
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    if bytes.len() % 2 == 1 {
        out.push(char::REPLACEMENT_CHARACTER);
    }
    out
}

/// Decodes UTF-16BE, rejecting odd lengths and unpaired surrogates.
pub fn decode_strict(bytes: &[u8]) -> Result<String, Ucs2Error> {
    if bytes.len() % 2 == 1 {
        return Err(Ucs2Error::OddLength(bytes.len()));
    }
    let mut out = String::with_capacity(bytes.len() / 2);
    let mut offset = 0usize;
    for r in char::decode_utf16(units(bytes)) {
        match r {
            Ok(c) => {
                out.push(c);
                offset += c.len_utf16() * 2;
            }
            Err(e) => {
                return Err(Ucs2Error::LoneSurrogate {
                    unit: e.unpaired_surrogate(),
                    offset,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn astral_is_a_surrogate_pair() {
        let enc = encode("a😀");
        assert_eq!(enc, vec![0x00, 0x61, 0xD8, 0x3D, 0xDE, 0x00]);
        assert_eq!(unit_len("a😀"), 3);
        assert_eq!(decode(&enc), "a😀");
        assert_eq!(decode_strict(&enc).as_deref(), Ok("a😀"));
    }

    #[test]
    fn lone_surrogates() {
        let cut = [0x00, 0x61, 0xD8, 0x3D];
        assert_eq!(decode(&cut), "a\u{FFFD}");
        assert_eq!(
            decode_strict(&cut),
            Err(Ucs2Error::LoneSurrogate {
                unit: 0xD83D,
                offset: 2
            })
        );
        let low_first = [0xDE, 0x00, 0x00, 0x61];
        assert_eq!(decode(&low_first), "\u{FFFD}a");
    }

    #[test]
    fn odd_length() {
        assert_eq!(decode(&[0x00, 0x61, 0x00]), "a\u{FFFD}");
        assert_eq!(decode_strict(&[0x00]), Err(Ucs2Error::OddLength(1)));
        assert_eq!(decode(&[]), "");
    }
}
