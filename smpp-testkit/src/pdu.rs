//! PDUs as tests write them.

use smpp_core::rusmpp::{
    pdus::{DeliverSm, SubmitSm},
    types::{COctetString, OctetString},
    values::{DataCoding, EsmClass, PriorityFlag, RegisteredDelivery},
};

/// A submit_sm from `src` to `dst` with `registered_delivery` `rd` and `data_coding`
/// `coding`.
pub fn submit_sm(src: &str, dst: &str, text: &[u8], rd: u8, coding: u8) -> SubmitSm {
    SubmitSm::builder()
        .source_addr(COctetString::from_string(src.into()).unwrap_or_default())
        .destination_addr(COctetString::from_string(dst.into()).unwrap_or_default())
        .registered_delivery(RegisteredDelivery::from(rd))
        .data_coding(DataCoding::from(coding))
        .short_message(OctetString::from_slice(text).unwrap_or_default())
        .build()
}

pub fn with_priority(mut pdu: SubmitSm, priority: u8) -> SubmitSm {
    pdu.priority_flag = PriorityFlag::from(priority);
    pdu
}

/// A deliver_sm as an operator sends an MO.
pub fn mo(src: &str, dst: &str, esm_class: u8, data_coding: u8, body: Vec<u8>) -> DeliverSm {
    DeliverSm::builder()
        .source_addr(COctetString::from_string(src.into()).unwrap_or_default())
        .destination_addr(COctetString::from_string(dst.into()).unwrap_or_default())
        .esm_class(EsmClass::from(esm_class))
        .data_coding(DataCoding::from(data_coding))
        .short_message(OctetString::from_vec(body).unwrap_or_default())
        .build()
}
