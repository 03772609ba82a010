//! ISO-8859-1 (SMPP `data_coding` 3).
//!
//! Latin-1 is the first 256 Unicode code points, one octet each, so both
//! directions are a direct cast. It is only used when a client asks for it: many
//! handsets render it badly, which is why [`super::coding::choose`] never picks it.

use thiserror::Error;

/// A character above U+00FF cannot be sent in Latin-1.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("character {ch:?} at char index {index} is not in ISO-8859-1")]
pub struct Latin1Error {
    /// The offending character.
    pub ch: char,
    /// Its position, counted in chars.
    pub index: usize,
}

/// Encodes `text`, failing on the first character above U+00FF.
pub fn encode(text: &str) -> Result<Vec<u8>, Latin1Error> {
    text.chars()
        .enumerate()
        .map(|(index, ch)| u8::try_from(u32::from(ch)).map_err(|_| Latin1Error { ch, index }))
        .collect()
}

/// Encodes `text`, replacing characters above U+00FF with `?`.
pub fn encode_lossy(text: &str) -> Vec<u8> {
    text.chars()
        .map(|ch| u8::try_from(u32::from(ch)).unwrap_or(b'?'))
        .collect()
}

/// Decodes Latin-1 octets. Every octet is a valid character, so this cannot fail.
pub fn decode(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_all_octets() {
        let all: Vec<u8> = (0..=255).collect();
        let text = decode(&all);
        assert_eq!(text.chars().count(), 256);
        assert_eq!(encode(&text), Ok(all));
    }

    #[test]
    fn rejects_above_ff() {
        assert_eq!(
            encode("aé€"),
            Err(Latin1Error {
                ch: '€', index: 2
            })
        );
        assert_eq!(encode_lossy("aé€"), vec![b'a', 0xE9, b'?']);
    }
}
