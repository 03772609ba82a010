//! Which command_status answers which decoding failure.

use rusmpp::{
    CommandStatus,
    decode::{COctetStringDecodeError, DecodeError, DecodeErrorKind},
};

use crate::frame::BodyError;

/// The status for a request whose body could not be decoded.
pub fn for_decode_error(error: &DecodeError) -> CommandStatus {
    match error.kind() {
        // The body ends before its fields do, or a C-string runs past the frame.
        DecodeErrorKind::UnexpectedEof
        | DecodeErrorKind::COctetStringDecodeError(COctetStringDecodeError::NotNullTerminated)
        | DecodeErrorKind::COctetStringDecodeError(COctetStringDecodeError::TooFewBytes {
            ..
        }) => CommandStatus::EsmeRinvcmdlen,
        // sm_length disagrees with the data, or exceeds 254.
        DecodeErrorKind::OctetStringDecodeError(_) => CommandStatus::EsmeRinvmsglen,
        DecodeErrorKind::TooManyElements { .. } => CommandStatus::EsmeRinvnumdests,
        DecodeErrorKind::UnsupportedKey { .. } => CommandStatus::EsmeRinvtlvstream,
        _ => CommandStatus::EsmeRsyserr,
    }
}

/// The status for a request whose frame was refused by [`crate::frame::Frame::decode`].
pub fn for_body_error(error: &BodyError) -> CommandStatus {
    match error {
        BodyError::Decode(e) => for_decode_error(e),
        // SMPP 3.4 ESME_RINVPARLEN (0xC2): invalid parameter length.
        BodyError::TlvLength { .. } => CommandStatus::EsmeRinvtlvlen,
        // SMPP 3.4 ESME_RINVOPTPARAMVAL (0xC4): invalid optional parameter value.
        BodyError::TlvValue { .. } => CommandStatus::EsmeRinvtlvval,
    }
}
