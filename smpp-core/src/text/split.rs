//! Splitting a long message into `submit_sm` parts, with a UDH or SAR TLVs.

use std::sync::atomic::{AtomicU16, Ordering};

use bytes::Bytes;

use super::TextError;
use super::coding::{Encoding, encode};
use super::parts::part_ranges;

/// The `esm_class` bit (UDHI) that tells the SMSC the `short_message` starts with
/// a user data header. The caller ORs it into `esm_class` for every part that
/// has [`Part::udh`]; [`Part::esm_class_bits`] returns it.
pub const ESM_CLASS_UDHI: u8 = 0x40;

/// Information element id of the concatenation IE with an 8-bit reference.
pub const IEI_CONCAT_8: u8 = 0x00;
/// Information element id of the concatenation IE with a 16-bit reference.
pub const IEI_CONCAT_16: u8 = 0x08;

/// How parts are tied together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SplitMode {
    /// A 6-octet UDH `05 00 03 ref total seq` in front of each part (8-bit
    /// reference). Works with every SMSC, since it is what goes on the air.
    Udh,
    /// No UDH; the caller sets the `sar_msg_ref_num`, `sar_total_segments` and
    /// `sar_segment_seqnum` TLVs from [`Part::sar`]. The SMSC builds the UDH, so
    /// the per-part limits are the same as with [`SplitMode::Udh`].
    Sar,
}

/// The three SAR TLV values of one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SarInfo {
    /// `sar_msg_ref_num`: same for all parts of a message.
    pub msg_ref_num: u16,
    /// `sar_total_segments`.
    pub total_segments: u8,
    /// `sar_segment_seqnum`, 1-based.
    pub segment_seqnum: u8,
}

/// One `submit_sm` worth of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// 1-based position of the part.
    pub seq: u8,
    /// Number of parts of the message.
    pub total: u8,
    /// The concatenation UDH, in UDH mode, for messages of more than one part.
    pub udh: Option<[u8; 6]>,
    /// The SAR values, in SAR mode, for messages of more than one part.
    pub sar: Option<SarInfo>,
    /// The encoded text of this part (unpacked septets for GSM 7-bit).
    pub payload: Bytes,
}

impl Part {
    /// The `short_message` octets: UDH (if any) followed by the payload.
    pub fn short_message(&self) -> Bytes {
        match &self.udh {
            None => self.payload.clone(),
            Some(udh) => {
                let mut v = Vec::with_capacity(udh.len() + self.payload.len());
                v.extend_from_slice(udh);
                v.extend_from_slice(&self.payload);
                Bytes::from(v)
            }
        }
    }

    /// Bits the caller has to OR into `esm_class`: UDHI when a UDH is present.
    pub fn esm_class_bits(&self) -> u8 {
        if self.udh.is_some() {
            ESM_CLASS_UDHI
        } else {
            0
        }
    }

    /// Value for the `more_messages_to_send` TLV: true on every part but the
    /// last, as Jasmin sends it.
    pub fn more_messages_to_send(&self) -> bool {
        self.seq < self.total
    }
}

/// Builds the 6-octet concatenation UDH with an 8-bit reference.
pub fn concat_udh(reference: u8, total: u8, seq: u8) -> [u8; 6] {
    [0x05, IEI_CONCAT_8, 0x03, reference, total, seq]
}

/// Splits an encoded payload (see [`super::coding::encode`]) into parts.
///
/// A payload that fits in one message gives one part without UDH or SAR
/// values. Otherwise every part gets the same `reference`; in UDH mode only its
/// low 8 bits are used. Parts never cut a GSM escape pair or a UTF-16 surrogate
/// pair (see [`super::parts`]), so [`super::parts::count_encoded`] always equals
/// the number of parts returned. More than 255 parts cannot be numbered and is
/// an error; Jasmin silently drops the text beyond its part cap, we let the
/// caller decide.
pub fn split(
    payload: impl Into<Bytes>,
    encoding: Encoding,
    mode: SplitMode,
    reference: u16,
) -> Result<Vec<Part>, TextError> {
    let payload: Bytes = payload.into();
    let ranges = part_ranges(&payload, encoding);
    let total = u8::try_from(ranges.len()).map_err(|_| TextError::TooManyParts(ranges.len()))?;
    if total <= 1 {
        return Ok(vec![Part {
            seq: 1,
            total: 1,
            udh: None,
            sar: None,
            payload,
        }]);
    }
    let mut parts = Vec::with_capacity(ranges.len());
    for (seq, range) in (1..=total).zip(ranges) {
        let (udh, sar) = match mode {
            SplitMode::Udh => (Some(concat_udh((reference & 0xFF) as u8, total, seq)), None),
            SplitMode::Sar => (
                None,
                Some(SarInfo {
                    msg_ref_num: reference,
                    total_segments: total,
                    segment_seqnum: seq,
                }),
            ),
        };
        parts.push(Part {
            seq,
            total,
            udh,
            sar,
            payload: payload.slice(range),
        });
    }
    Ok(parts)
}

/// Encodes `text` (strictly) and splits it.
pub fn split_text(
    text: &str,
    encoding: Encoding,
    mode: SplitMode,
    reference: u16,
) -> Result<Vec<Part>, TextError> {
    split(encode(text, encoding)?, encoding, mode, reference)
}

/// Hands out concatenation references.
///
/// Jasmin uses one process-wide counter running 1..255, so two long messages to
/// the same handset get the same reference after 255 other long messages, and a
/// restart starts again at 1 while the handset may still hold parts of an earlier
/// message. This generator starts at a random value (so restarts don't reuse the
/// recent references), is lock-free, and hands out 16-bit values for SAR
/// (65 536 before reuse). For UDH mode the low 8 bits are used; they still cycle
/// through all 256 values before repeating. Sharing one generator per uplink,
/// rather than one per part or per HTTP request, is what avoids collisions.
#[derive(Debug)]
pub struct RefGenerator {
    next: AtomicU16,
}

impl RefGenerator {
    /// A generator starting at a random reference.
    pub fn new() -> Self {
        Self::starting_at(rand::random::<u16>())
    }

    /// A generator starting at `start` (for tests and reproducible runs).
    pub fn starting_at(start: u16) -> Self {
        Self {
            next: AtomicU16::new(start),
        }
    }

    /// The next 16-bit reference (wraps around).
    pub fn next_u16(&self) -> u16 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The next 8-bit reference, for UDH mode.
    pub fn next_u8(&self) -> u8 {
        (self.next_u16() & 0xFF) as u8
    }
}

impl Default for RefGenerator {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_part_has_no_header() {
        let parts = split_text("hello", Encoding::Gsm7, SplitMode::Udh, 7).expect("split");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].udh, None);
        assert_eq!(parts[0].sar, None);
        assert_eq!(parts[0].esm_class_bits(), 0);
        assert!(!parts[0].more_messages_to_send());
        assert_eq!(&parts[0].short_message()[..], b"hello");
    }

    #[test]
    fn udh_parts() {
        let text = "x".repeat(400);
        let parts = split_text(&text, Encoding::Gsm7, SplitMode::Udh, 0x1234).expect("split");
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].payload.len(), 153);
        assert_eq!(parts[1].payload.len(), 153);
        assert_eq!(parts[2].payload.len(), 94);
        assert_eq!(parts[1].udh, Some([0x05, 0x00, 0x03, 0x34, 3, 2]));
        assert_eq!(parts[1].esm_class_bits(), ESM_CLASS_UDHI);
        assert_eq!(parts[1].short_message().len(), 159);
        assert!(parts[1].more_messages_to_send());
        assert!(!parts[2].more_messages_to_send());
    }

    #[test]
    fn sar_parts() {
        let text = "ж".repeat(100);
        let parts = split_text(&text, Encoding::Ucs2, SplitMode::Sar, 0x1234).expect("split");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].payload.len(), 134);
        assert_eq!(parts[1].payload.len(), 66);
        assert_eq!(parts[0].udh, None);
        assert_eq!(
            parts[1].sar,
            Some(SarInfo {
                msg_ref_num: 0x1234,
                total_segments: 2,
                segment_seqnum: 2
            })
        );
    }

    #[test]
    fn too_many_parts() {
        let payload = vec![0u8; 134 * 256];
        assert_eq!(
            split(payload, Encoding::Octet(4), SplitMode::Udh, 1),
            Err(TextError::TooManyParts(256))
        );
        let payload = vec![0u8; 134 * 255];
        assert_eq!(
            split(payload, Encoding::Octet(4), SplitMode::Udh, 1).map(|p| p.len()),
            Ok(255)
        );
    }

    #[test]
    fn ref_generator_wraps() {
        let g = RefGenerator::starting_at(u16::MAX);
        assert_eq!(g.next_u16(), u16::MAX);
        assert_eq!(g.next_u16(), 0);
        assert_eq!(g.next_u8(), 1);
        let _random = RefGenerator::default().next_u8();
    }
}
