//! The SMPP `data_coding` byte, and picking an alphabet for a text.

use super::{TextError, gsm7, latin1, ucs2};

/// The alphabet a `short_message` is written in, as far as counting, splitting
/// and decoding are concerned.
///
/// The enum describes the *alphabet*, not the full `data_coding` byte: flash or
/// message-class bits of the GSM coding groups are not kept, so a gateway that
/// forwards a message should forward the original byte rather than
/// [`Encoding::data_coding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GSM 03.38 default alphabet, unpacked septets (SMPP `data_coding` 0).
    Gsm7,
    /// IA5 / ASCII (`data_coding` 1): one octet per character. It is a 7-bit
    /// alphabet for the SMSC (160/153 limits) but the octets are ASCII, not GSM
    /// septets: `@` is 0x40 here and 0x00 in GSM, so it needs its own variant.
    Ia5,
    /// ISO-8859-1 (`data_coding` 3), 8-bit limits.
    Latin1,
    /// UCS-2 / UTF-16BE (`data_coding` 8).
    Ucs2,
    /// Any other value: octets carried as they are, 8-bit limits. The byte is
    /// the original `data_coding` (2 and 4 are "octet unspecified"; 5, 6, 7, 9,
    /// 10, 13, 14 are national encodings this gateway does not transcode).
    Octet(u8),
}

/// What the SMSC counts a message in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitKind {
    /// GSM septets (extension characters are two).
    Septet,
    /// UTF-16 code units (astral characters are two).
    CodeUnit,
    /// Octets.
    Octet,
}

impl Encoding {
    /// Maps a `data_coding` byte to the alphabet it implies.
    ///
    /// Beyond the SMPP 3.4 table (0, 1, 3, 8; everything else raw octets), the
    /// GSM 03.38 coding groups are honoured where they name the alphabet
    /// unambiguously: the general group 0x00–0x3F with the "uncompressed" bit
    /// (so 0x10 flash GSM and 0x18 flash UCS-2 decode as text), the message
    /// waiting groups 0xC0–0xEF, and the message class group 0xF0–0xFF. Operators
    /// send flash receipts and MOs with those values, and treating them as raw
    /// octets would make them unreadable.
    pub fn from_data_coding(dc: u8) -> Self {
        match dc {
            0 => Encoding::Gsm7,
            1 => Encoding::Ia5,
            3 => Encoding::Latin1,
            8 => Encoding::Ucs2,
            2 | 4..=7 | 9..=0x0F => Encoding::Octet(dc),
            // General data coding, bit 5 = compressed (we cannot decompress).
            0x10..=0x3F if dc & 0x20 == 0 => match (dc >> 2) & 0x03 {
                0 => Encoding::Gsm7,
                2 => Encoding::Ucs2,
                _ => Encoding::Octet(dc),
            },
            0xC0..=0xDF => Encoding::Gsm7,
            0xE0..=0xEF => Encoding::Ucs2,
            0xF0..=0xFF if dc & 0x04 == 0 => Encoding::Gsm7,
            _ => Encoding::Octet(dc),
        }
    }

    /// The plain `data_coding` byte for this alphabet (no message class).
    pub fn data_coding(self) -> u8 {
        match self {
            Encoding::Gsm7 => 0,
            Encoding::Ia5 => 1,
            Encoding::Latin1 => 3,
            Encoding::Ucs2 => 8,
            Encoding::Octet(dc) => dc,
        }
    }

    /// The unit the SMSC counts this alphabet in.
    pub fn unit_kind(self) -> UnitKind {
        match self {
            Encoding::Gsm7 | Encoding::Ia5 => UnitKind::Septet,
            Encoding::Ucs2 => UnitKind::CodeUnit,
            Encoding::Latin1 | Encoding::Octet(_) => UnitKind::Octet,
        }
    }

    /// Octets per unit in the encoded `short_message` (unpacked GSM is one
    /// septet per octet).
    pub fn octets_per_unit(self) -> usize {
        match self {
            Encoding::Ucs2 => 2,
            _ => 1,
        }
    }

    /// Units that fit in a single, unsplit message: 160 septets, 70 code units
    /// or 140 octets (all of them 140 octets on the air).
    pub fn single_limit(self) -> usize {
        match self.unit_kind() {
            UnitKind::Septet => 160,
            UnitKind::CodeUnit => 70,
            UnitKind::Octet => 140,
        }
    }

    /// Units per part of a long message: the 6-octet concatenation UDH leaves
    /// 134 octets, i.e. 153 septets, 67 code units or 134 octets. The same limit
    /// applies to SAR parts, because the SMSC turns the SAR TLVs into that UDH
    /// on the air.
    pub fn part_limit(self) -> usize {
        match self.unit_kind() {
            UnitKind::Septet => 153,
            UnitKind::CodeUnit => 67,
            UnitKind::Octet => 134,
        }
    }
}

/// Picks the alphabet for `text`: GSM 7-bit when every character maps (160
/// characters per message), else UCS-2. Latin-1 is never chosen automatically
/// because its per-message limit (140) is worse than GSM's and many handsets
/// render it wrongly; callers that want it ask for [`Encoding::Latin1`].
pub fn choose(text: &str) -> Encoding {
    if gsm7::is_gsm7(text) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    }
}

/// Encodes `text` for `encoding`, failing when a character cannot be
/// represented (rather than sending something other than what the client wrote).
///
/// [`Encoding::Octet`] has no text form: the UTF-8 bytes of `text` are returned
/// unchanged, which is what Jasmin does with HTTP content for codings other than
/// 0. Binary payloads should be passed to the splitter as bytes directly.
pub fn encode(text: &str, encoding: Encoding) -> Result<Vec<u8>, TextError> {
    match encoding {
        Encoding::Gsm7 => Ok(gsm7::encode(text)?),
        Encoding::Ia5 => text
            .chars()
            .enumerate()
            .map(|(index, ch)| {
                if ch.is_ascii() {
                    Ok(ch as u8)
                } else {
                    Err(TextError::NotAscii { ch, index })
                }
            })
            .collect(),
        Encoding::Latin1 => Ok(latin1::encode(text)?),
        Encoding::Ucs2 => Ok(ucs2::encode(text)),
        Encoding::Octet(_) => Ok(text.as_bytes().to_vec()),
    }
}

/// Like [`encode`] but replaces unrepresentable characters with `?`.
pub fn encode_lossy(text: &str, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Gsm7 => gsm7::encode_lossy(text),
        Encoding::Ia5 => text
            .chars()
            .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
            .collect(),
        Encoding::Latin1 => latin1::encode_lossy(text),
        Encoding::Ucs2 => ucs2::encode(text),
        Encoding::Octet(_) => text.as_bytes().to_vec(),
    }
}

/// Decodes a `short_message` written with `data_coding`. Never fails: inbound
/// text comes from the network and must be delivered even when damaged, so
/// invalid sequences become U+FFFD. Raw octet codings are read as UTF-8 (lossy),
/// which is the most useful guess for logging and HTTP callbacks.
pub fn decode(bytes: &[u8], data_coding: u8) -> String {
    decode_as(bytes, Encoding::from_data_coding(data_coding))
}

/// [`decode`] for an already mapped [`Encoding`].
pub fn decode_as(bytes: &[u8], encoding: Encoding) -> String {
    match encoding {
        Encoding::Gsm7 => gsm7::decode(bytes),
        Encoding::Ia5 => bytes
            .iter()
            .map(|&b| {
                if b.is_ascii() {
                    char::from(b)
                } else {
                    char::REPLACEMENT_CHARACTER
                }
            })
            .collect(),
        Encoding::Latin1 => latin1::decode(bytes),
        Encoding::Ucs2 => ucs2::decode(bytes),
        Encoding::Octet(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_coding_table() {
        assert_eq!(Encoding::from_data_coding(0), Encoding::Gsm7);
        assert_eq!(Encoding::from_data_coding(1), Encoding::Ia5);
        assert_eq!(Encoding::from_data_coding(2), Encoding::Octet(2));
        assert_eq!(Encoding::from_data_coding(3), Encoding::Latin1);
        assert_eq!(Encoding::from_data_coding(4), Encoding::Octet(4));
        assert_eq!(Encoding::from_data_coding(8), Encoding::Ucs2);
        assert_eq!(Encoding::from_data_coding(14), Encoding::Octet(14));
        assert_eq!(Encoding::from_data_coding(0x10), Encoding::Gsm7);
        assert_eq!(Encoding::from_data_coding(0x18), Encoding::Ucs2);
        assert_eq!(Encoding::from_data_coding(0x14), Encoding::Octet(0x14));
        assert_eq!(Encoding::from_data_coding(0x30), Encoding::Octet(0x30));
        assert_eq!(Encoding::from_data_coding(0xF0), Encoding::Gsm7);
        assert_eq!(Encoding::from_data_coding(0xF4), Encoding::Octet(0xF4));
        assert_eq!(Encoding::from_data_coding(0x80), Encoding::Octet(0x80));
        // The plain SMPP values survive a round trip; coding-group values map
        // to their alphabet's plain value (the class bits are not kept).
        for dc in [0u8, 1, 2, 3, 4, 5, 8, 9, 13, 14] {
            assert_eq!(Encoding::from_data_coding(dc).data_coding(), dc);
        }
        assert_eq!(Encoding::from_data_coding(0xC8).data_coding(), 0);
    }

    #[test]
    fn choose_picks_gsm_or_ucs2() {
        assert_eq!(choose("Hello {world} €5"), Encoding::Gsm7);
        assert_eq!(choose("Привет"), Encoding::Ucs2);
        assert_eq!(choose("café ç"), Encoding::Ucs2);
        assert_eq!(choose(""), Encoding::Gsm7);
    }

    #[test]
    fn encode_decode_each() {
        assert_eq!(encode("a@", Encoding::Gsm7), Ok(vec![0x61, 0x00]));
        assert_eq!(encode("a@", Encoding::Ia5), Ok(vec![0x61, 0x40]));
        assert_eq!(
            encode("aé", Encoding::Ia5),
            Err(TextError::NotAscii { ch: 'é', index: 1 })
        );
        assert_eq!(encode("é", Encoding::Latin1), Ok(vec![0xE9]));
        assert!(encode("€", Encoding::Latin1).is_err());
        assert_eq!(encode("é", Encoding::Octet(4)), Ok("é".as_bytes().to_vec()));
        assert_eq!(decode(&[0x61, 0x00], 0), "a@");
        assert_eq!(decode(&[0x61, 0x40], 1), "a@");
        assert_eq!(decode(&[0x61, 0xC0], 1), "a\u{FFFD}");
        assert_eq!(decode(&[0xE9], 3), "é");
        assert_eq!(decode(&[0x00, 0xE9], 8), "é");
        assert_eq!(decode(&[0xC3, 0xA9], 4), "é");
        assert_eq!(encode_lossy("a€é😀", Encoding::Ia5), b"a???".to_vec());
    }
}
