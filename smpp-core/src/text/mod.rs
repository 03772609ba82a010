//! Text handling for SMS: alphabets, `data_coding`, part counting, splitting
//! long messages and reassembling inbound ones.
//!
//! Everything here is pure (no I/O, no clocks: callers pass `Instant`s in) and
//! never panics on input, because most of the input comes from the network.
//!
//! Typical MT flow: [`coding::choose`] an alphabet (or take the client's
//! `data_coding`), [`coding::encode`], [`parts::count_encoded`] for billing,
//! [`split::split`] with a reference from a shared [`split::RefGenerator`].
//! Typical MO flow: [`udh::parse_udh`] / SAR TLVs into a
//! [`reassembly::Reassembler`], then [`coding::decode`].

use thiserror::Error;

pub mod coding;
pub mod gsm7;
pub mod latin1;
pub mod parts;
pub mod reassembly;
pub mod split;
pub mod ucs2;
pub mod udh;

pub use coding::{Encoding, choose, decode, encode};
pub use parts::{PartCount, count, count_auto, count_encoded};
pub use reassembly::{Complete, Outcome, Partial, Reassembler, ReassemblyError};
pub use split::{ESM_CLASS_UDHI, Part, RefGenerator, SarInfo, SplitMode, split, split_text};
pub use udh::{Concat, Udh, UdhError, parse_udh};

/// Errors of encoding and splitting outbound text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TextError {
    /// A character is not in the GSM 03.38 alphabet.
    #[error(transparent)]
    Gsm7(#[from] gsm7::Gsm7Error),
    /// A character is above U+00FF.
    #[error(transparent)]
    Latin1(#[from] latin1::Latin1Error),
    /// A character is not ASCII (IA5, `data_coding` 1).
    #[error("character {ch:?} at char index {index} is not ASCII")]
    NotAscii {
        /// The offending character.
        ch: char,
        /// Its position, counted in chars.
        index: usize,
    },
    /// The message needs more than 255 parts, which a UDH or the SAR TLVs
    /// cannot number.
    #[error("message needs {0} parts, at most 255 can be numbered")]
    TooManyParts(usize),
}
