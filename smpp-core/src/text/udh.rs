//! Parsing a user data header (3GPP TS 23.040 §9.2.3.24).
//!
//! Inbound UDHs come from operators and handsets, so the parser never trusts a
//! length: every IE length and the UDHL itself are checked against the data
//! actually present. Unlike Jasmin, which only recognises `05 00 03` at the very
//! start, concatenation IEs are found anywhere among other IEs (port addressing,
//! national language shift…) and both 8-bit (0x00) and 16-bit (0x08) references
//! are understood.

use thiserror::Error;

use super::split::{IEI_CONCAT_8, IEI_CONCAT_16};

/// Why a UDH could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UdhError {
    /// No octets at all, so not even a UDHL.
    #[error("empty user data: no UDH length octet")]
    Empty,
    /// The UDHL claims more octets than the message holds.
    #[error("UDH length {udhl} exceeds the {available} octets that follow it")]
    LengthOverrun {
        /// The UDHL octet.
        udhl: u8,
        /// Octets present after the UDHL.
        available: usize,
    },
    /// An IE header or body runs past the end of the UDH.
    #[error("information element at UDH offset {offset} is truncated")]
    TruncatedIe {
        /// Offset of the IE from the start of the message (UDHL at 0).
        offset: usize,
    },
    /// A concatenation IE with the wrong length: using it could glue unrelated
    /// parts together, so the header is rejected.
    #[error("concatenation IE {iei:#04x} has length {len}, expected {expected}")]
    BadConcatLength {
        /// 0x00 or 0x08.
        iei: u8,
        /// The length found.
        len: u8,
        /// 3 or 4.
        expected: u8,
    },
}

/// One information element, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InformationElement<'a> {
    /// The IE identifier.
    pub iei: u8,
    /// The IE data (without IEI and length octets).
    pub data: &'a [u8],
}

/// Concatenation information, from a UDH or SAR TLVs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concat {
    /// Reference shared by all parts (8-bit references are widened).
    pub reference: u16,
    /// Number of parts, at least 1.
    pub total: u8,
    /// Position of this part, 1..=total.
    pub seq: u8,
}

impl Concat {
    /// Builds concatenation info, or `None` when the numbers cannot describe a
    /// part (total 0, seq 0, seq > total). TS 23.040 says to ignore such an IE.
    pub fn new(reference: u16, total: u8, seq: u8) -> Option<Self> {
        (total >= 1 && seq >= 1 && seq <= total).then_some(Self {
            reference,
            total,
            seq,
        })
    }
}

/// A parsed UDH and the user data that follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Udh<'a> {
    /// Octets taken by the header, UDHL octet included.
    pub header_len: usize,
    /// All IEs in order of appearance.
    pub ies: Vec<InformationElement<'a>>,
    /// Concatenation info, when a valid 0x00 or 0x08 IE is present. If several
    /// are present the last one wins, as TS 23.040 specifies for repeated IEs.
    pub concat: Option<Concat>,
    /// The octets after the header (the part's payload).
    pub body: &'a [u8],
}

/// Parses the UDH at the start of `user_data` (the whole `short_message` of a
/// PDU whose `esm_class` has UDHI set).
pub fn parse_udh(user_data: &[u8]) -> Result<Udh<'_>, UdhError> {
    let (&udhl, rest) = user_data.split_first().ok_or(UdhError::Empty)?;
    let header_body = rest
        .get(..usize::from(udhl))
        .ok_or(UdhError::LengthOverrun {
            udhl,
            available: rest.len(),
        })?;
    let body = rest.get(usize::from(udhl)..).unwrap_or_default();

    let mut ies = Vec::new();
    let mut concat = None;
    let mut pos = 0usize;
    while pos < header_body.len() {
        let offset = pos + 1;
        let (iei, len) = match header_body.get(pos..pos + 2) {
            Some(&[iei, len]) => (iei, len),
            _ => return Err(UdhError::TruncatedIe { offset }),
        };
        let data_start = pos + 2;
        let data_end = data_start + usize::from(len);
        let data = header_body
            .get(data_start..data_end)
            .ok_or(UdhError::TruncatedIe { offset })?;
        match (iei, data) {
            (IEI_CONCAT_8, &[r, total, seq]) => {
                if let Some(c) = Concat::new(u16::from(r), total, seq) {
                    concat = Some(c);
                }
            }
            (IEI_CONCAT_16, &[hi, lo, total, seq]) => {
                if let Some(c) = Concat::new(u16::from_be_bytes([hi, lo]), total, seq) {
                    concat = Some(c);
                }
            }
            (IEI_CONCAT_8, _) => {
                return Err(UdhError::BadConcatLength {
                    iei,
                    len,
                    expected: 3,
                });
            }
            (IEI_CONCAT_16, _) => {
                return Err(UdhError::BadConcatLength {
                    iei,
                    len,
                    expected: 4,
                });
            }
            _ => {}
        }
        ies.push(InformationElement { iei, data });
        pos = data_end;
    }
    Ok(Udh {
        header_len: 1 + usize::from(udhl),
        ies,
        concat,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_8bit() {
        let sm = [0x05, 0x00, 0x03, 0xAB, 0x03, 0x02, b'h', b'i'];
        let udh = parse_udh(&sm).expect("valid");
        assert_eq!(udh.header_len, 6);
        assert_eq!(udh.concat, Concat::new(0xAB, 3, 2));
        assert_eq!(udh.body, b"hi");
        assert_eq!(udh.ies.len(), 1);
    }

    #[test]
    fn sixteen_bit_among_other_ies() {
        // Port addressing (0x05, 4 octets) first, then 16-bit concat.
        let sm = [
            0x0C, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x08, 0x04, 0x12, 0x34, 0x02, 0x01, b'x',
        ];
        let udh = parse_udh(&sm).expect("valid");
        assert_eq!(udh.header_len, 13);
        assert_eq!(udh.concat, Concat::new(0x1234, 2, 1));
        assert_eq!(udh.ies[0].iei, 0x05);
        assert_eq!(udh.body, b"x");
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(parse_udh(&[]), Err(UdhError::Empty));
        assert_eq!(
            parse_udh(&[0x05, 0x00, 0x03]),
            Err(UdhError::LengthOverrun {
                udhl: 5,
                available: 2
            })
        );
        // IE length runs past the UDHL.
        assert_eq!(
            parse_udh(&[0x03, 0x00, 0x03, 0x01, 0x02, 0x03]),
            Err(UdhError::TruncatedIe { offset: 1 })
        );
        // Single dangling octet where an IE header should be.
        assert_eq!(
            parse_udh(&[0x01, 0x00]),
            Err(UdhError::TruncatedIe { offset: 1 })
        );
        assert_eq!(
            parse_udh(&[0x04, 0x00, 0x02, 0x01, 0x02]),
            Err(UdhError::BadConcatLength {
                iei: 0,
                len: 2,
                expected: 3
            })
        );
        assert_eq!(
            parse_udh(&[0x05, 0x08, 0x03, 0x01, 0x02, 0x01]),
            Err(UdhError::BadConcatLength {
                iei: 8,
                len: 3,
                expected: 4
            })
        );
    }

    #[test]
    fn invalid_numbers_are_ignored_and_last_wins() {
        let zero_total = [0x05, 0x00, 0x03, 0x01, 0x00, 0x01];
        assert_eq!(parse_udh(&zero_total).map(|u| u.concat), Ok(None));
        let seq_over = [0x05, 0x00, 0x03, 0x01, 0x02, 0x03];
        assert_eq!(parse_udh(&seq_over).map(|u| u.concat), Ok(None));
        let two = [
            0x0A, 0x00, 0x03, 0x01, 0x02, 0x01, 0x00, 0x03, 0x09, 0x03, 0x03,
        ];
        assert_eq!(parse_udh(&two).map(|u| u.concat), Ok(Concat::new(9, 3, 3)));
        // Empty UDH (UDHL 0) is valid and carries nothing.
        let empty = parse_udh(&[0x00, b'a']).expect("valid");
        assert_eq!(
            (empty.header_len, empty.concat, empty.body),
            (1, None, &b"a"[..])
        );
    }
}
