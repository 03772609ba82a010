//! GSM 03.38 (3GPP TS 23.038) default alphabet and its extension table.
//!
//! SMPP carries `data_coding` 0 as *unpacked* septets: one septet per octet of
//! `short_message`. That is the representation this module works with
//! ([`encode`], [`decode`]). Packing eight septets into seven octets only matters
//! when a caller has to build or read a raw TP-UD (for example a packed body behind
//! a UDH), which is what [`pack`] / [`unpack`] and their `fill_bits` are for.
//!
//! Characters of the extension table are sent as two septets, `ESC` (0x1B)
//! followed by the extension code; that is why they count double when the
//! message length is computed.

use thiserror::Error;

/// The escape septet that introduces a character of the extension table.
pub const ESC: u8 = 0x1B;

/// Replacement septet used by the lossy encoder (`?` is 0x3F in both GSM and ASCII).
/// Jasmin replaces unmappable characters with `?` as well, so clients see the same
/// result after migration.
pub const REPLACEMENT: u8 = 0x3F;

/// The basic (default) alphabet, indexed by septet value. 0x1B is the escape code;
/// when decoded on its own (a dangling escape) it is shown as a space, as the
/// standard asks receivers that do not understand an escape sequence to do.
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ' ', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: (code after ESC, character).
pub const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{000C}'), // form feed (page break)
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// Marker bit in [`ASCII_MAP`]: the code belongs to the extension table.
const EXT_FLAG: u8 = 0x80;
/// Marker in [`ASCII_MAP`]: the ASCII character has no GSM representation.
const NONE: u8 = 0xFF;

/// ASCII → septet lookup built at compile time from the two tables above, so the
/// hot path (plain ASCII text) is one array index per character and cannot drift
/// from the decode tables.
const ASCII_MAP: [u8; 128] = build_ascii_map();

const fn build_ascii_map() -> [u8; 128] {
    let mut map = [NONE; 128];
    let mut i = 0;
    while i < 128 {
        let c = BASIC[i] as u32;
        // 0x1B is displayed as a space but must never be produced for ' '.
        if c < 128 && i != ESC as usize {
            map[c as usize] = i as u8;
        }
        i += 1;
    }
    let mut j = 0;
    while j < EXTENSION.len() {
        let (code, ch) = EXTENSION[j];
        let c = ch as u32;
        if c < 128 {
            map[c as usize] = code | EXT_FLAG;
        }
        j += 1;
    }
    map
}

/// Errors of the strict GSM 7-bit functions.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Gsm7Error {
    /// A character has no representation in the default alphabet or its extension.
    #[error("character {ch:?} at char index {index} is not in the GSM 03.38 alphabet")]
    Unmappable {
        /// The offending character.
        ch: char,
        /// Its position, counted in chars.
        index: usize,
    },
    /// A value handed to [`pack`] does not fit in seven bits.
    #[error("value {value:#04x} at index {index} is not a septet")]
    NotASeptet {
        /// The offending byte.
        value: u8,
        /// Its position in the input.
        index: usize,
    },
    /// Fill bits must be 0..=6; seven would be a whole septet.
    #[error("fill bits must be 0..=6, got {0}")]
    InvalidFillBits(u8),
    /// The packed input is shorter than the requested number of septets needs.
    #[error("packed data holds {available} bits, {needed} are needed")]
    Truncated {
        /// Bits needed for the fill bits plus the septets requested.
        needed: usize,
        /// Bits present in the input.
        available: usize,
    },
}

/// How a character maps to GSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mapped {
    Basic(u8),
    Ext(u8),
}

/// Looks a character up. Non-ASCII characters are matched explicitly (39 of them)
/// rather than by scanning the table, so encoding stays O(1) per character.
fn lookup(c: char) -> Option<Mapped> {
    let cp = c as u32;
    if cp < 128 {
        let v = ASCII_MAP[cp as usize];
        return match v {
            NONE => None,
            v if v & EXT_FLAG != 0 => Some(Mapped::Ext(v & !EXT_FLAG)),
            v => Some(Mapped::Basic(v)),
        };
    }
    let septet = match c {
        '£' => 0x01,
        '¥' => 0x03,
        'è' => 0x04,
        'é' => 0x05,
        'ù' => 0x06,
        'ì' => 0x07,
        'ò' => 0x08,
        'Ç' => 0x09,
        'Ø' => 0x0B,
        'ø' => 0x0C,
        'Å' => 0x0E,
        'å' => 0x0F,
        'Δ' => 0x10,
        'Φ' => 0x12,
        'Γ' => 0x13,
        'Λ' => 0x14,
        'Ω' => 0x15,
        'Π' => 0x16,
        'Ψ' => 0x17,
        'Σ' => 0x18,
        'Θ' => 0x19,
        'Ξ' => 0x1A,
        'Æ' => 0x1C,
        'æ' => 0x1D,
        'ß' => 0x1E,
        'É' => 0x1F,
        '¤' => 0x24,
        '¡' => 0x40,
        'Ä' => 0x5B,
        'Ö' => 0x5C,
        'Ñ' => 0x5D,
        'Ü' => 0x5E,
        '§' => 0x5F,
        '¿' => 0x60,
        'ä' => 0x7B,
        'ö' => 0x7C,
        'ñ' => 0x7D,
        'ü' => 0x7E,
        'à' => 0x7F,
        '€' => return Some(Mapped::Ext(0x65)),
        _ => return None,
    };
    Some(Mapped::Basic(septet))
}

/// Number of septets `c` takes: 1 for the basic alphabet, 2 for the extension
/// table, `None` when it cannot be sent in GSM 7-bit at all.
pub fn char_septets(c: char) -> Option<usize> {
    match lookup(c)? {
        Mapped::Basic(_) => Some(1),
        Mapped::Ext(_) => Some(2),
    }
}

/// True when every character of `text` can be sent in GSM 7-bit.
///
/// Pure ASCII is checked with the compile-time table only; this is the common
/// case and it decides between GSM 7-bit and UCS-2 for every submitted message.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| lookup(c).is_some())
}

/// Number of septets `text` needs, or `None` when a character does not map.
pub fn septet_len(text: &str) -> Option<usize> {
    text.chars()
        .try_fold(0usize, |n, c| Some(n + char_septets(c)?))
}

fn push_mapped(out: &mut Vec<u8>, m: Mapped) {
    match m {
        Mapped::Basic(s) => out.push(s),
        Mapped::Ext(s) => {
            out.push(ESC);
            out.push(s);
        }
    }
}

/// Encodes `text` to unpacked septets, failing on the first character that has no
/// GSM representation. Use this when silently altering the text is unacceptable
/// (the caller can then fall back to UCS-2).
pub fn encode(text: &str) -> Result<Vec<u8>, Gsm7Error> {
    let mut out = Vec::with_capacity(text.len());
    for (index, ch) in text.chars().enumerate() {
        let m = lookup(ch).ok_or(Gsm7Error::Unmappable { ch, index })?;
        push_mapped(&mut out, m);
    }
    Ok(out)
}

/// Encodes `text` to unpacked septets, replacing unmappable characters with `?`
/// as Jasmin does.
pub fn encode_lossy(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for ch in text.chars() {
        push_mapped(&mut out, lookup(ch).unwrap_or(Mapped::Basic(REPLACEMENT)));
    }
    out
}

/// Decodes a single extension code (the septet following ESC).
fn decode_ext(code: u8) -> Option<char> {
    EXTENSION
        .iter()
        .find(|(c, _)| *c == code)
        .map(|&(_, ch)| ch)
}

/// Decodes unpacked septets to text. Never fails, because the bytes come from the
/// network and a receipt or MO must still be delivered:
///
/// * `ESC` followed by a code that is not in the extension table decodes as the
///   *base* character of that code. 3GPP TS 23.038 §6.2.1.1 asks receivers to
///   "display the character shown in the main default 7 bit alphabet table" in
///   that case; we follow it because it keeps the information (a space would not).
/// * `ESC ESC` (reserved for a future second extension) and a dangling `ESC` at
///   the end decode as a space, as the standard asks.
/// * Bytes above 0x7F are not septets at all; they decode as U+FFFD so the damage
///   is visible rather than masked into some other character.
pub fn decode(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    let mut iter = septets.iter().copied();
    while let Some(b) = iter.next() {
        if b == ESC {
            match iter.next() {
                None | Some(ESC) => out.push(' '),
                Some(code) => match decode_ext(code) {
                    Some(ch) => out.push(ch),
                    None => out.push(basic_char(code)),
                },
            }
        } else {
            out.push(basic_char(b));
        }
    }
    out
}

fn basic_char(b: u8) -> char {
    BASIC
        .get(usize::from(b))
        .copied()
        .unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Fill bits needed after a UDH of `udh_len` octets (UDHL byte included) so that
/// the first septet of the body starts on a septet boundary of the TP-UD.
pub fn fill_bits_for_udh(udh_len: usize) -> u8 {
    let bits = (udh_len % 7) * 8; // only the remainder matters, keeps it overflow-free
    ((7 - bits % 7) % 7) as u8
}

/// Packs septets eight into seven octets, LSB first, after `fill_bits` zero bits.
///
/// The fill bits are what a packed body behind a UDH needs (see
/// [`fill_bits_for_udh`]). An empty input packs to an empty output, whatever the
/// fill. Values above 0x7F are rejected rather than masked so that a caller that
/// passes octets by mistake finds out.
pub fn pack(septets: &[u8], fill_bits: u8) -> Result<Vec<u8>, Gsm7Error> {
    if fill_bits > 6 {
        return Err(Gsm7Error::InvalidFillBits(fill_bits));
    }
    if septets.is_empty() {
        return Ok(Vec::new());
    }
    let total_bits = usize::from(fill_bits) + septets.len() * 7;
    let mut out = Vec::with_capacity(total_bits.div_ceil(8));
    let mut acc: u32 = 0;
    let mut nbits: u32 = u32::from(fill_bits);
    for (index, &s) in septets.iter().enumerate() {
        if s > 0x7F {
            return Err(Gsm7Error::NotASeptet { value: s, index });
        }
        acc |= u32::from(s) << nbits;
        nbits += 7;
        while nbits >= 8 {
            out.push((acc & 0xFF) as u8);
            acc >>= 8;
            nbits -= 8;
        }
    }
    if nbits > 0 {
        out.push((acc & 0xFF) as u8);
    }
    Ok(out)
}

/// Unpacks `count` septets from packed octets, skipping `fill_bits` leading bits.
///
/// The count has to come from the caller (TP-UDL or sm_length arithmetic)
/// because packed data is ambiguous: seven spare bits at the end look exactly
/// like an `@` (0x00). Zero septets unpack to nothing whatever the fill, the
/// mirror of [`pack`] producing no octets for no septets.
pub fn unpack(bytes: &[u8], count: usize, fill_bits: u8) -> Result<Vec<u8>, Gsm7Error> {
    if fill_bits > 6 {
        return Err(Gsm7Error::InvalidFillBits(fill_bits));
    }
    if count == 0 {
        return Ok(Vec::new());
    }
    let needed = count
        .checked_mul(7)
        .and_then(|b| b.checked_add(usize::from(fill_bits)))
        .ok_or(Gsm7Error::Truncated {
            needed: usize::MAX,
            available: bytes.len().saturating_mul(8),
        })?;
    let available = bytes.len().saturating_mul(8);
    if needed > available {
        return Err(Gsm7Error::Truncated { needed, available });
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let bit = usize::from(fill_bits) + i * 7;
        let byte = bit / 8;
        let shift = bit % 8;
        let lo = u16::from(bytes.get(byte).copied().unwrap_or(0));
        let hi = u16::from(bytes.get(byte + 1).copied().unwrap_or(0));
        let window = lo | (hi << 8);
        out.push(((window >> shift) & 0x7F) as u8);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_basic_char_round_trips() {
        for (i, &c) in BASIC.iter().enumerate() {
            if i == usize::from(ESC) {
                continue;
            }
            let enc = encode(&c.to_string()).expect("basic char maps");
            assert_eq!(enc, vec![i as u8], "char {c:?}");
            assert_eq!(decode(&enc), c.to_string());
        }
    }

    #[test]
    fn every_extension_char_is_two_septets() {
        for &(code, c) in &EXTENSION {
            let enc = encode(&c.to_string()).expect("extension char maps");
            assert_eq!(enc, vec![ESC, code], "char {c:?}");
            assert_eq!(decode(&enc), c.to_string());
            assert_eq!(char_septets(c), Some(2));
        }
        assert_eq!(septet_len("^{}\\[~]|€\u{c}"), Some(20));
    }

    #[test]
    fn unmappable_chars() {
        assert!(!is_gsm7("hello 😀"));
        assert!(!is_gsm7("ç")); // 0x09 is the capital Ç in 23.038
        assert!(!is_gsm7("`"));
        assert_eq!(
            encode("ab`"),
            Err(Gsm7Error::Unmappable { ch: '`', index: 2 })
        );
        assert_eq!(encode_lossy("a😀b"), vec![0x61, REPLACEMENT, 0x62]);
        assert!(is_gsm7("Hello @£$¥ ΔΦ €[]"));
    }

    #[test]
    fn space_is_not_escape() {
        assert_eq!(encode(" ").expect("space"), vec![0x20]);
    }

    #[test]
    fn decode_unknown_escape_and_dangling() {
        // ESC 'A' is not in the extension table: base character.
        assert_eq!(decode(&[ESC, 0x41]), "A");
        assert_eq!(decode(&[0x41, ESC]), "A ");
        assert_eq!(decode(&[ESC, ESC, 0x41]), " A");
        assert_eq!(decode(&[0x80, 0x41]), "\u{FFFD}A");
    }

    #[test]
    fn pack_known_vector() {
        // "hellohello" classic vector from GSM 03.38 examples.
        let septets = encode("hellohello").expect("ascii");
        let packed = pack(&septets, 0).expect("pack");
        assert_eq!(
            packed,
            vec![0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37]
        );
        assert_eq!(unpack(&packed, 10, 0).expect("unpack"), septets);
    }

    #[test]
    fn fill_bits_for_standard_udh() {
        // 6-octet concat UDH: 48 bits, needs 1 fill bit to reach 49 = 7*7.
        assert_eq!(fill_bits_for_udh(6), 1);
        assert_eq!(fill_bits_for_udh(7), 0);
        assert_eq!(fill_bits_for_udh(0), 0);
    }

    #[test]
    fn pack_errors() {
        assert_eq!(pack(&[1], 7), Err(Gsm7Error::InvalidFillBits(7)));
        assert_eq!(
            pack(&[0x80], 0),
            Err(Gsm7Error::NotASeptet {
                value: 0x80,
                index: 0
            })
        );
        assert!(matches!(
            unpack(&[0xFF], 2, 0),
            Err(Gsm7Error::Truncated { .. })
        ));
        assert!(matches!(
            unpack(&[0xFF], usize::MAX, 6),
            Err(Gsm7Error::Truncated { .. })
        ));
        assert_eq!(pack(&[], 3), Ok(Vec::new()));
        assert_eq!(unpack(&[], 0, 3), Ok(Vec::new()));
    }
}
