//! Hot-path costs: rusmpp PDU encode/decode for a full-length submit_sm and a
//! deliver_sm receipt, GSM 7-bit encoding, and splitting a long text.

use std::hint::black_box;
use std::str::FromStr;

use bytes::{BufMut, BytesMut};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rusmpp::decode::DecodeWithLength;
use rusmpp::encode::{Length, owned::Encode};
use rusmpp::pdus::{DeliverSm, SubmitSm};
use rusmpp::tlvs::MessageDeliveryRequestTlvValue;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{
    DataCoding, EsmClass, MessageState, Npi, RegisteredDelivery, ServiceType, Ton,
};
use rusmpp::{Command, CommandStatus};
use smpp_core::receipt::{self, Receipt, ReceiptState};
use smpp_core::text::{Encoding, SplitMode, gsm7, split_text};

/// Encodes a command the way the codec does: 4-octet command_length first.
fn encode(command: &Command, buf: &mut BytesMut) {
    let len = 4 + command.length();
    buf.reserve(len);
    buf.put_u32(u32::try_from(len).expect("PDU length fits in u32"));
    command.encode(buf);
}

fn submit_sm_160() -> Command {
    let body = gsm7::encode(&"Hello from the smsgw benchmark, 160 chars. ".repeat(4)[..160])
        .expect("ascii text is GSM");
    let pdu = SubmitSm::builder()
        .service_type(ServiceType::default())
        .source_addr_ton(Ton::Alphanumeric)
        .source_addr_npi(Npi::Unknown)
        .source_addr(COctetString::from_str("SMSGW").expect("valid source"))
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(COctetString::from_str("491701234567").expect("valid destination"))
        .esm_class(EsmClass::default())
        .registered_delivery(RegisteredDelivery::request_all())
        .data_coding(DataCoding::McSpecific)
        .short_message(OctetString::from_vec(body).expect("160 octets fit"))
        .build();
    Command::new(CommandStatus::EsmeRok, 42, pdu)
}

fn deliver_sm_receipt() -> Command {
    let id = "2a5e3b8e-6f0c-4c6d-9a42-3f0d1e9b7c11";
    let text = receipt::format(&Receipt {
        id: id.to_owned(),
        sub: Some(1),
        dlvrd: Some(1),
        submit_date: Some("2401151230".to_owned()),
        done_date: Some("2401151231".to_owned()),
        stat: ReceiptState::Delivered,
        err: Some("000".to_owned()),
        text: Some("Hello from the smsgw".to_owned()),
    });
    let pdu = DeliverSm::builder()
        .service_type(ServiceType::default())
        .source_addr_ton(Ton::International)
        .source_addr_npi(Npi::Isdn)
        .source_addr(COctetString::from_str("491701234567").expect("valid source"))
        .dest_addr_ton(Ton::Alphanumeric)
        .dest_addr_npi(Npi::Unknown)
        .destination_addr(COctetString::from_str("SMSGW").expect("valid destination"))
        .esm_class(EsmClass::from(0x04))
        .data_coding(DataCoding::McSpecific)
        .short_message(OctetString::from_slice(text.as_bytes()).expect("receipt fits"))
        .push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(
            COctetString::from_str(id).expect("valid id"),
        ))
        .push_tlv(MessageDeliveryRequestTlvValue::MessageState(
            MessageState::Delivered,
        ))
        .build();
    Command::new(CommandStatus::EsmeRok, 7, pdu)
}

fn bench_pdus(c: &mut Criterion) {
    for (name, command) in [
        ("submit_sm_160", submit_sm_160()),
        ("deliver_sm_receipt", deliver_sm_receipt()),
    ] {
        let mut buf = BytesMut::with_capacity(512);
        c.bench_function(&format!("rusmpp/encode/{name}"), |b| {
            b.iter(|| {
                buf.clear();
                encode(black_box(&command), &mut buf);
                black_box(buf.len())
            })
        });

        let mut wire = BytesMut::new();
        encode(&command, &mut wire);
        let body = wire.split_off(4).freeze();
        let body_len = body.len();
        // Sanity: the decoded command is the one encoded.
        let (decoded, _) = Command::decode(&mut BytesMut::from(&body[..]), body_len)
            .expect("own encoding decodes");
        assert_eq!(decoded, command);
        c.bench_function(&format!("rusmpp/decode/{name}"), |b| {
            b.iter_batched(
                || BytesMut::from(&body[..]),
                |mut src| Command::decode(&mut src, body_len),
                BatchSize::SmallInput,
            )
        });
    }
}

fn bench_text(c: &mut Criterion) {
    let text160 = "Hello {world}, this is 160 characters of GSM text with € and [brackets]. "
        .repeat(3)
        .chars()
        .take(160)
        .collect::<String>();
    c.bench_function("text/gsm7_encode_160", |b| {
        b.iter(|| gsm7::encode(black_box(&text160)))
    });

    let gsm400: String = "The quick brown fox jumps over the lazy dog 0123456789. "
        .repeat(8)
        .chars()
        .take(400)
        .collect();
    c.bench_function("text/split_400_gsm7", |b| {
        b.iter(|| split_text(black_box(&gsm400), Encoding::Gsm7, SplitMode::Udh, 7))
    });

    let ucs400: String = "Съешь же ещё этих мягких французских булок, да выпей чаю 😀 "
        .repeat(8)
        .chars()
        .take(400)
        .collect();
    c.bench_function("text/split_400_ucs2", |b| {
        b.iter(|| split_text(black_box(&ucs400), Encoding::Ucs2, SplitMode::Udh, 7))
    });

    let dlr = b"id:7F3A2B1C sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 stat:DELIVRD err:000 text:Hello world";
    c.bench_function("receipt/parse", |b| {
        b.iter(|| receipt::parse(black_box(dlr)))
    });
}

criterion_group!(benches, bench_pdus, bench_text);
criterion_main!(benches);
