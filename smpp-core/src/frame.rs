//! PDU framing by command_length, and the encoders the sessions use.
//!
//! rusmpp's own codec decodes a body straight from the shared read buffer and can read
//! past command_length, so one malformed PDU would swallow the next. Here a frame is cut
//! off the stream first, exactly command_length bytes, and only then is its body decoded
//! from its own slice: a bad body costs one answer, never the session.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use rusmpp::{
    Command, CommandId, CommandStatus, Pdu,
    decode::{Decode, DecodeError, DecodeWithLength},
    encode::{Length, owned::Encode},
    tlvs::Tlv,
};

/// command_length (4) + command_id (4) + command_status (4) + sequence_number (4).
pub const HEADER_LEN: usize = 16;

/// The default cap on command_length; anything longer closes the session.
pub const DEFAULT_MAX_COMMAND_LENGTH: usize = 64 * 1024;

/// The fixed header of a PDU, read before anything of the body is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub command_length: u32,
    pub command_id: u32,
    pub command_status: u32,
    pub sequence_number: u32,
}

impl Header {
    pub fn command_id(&self) -> CommandId {
        CommandId::from(self.command_id)
    }

    pub fn status(&self) -> CommandStatus {
        CommandStatus::from(self.command_status)
    }

    /// Responses have the high bit of command_id set (generic_nack included).
    pub fn is_response(&self) -> bool {
        self.command_id & 0x8000_0000 != 0
    }
}

/// A command_length that makes the stream impossible to follow: the session must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("command_length {0} is shorter than the 16-byte header")]
    TooShort(u32),
    #[error("command_length {length} exceeds the limit of {max} bytes")]
    TooLong { length: u32, max: usize },
}

/// Why a frame's body was refused.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// rusmpp could not decode the body.
    #[error("undecodable body: {0}")]
    Decode(#[from] DecodeError),
    /// A TLV whose value_length disagrees with the value rusmpp decoded.
    ///
    /// rusmpp 0.4 decodes most TLV values by their type (a u8, a C-string up to
    /// its NUL…) and keeps the declared value_length as it came, without
    /// comparing the two; it also accepts a C-string shorter than its minimum
    /// when more octets follow. Such a command re-encodes with the lying
    /// value_length, so a PDU forwarded to an operator would carry a TLV stream
    /// that the far end parses differently, and the command does not decode
    /// again (found by the `pdu_framing` fuzz target). It is refused here.
    #[error("TLV {tag:#06x} declares {declared} octets but its value takes {actual}")]
    TlvLength {
        /// The TLV tag.
        tag: u16,
        /// value_length as sent.
        declared: u16,
        /// Octets the decoded value takes.
        actual: usize,
    },
    /// A TLV value that does not decode from its own value_length octets.
    ///
    /// rusmpp 0.4 checks a C-string's minimum length against all the octets
    /// left in the body rather than against the string, so a too-short value
    /// (an empty `dest_network_id`, whose minimum is 7 octets) passes when more
    /// octets follow it and fails when it is last. Each TLV is decoded again
    /// from its own octets so the answer does not depend on what follows.
    #[error("TLV {tag:#06x} has an invalid value: {error}")]
    TlvValue {
        /// The TLV tag.
        tag: u16,
        /// Why the value does not decode on its own.
        error: DecodeError,
    },
}

/// One whole PDU cut off the stream. `bytes` starts at command_id (the 4 length bytes are
/// consumed), which is what rusmpp's body decoder expects.
#[derive(Debug)]
pub struct Frame {
    pub header: Header,
    bytes: BytesMut,
}

impl Frame {
    /// Decode the PDU from this frame's bytes only, refusing TLVs whose
    /// value_length does not match their value (see [`BodyError::TlvLength`]).
    pub fn decode(mut self) -> Result<Command, BodyError> {
        let length = self.bytes.len();
        let (command, _) = Command::decode(&mut self.bytes, length)?;
        if let Some(pdu) = command.pdu() {
            check_tlv_lengths(pdu)?;
        }
        Ok(command)
    }
}

fn one(tlv: Option<&Tlv>) -> &[Tlv] {
    tlv.map_or(&[], std::slice::from_ref)
}

/// Every TLV of `pdu` must take exactly the octets its value_length declares.
fn check_tlv_lengths(pdu: &Pdu) -> Result<(), BodyError> {
    let tlvs: &[Tlv] = match pdu {
        Pdu::BindTransmitterResp(p) => one(p.sc_interface_version_tlv()),
        Pdu::BindReceiverResp(p) => one(p.sc_interface_version_tlv()),
        Pdu::BindTransceiverResp(p) => one(p.sc_interface_version_tlv()),
        Pdu::AlertNotification(p) => one(p.ms_availability_status_tlv()),
        Pdu::ReplaceSm(p) => one(p.message_payload_tlv()),
        Pdu::QueryBroadcastSm(p) => one(p.user_message_reference_tlv()),
        Pdu::SubmitSm(p) => p.tlvs(),
        Pdu::SubmitSmResp(p) => p.tlvs(),
        Pdu::DeliverSm(p) => p.tlvs(),
        Pdu::DeliverSmResp(p) => p.tlvs(),
        Pdu::DataSm(p) => p.tlvs(),
        Pdu::DataSmResp(p) => p.tlvs(),
        Pdu::SubmitMulti(p) => p.tlvs(),
        Pdu::SubmitMultiResp(p) => p.tlvs(),
        Pdu::BroadcastSm(p) => p.tlvs(),
        Pdu::BroadcastSmResp(p) => p.tlvs(),
        Pdu::CancelBroadcastSm(p) => p.tlvs(),
        Pdu::QueryBroadcastSmResp(p) => p.tlvs(),
        _ => &[],
    };
    for tlv in tlvs {
        let tag = u16::from(tlv.tag());
        let actual = tlv.value().map_or(0, Length::length);
        if actual != usize::from(tlv.value_length()) {
            return Err(BodyError::TlvLength {
                tag,
                declared: tlv.value_length(),
                actual,
            });
        }
        let mut own = BytesMut::with_capacity(tlv.length());
        tlv.encode(&mut own);
        match <Tlv as Decode>::decode(&mut own) {
            Ok((again, _)) if again == *tlv && own.is_empty() => {}
            Ok(_) => {
                return Err(BodyError::TlvLength {
                    tag,
                    declared: tlv.value_length(),
                    actual,
                });
            }
            Err(error) => return Err(BodyError::TlvValue { tag, error }),
        }
    }
    Ok(())
}

/// Cuts frames off a read buffer.
#[derive(Debug, Clone, Copy)]
pub struct Framer {
    max_command_length: usize,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_COMMAND_LENGTH)
    }
}

impl Framer {
    pub fn new(max_command_length: usize) -> Self {
        Self {
            max_command_length: max_command_length.max(HEADER_LEN),
        }
    }

    /// The next complete frame in `buf`, `Ok(None)` when more bytes are needed.
    ///
    /// The length is checked as soon as its 4 bytes are in, so an oversized PDU is
    /// refused before its body is read.
    pub fn next_frame(&self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let length = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if (length as usize) < HEADER_LEN {
            return Err(FrameError::TooShort(length));
        }
        if length as usize > self.max_command_length {
            return Err(FrameError::TooLong {
                length,
                max: self.max_command_length,
            });
        }
        if buf.len() < length as usize {
            buf.reserve(length as usize - buf.len());
            return Ok(None);
        }
        let mut bytes = buf.split_to(length as usize);
        bytes.advance(4);
        let header = Header {
            command_length: length,
            command_id: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            command_status: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            sequence_number: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
        };
        Ok(Some(Frame { header, bytes }))
    }
}

/// Append `command` with its command_length to `dst`.
pub fn encode_command(command: &Command, dst: &mut BytesMut) {
    let length = 4 + command.length();
    dst.reserve(length);
    dst.put_u32(length as u32);
    command.encode(dst);
}

/// Append a PDU built from a borrowed body, so a request kept for retry need not be cloned.
pub fn encode_pdu(pdu: &Pdu, status: u32, sequence_number: u32, dst: &mut BytesMut) {
    encode_body(
        u32::from(pdu.command_id()),
        status,
        sequence_number,
        pdu,
        dst,
    );
}

/// Append a PDU from its command_id and a borrowed body struct (a `SubmitSm`…).
pub fn encode_body<B: Encode>(
    command_id: u32,
    status: u32,
    sequence_number: u32,
    body: &B,
    dst: &mut BytesMut,
) {
    let length = HEADER_LEN + body.length();
    dst.reserve(length);
    dst.put_u32(length as u32);
    dst.put_u32(command_id);
    dst.put_u32(status);
    dst.put_u32(sequence_number);
    body.encode(dst);
}

/// Append a body-less PDU (enquire_link, unbind, their responses, generic_nack, and
/// error responses, whose body SMPP 3.4 says is not returned).
pub fn encode_header_only(command_id: u32, status: u32, sequence_number: u32, dst: &mut BytesMut) {
    dst.reserve(HEADER_LEN);
    dst.put_u32(HEADER_LEN as u32);
    dst.put_u32(command_id);
    dst.put_u32(status);
    dst.put_u32(sequence_number);
}

/// A whole PDU as bytes, for tests and tools.
pub fn command_bytes(command: &Command) -> Bytes {
    let mut buf = BytesMut::new();
    encode_command(command, &mut buf);
    buf.freeze()
}

/// The response command_id for a request, None for PDUs that take no response.
pub fn response_id(request_id: u32) -> Option<u32> {
    match request_id {
        // alert_notification and outbind have no response; responses have none either.
        0x0000_0102 | 0x0000_000B => None,
        id if id & 0x8000_0000 != 0 => None,
        id => Some(id | 0x8000_0000),
    }
}

pub mod ids {
    //! Raw command_id values (SMPP 3.4 §5.1.2.1), for matching headers without decoding.
    pub const GENERIC_NACK: u32 = 0x8000_0000;
    pub const BIND_RECEIVER: u32 = 0x0000_0001;
    pub const BIND_TRANSMITTER: u32 = 0x0000_0002;
    pub const QUERY_SM: u32 = 0x0000_0003;
    pub const SUBMIT_SM: u32 = 0x0000_0004;
    pub const SUBMIT_SM_RESP: u32 = 0x8000_0004;
    pub const DELIVER_SM: u32 = 0x0000_0005;
    pub const DELIVER_SM_RESP: u32 = 0x8000_0005;
    pub const UNBIND: u32 = 0x0000_0006;
    pub const UNBIND_RESP: u32 = 0x8000_0006;
    pub const REPLACE_SM: u32 = 0x0000_0007;
    pub const CANCEL_SM: u32 = 0x0000_0008;
    pub const BIND_TRANSCEIVER: u32 = 0x0000_0009;
    pub const OUTBIND: u32 = 0x0000_000B;
    pub const ENQUIRE_LINK: u32 = 0x0000_0015;
    pub const ENQUIRE_LINK_RESP: u32 = 0x8000_0015;
    pub const SUBMIT_MULTI: u32 = 0x0000_0021;
    pub const ALERT_NOTIFICATION: u32 = 0x0000_0102;
    pub const DATA_SM: u32 = 0x0000_0103;
    pub const DATA_SM_RESP: u32 = 0x8000_0103;

    /// Is this one of the SMPP 3.4 request command_ids?
    pub fn is_known_request(id: u32) -> bool {
        matches!(
            id,
            BIND_RECEIVER
                | BIND_TRANSMITTER
                | QUERY_SM
                | SUBMIT_SM
                | DELIVER_SM
                | UNBIND
                | REPLACE_SM
                | CANCEL_SM
                | BIND_TRANSCEIVER
                | OUTBIND
                | ENQUIRE_LINK
                | SUBMIT_MULTI
                | ALERT_NOTIFICATION
                | DATA_SM
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enquire_link(seq: u32) -> Bytes {
        command_bytes(&Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink))
    }

    #[test]
    fn waits_for_a_whole_frame() {
        let framer = Framer::default();
        let pdu = enquire_link(7);
        let mut buf = BytesMut::from(&pdu[..10]);
        assert!(framer.next_frame(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&pdu[10..]);
        let frame = framer.next_frame(&mut buf).unwrap().unwrap();
        assert_eq!(frame.header.sequence_number, 7);
        assert_eq!(frame.decode().unwrap().id(), CommandId::EnquireLink);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_body_that_lies_does_not_eat_the_next_pdu() {
        // bind_transceiver whose system_id has no NUL inside the frame.
        let mut bad = BytesMut::new();
        let body = b"abcdef";
        bad.put_u32((HEADER_LEN + body.len()) as u32);
        bad.put_u32(ids::BIND_TRANSCEIVER);
        bad.put_u32(0);
        bad.put_u32(1);
        bad.put_slice(body);
        bad.extend_from_slice(&enquire_link(2));

        let framer = Framer::default();
        let first = framer.next_frame(&mut bad).unwrap().unwrap();
        assert_eq!(first.header.sequence_number, 1);
        assert!(first.decode().is_err());
        let second = framer.next_frame(&mut bad).unwrap().unwrap();
        assert_eq!(second.header.sequence_number, 2);
        assert_eq!(second.decode().unwrap().id(), CommandId::EnquireLink);
    }

    #[test]
    fn refuses_impossible_lengths() {
        let framer = Framer::new(1024);
        let mut short = BytesMut::from(&[0u8, 0, 0, 8, 0, 0, 0, 0x15][..]);
        assert_eq!(
            framer.next_frame(&mut short).unwrap_err(),
            FrameError::TooShort(8)
        );
        let mut long = BytesMut::from(&[0u8, 0, 0x10, 0][..]);
        assert!(matches!(
            framer.next_frame(&mut long),
            Err(FrameError::TooLong { length: 4096, .. })
        ));
    }

    #[test]
    fn header_only_round_trips() {
        let mut buf = BytesMut::new();
        encode_header_only(ids::GENERIC_NACK, 3, 9, &mut buf);
        let frame = Framer::default().next_frame(&mut buf).unwrap().unwrap();
        assert!(frame.header.is_response());
        assert_eq!(frame.header.status(), CommandStatus::EsmeRinvcmdid);
        let command = frame.decode().unwrap();
        assert_eq!(command.id(), CommandId::GenericNack);
        assert_eq!(command.sequence_number(), 9);
    }

    #[test]
    fn borrowed_pdu_encodes_like_a_command() {
        let pdu = Pdu::EnquireLink;
        let mut buf = BytesMut::new();
        encode_pdu(&pdu, 0, 5, &mut buf);
        assert_eq!(buf.freeze(), enquire_link(5));
    }

    /// A submit_sm from 1 to 2 with "hi" and the TLV octets given.
    fn submit_sm_with_tlvs(tlvs: &[u8]) -> BytesMut {
        let mut body = vec![
            0u8, 1, 1, b'1', 0, 1, 1, b'2', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
        ];
        body.extend_from_slice(b"hi");
        body.extend_from_slice(tlvs);
        let mut buf = BytesMut::new();
        buf.put_u32((HEADER_LEN + body.len()) as u32);
        buf.put_u32(ids::SUBMIT_SM);
        buf.put_u32(0);
        buf.put_u32(1);
        buf.put_slice(&body);
        buf
    }

    #[test]
    fn tlv_whose_length_lies_is_refused() {
        // sar_total_segments (u8) declared 2 octets long, then sar_segment_seqnum:
        // rusmpp reads one octet and goes on, a peer honouring value_length would not.
        let mut lying = submit_sm_with_tlvs(&[0x02, 0x0E, 0, 2, 3, 0x02, 0x0F, 0, 1, 1]);
        let frame = Framer::default().next_frame(&mut lying).unwrap().unwrap();
        let error = frame.decode().unwrap_err();
        assert!(matches!(
            error,
            BodyError::TlvLength {
                tag: 0x020E,
                declared: 2,
                actual: 1
            }
        ));
        assert_eq!(
            crate::status::for_body_error(&error),
            CommandStatus::EsmeRinvtlvlen
        );

        let mut honest = submit_sm_with_tlvs(&[0x02, 0x0E, 0, 1, 3, 0x02, 0x0F, 0, 1, 1]);
        let frame = Framer::default().next_frame(&mut honest).unwrap().unwrap();
        let command = frame.decode().unwrap();
        // What is accepted re-encodes to the same octets.
        assert_eq!(
            command_bytes(&command),
            submit_sm_with_tlvs(&[0x02, 0x0E, 0, 1, 3, 0x02, 0x0F, 0, 1, 1]).freeze()
        );
    }

    #[test]
    fn tlv_value_too_short_is_refused_wherever_it_stands() {
        // dest_network_id is a C-string of 7..=66 octets; an empty one ("\0",
        // value_length 1) used to pass when 6 or more octets followed it.
        let followed = [
            0x06, 0x0E, 0, 1, 0, 0x02, 0x0F, 0, 1, 1, 0x02, 0x0E, 0, 1, 1,
        ];
        let mut buf = submit_sm_with_tlvs(&followed);
        let frame = Framer::default().next_frame(&mut buf).unwrap().unwrap();
        let error = frame.decode().unwrap_err();
        assert!(matches!(error, BodyError::TlvValue { tag: 0x060E, .. }));
        assert_eq!(
            crate::status::for_body_error(&error),
            CommandStatus::EsmeRinvtlvval
        );

        let mut last = submit_sm_with_tlvs(&[0x06, 0x0E, 0, 1, 0]);
        let frame = Framer::default().next_frame(&mut last).unwrap().unwrap();
        assert!(frame.decode().is_err());
    }

    #[test]
    fn fuzz_alert_notification_with_short_tlv_is_refused() {
        // Found by fuzz/pdu_framing: dest_network_id (C-string of 7..66 octets)
        // declared 51 octets, "468 " decoded from 5; rusmpp accepted it and the
        // re-encoded PDU no longer decoded.
        let mut buf = BytesMut::from(
            &[
                0x00, 0x00, 0x00, 0x33, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x55, 0xfe, 0x3d,
                0xc3, 0xc1, 0x00, 0xf9, 0x06, 0x18, 0x00, 0xff, 0xff, 0x01, 0x00, 0x06, 0x0e, 0x00,
                0x33, 0x34, 0x36, 0x38, 0x20, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ][..],
        );
        let frame = Framer::default().next_frame(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        assert!(matches!(
            frame.decode(),
            Err(BodyError::TlvLength {
                tag: 0x060E,
                declared: 51,
                actual: 5
            })
        ));
    }

    #[test]
    fn response_ids() {
        assert_eq!(response_id(ids::SUBMIT_SM), Some(ids::SUBMIT_SM_RESP));
        assert_eq!(response_id(ids::ALERT_NOTIFICATION), None);
        assert_eq!(response_id(ids::SUBMIT_SM_RESP), None);
    }
}
