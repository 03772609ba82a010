//! Arbitrary bytes as an inbound SMPP stream: cut frames, decode each one, map
//! decode errors to a command_status, and re-encode every decoded command.
//!
//! Property: decode(encode(decode(frame))) == decode(frame), and the re-encoded
//! bytes are exactly one frame whose header matches the command.
//!
//! One normalisation by rusmpp is allowed, precisely: a body-less command
//! (enquire_link, unbind, generic_nack, their responses, cancel_sm_resp,
//! replace_sm_resp, cancel_broadcast_sm_resp) that arrives *with* body octets
//! decodes with `pdu: None` (rusmpp calls it invalid and skips the octets);
//! re-encoded it has no body, so it decodes as `Some(<that pdu>)`. The session
//! answers these from the header alone, so nothing is lost.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use smpp_core::frame::BodyError;
use smpp_core::frame::{Framer, HEADER_LEN, encode_command};
use smpp_core::rusmpp::{Command, CommandId, Pdu};
use smpp_core::status::{for_body_error, for_decode_error};

fuzz_target!(|data: &[u8]| {
    let framer = Framer::new(65536);
    let mut buf = BytesMut::from(data);
    loop {
        let frame = match framer.next_frame(&mut buf) {
            Ok(Some(frame)) => frame,
            // Needs more bytes, or a length that closes the session.
            Ok(None) | Err(_) => break,
        };
        let header = frame.header;
        let command = match frame.decode() {
            Ok(command) => command,
            Err(error) => {
                if let BodyError::Decode(e) = &error {
                    let _ = for_decode_error(e);
                }
                let _ = for_body_error(&error);
                continue;
            }
        };
        assert_eq!(command.sequence_number(), header.sequence_number);

        let mut encoded = BytesMut::new();
        encode_command(&command, &mut encoded);
        let encoded_len = encoded.len();
        // The re-encoded PDU may be longer than the frame it came from (see the
        // README), so the second framer has no cap of its own.
        let reframer = Framer::new(usize::MAX);
        let again = reframer
            .next_frame(&mut encoded)
            .expect("re-encoded command_length is valid")
            .expect("re-encoded PDU is a whole frame");
        assert!(encoded.is_empty(), "re-encoding produced trailing bytes");
        assert_eq!(again.header.command_length as usize, encoded_len);
        assert_eq!(again.header.sequence_number, header.sequence_number);
        let redecoded = again
            .decode()
            .unwrap_or_else(|e| panic!("re-encoded {command:?} does not decode: {e:?}"));
        let expected = match bodyless(command.id()) {
            Some(pdu) if command.pdu().is_none() && header.command_length as usize > HEADER_LEN => {
                Command::new(command.status(), command.sequence_number(), pdu)
            }
            _ => command,
        };
        assert_eq!(
            redecoded, expected,
            "decode/encode/decode changed the command"
        );
    }
});

/// The PDU rusmpp decodes for a body-less command_id when the body is empty.
fn bodyless(id: CommandId) -> Option<Pdu> {
    Some(match id {
        CommandId::Unbind => Pdu::Unbind,
        CommandId::UnbindResp => Pdu::UnbindResp,
        CommandId::EnquireLink => Pdu::EnquireLink,
        CommandId::EnquireLinkResp => Pdu::EnquireLinkResp,
        CommandId::GenericNack => Pdu::GenericNack,
        CommandId::CancelSmResp => Pdu::CancelSmResp,
        CommandId::ReplaceSmResp => Pdu::ReplaceSmResp,
        CommandId::CancelBroadcastSmResp => Pdu::CancelBroadcastSmResp,
        _ => return None,
    })
}
