//! Long content for HTTP senders, on `smpp_core::text`: the limits of Jasmin's table
//! (docs/jasmin-compat.md §1.5: 160/153 for 7-bit codings, 140/134 octets otherwise), a 6-byte
//! UDH (`SplitMode::Udh`) or the SAR TLVs (`SplitMode::Sar`), references from one
//! process-wide `RefGenerator`. Unlike Jasmin, a part never ends inside a GSM escape
//! pair or a UTF-16 surrogate pair.

use std::sync::LazyLock;

use bytes::Bytes;
use smpp_core::text::{self, Encoding, SplitMode};

use crate::model::{
    RawTlv, TAG_MORE_MESSAGES_TO_SEND, TAG_SAR_MSG_REF_NUM, TAG_SAR_SEGMENT_SEQNUM,
    TAG_SAR_TOTAL_SEGMENTS,
};

/// Concatenation references for all long messages of this process.
static REFERENCES: LazyLock<text::RefGenerator> = LazyLock::new(text::RefGenerator::new);

/// One submit_sm worth of a long message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPart {
    /// short_message: the UDH (UDH mode) followed by this part's octets.
    pub content: Bytes,
    /// Bits to OR into esm_class (UDHI in UDH mode).
    pub esm_class_bits: u8,
    /// SAR TLVs (SAR mode) and `more_messages_to_send`; empty for a single message.
    pub tlvs: Vec<RawTlv>,
}

fn tlv(tag: u16, value: &[u8]) -> RawTlv {
    RawTlv {
        tag,
        value: Bytes::copy_from_slice(value),
    }
}

/// Split `content` (already in `data_coding`) into parts, or one part as is.
pub fn split_with(content: &Bytes, data_coding: u8, mode: SplitMode) -> Vec<SplitPart> {
    let encoding = Encoding::from_data_coding(data_coding);
    let count = text::count_encoded(content, encoding).parts;
    let reference = if count > 1 { REFERENCES.next_u16() } else { 0 };
    let parts = match text::split(content.clone(), encoding, mode, reference) {
        Ok(parts) => parts,
        Err(_) => {
            // More than 255 parts cannot be numbered: plain slices, which the caller's
            // part cap (at most 255, see `Settings::long_content_max_parts`) refuses.
            let per_part = encoding.part_limit() * encoding.octets_per_unit();
            return content
                .chunks(per_part)
                .map(|c| SplitPart {
                    content: Bytes::copy_from_slice(c),
                    esm_class_bits: 0,
                    tlvs: Vec::new(),
                })
                .collect();
        }
    };
    parts
        .into_iter()
        .map(|p| {
            let mut tlvs = Vec::new();
            if let Some(sar) = p.sar {
                tlvs.push(tlv(TAG_SAR_MSG_REF_NUM, &sar.msg_ref_num.to_be_bytes()));
                tlvs.push(tlv(TAG_SAR_TOTAL_SEGMENTS, &[sar.total_segments]));
                tlvs.push(tlv(TAG_SAR_SEGMENT_SEQNUM, &[sar.segment_seqnum]));
            }
            if p.total > 1 {
                tlvs.push(tlv(
                    TAG_MORE_MESSAGES_TO_SEND,
                    &[u8::from(p.more_messages_to_send())],
                ));
            }
            SplitPart {
                content: p.short_message(),
                esm_class_bits: p.esm_class_bits(),
                tlvs,
            }
        })
        .collect()
}

/// Split content into parts, each with its UDH, or one part as is.
pub fn split(content: &Bytes, data_coding: u8) -> Vec<Bytes> {
    split_with(content, data_coding, SplitMode::Udh)
        .into_iter()
        .map(|p| p.content)
        .collect()
}

/// How many parts `split` makes of `content` (what billing and `/rate` count).
pub fn count_parts(content: &[u8], data_coding: u8) -> usize {
    text::count_encoded(content, Encoding::from_data_coding(data_coding)).parts
}

/// HTTP `content` with coding=8 is UTF-8 text: send it as UCS-2 (UTF-16BE).
pub fn utf8_to_ucs2(text: &str) -> Bytes {
    Bytes::from(text::ucs2::encode(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_by_jasmin_table() {
        let ucs2 = utf8_to_ucs2(&"я".repeat(100));
        assert_eq!(ucs2.len(), 200);
        let parts = split(&ucs2, 8);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].len(), 6 + 134);
        assert_eq!(&parts[0][..3], &[5, 0, 3]);
        assert_eq!(&parts[1][3..6], &[parts[0][3], 2, 2]);
        assert_eq!(split(&Bytes::from(vec![b'a'; 160]), 0).len(), 1);
        assert_eq!(count_parts(&[b'a'; 161], 0), 2);
        assert_eq!(count_parts(&[b'a'; 140], 4), 1);
        assert_eq!(count_parts(&[b'a'; 141], 4), 2);
        // Two messages get two references.
        let again = split(&ucs2, 8);
        assert_ne!(again[0][3], parts[0][3]);
    }

    #[test]
    fn gsm_escape_pairs_are_not_cut() {
        // 152 'a' then '€' (ESC 0x65): 154 septets, the pair would straddle 153.
        let mut gsm = vec![b'a'; 152];
        gsm.extend_from_slice(&[0x1B, 0x65]);
        gsm.extend_from_slice(&[b'b'; 10]);
        let parts = split(&Bytes::from(gsm), 0);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].len(), 6 + 152);
        assert_eq!(&parts[1][6..8], &[0x1B, 0x65]);
    }

    #[test]
    fn sar_mode_sets_the_tlvs_and_no_udh() {
        let parts = split_with(&Bytes::from(vec![b'x'; 300]), 0, SplitMode::Sar);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content.len(), 153);
        assert_eq!(parts[0].esm_class_bits, 0);
        let value = |p: &SplitPart, tag| {
            p.tlvs
                .iter()
                .find(|t| t.tag == tag)
                .map(|t| t.value.to_vec())
        };
        assert_eq!(
            value(&parts[0], TAG_SAR_MSG_REF_NUM),
            value(&parts[1], TAG_SAR_MSG_REF_NUM)
        );
        assert_eq!(value(&parts[1], TAG_SAR_TOTAL_SEGMENTS), Some(vec![2]));
        assert_eq!(value(&parts[1], TAG_SAR_SEGMENT_SEQNUM), Some(vec![2]));
        assert_eq!(value(&parts[0], TAG_MORE_MESSAGES_TO_SEND), Some(vec![1]));
        assert_eq!(value(&parts[1], TAG_MORE_MESSAGES_TO_SEND), Some(vec![0]));
        let udh = split_with(&Bytes::from(vec![b'x'; 300]), 0, SplitMode::Udh);
        assert_eq!(udh[0].esm_class_bits, 0x40);
        assert_eq!(udh[0].tlvs.len(), 1, "only more_messages_to_send");
    }

    #[test]
    fn more_than_255_parts_are_not_numbered() {
        let parts = split(&Bytes::from(vec![b'x'; 134 * 300]), 4);
        assert_eq!(parts.len(), 300);
        assert!(parts.iter().all(|p| p.len() == 134));
    }
}
