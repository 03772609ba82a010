//! The routable message: what Jasmin's routable carries, as plain data that the HTTP
//! API, the SMPP server, interceptors and the queue log can all read and write.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Local};
use smpp_core::rusmpp::{
    encode::{Encode, Length},
    pdus::{DataSm, DeliverSm, SubmitMulti, SubmitSm},
    tlvs::{MessageSubmissionRequestTlvValue, Tlv, TlvTag},
    types::{AnyOctetString, COctetString, EmptyOrFullCOctetString, OctetString},
    values::{
        DataCoding, EsmClass, Npi, PriorityFlag, RegisteredDelivery, ReplaceIfPresentFlag,
        ServiceType, Ton,
    },
};

/// SMPP TLV tags that the model keeps as fields rather than raw TLVs.
pub const TAG_MESSAGE_PAYLOAD: u16 = 0x0424;
pub const TAG_RECEIPTED_MESSAGE_ID: u16 = 0x001E;
pub const TAG_MESSAGE_STATE: u16 = 0x0427;
pub const TAG_SAR_MSG_REF_NUM: u16 = 0x020C;
pub const TAG_SAR_TOTAL_SEGMENTS: u16 = 0x020E;
pub const TAG_SAR_SEGMENT_SEQNUM: u16 = 0x020F;
/// `more_messages_to_send`: 1 on every SAR part but the last, as Jasmin sends it.
pub const TAG_MORE_MESSAGES_TO_SEND: u16 = 0x0426;

/// esm_class bit: the short message starts with a user data header (a part of a long
/// message, SMPP 3.4 §5.2.12).
pub const ESM_UDHI: u8 = 0x40;
/// registered_delivery bits that ask the SMSC for a delivery receipt (§5.2.17):
/// 1 = on success or failure, 2 = on failure only.
pub const RD_RECEIPT_MASK: u8 = 0x03;
/// registered_delivery value: a receipt whatever the outcome.
pub const RD_RECEIPT_ALWAYS: u8 = 0x01;

/// An address with its type of number and numbering plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    pub addr: String,
    pub ton: u8,
    pub npi: u8,
}

impl Address {
    pub fn new(addr: impl Into<String>, ton: u8, npi: u8) -> Self {
        Self {
            addr: addr.into(),
            ton,
            npi,
        }
    }
}

/// A TLV kept as tag and raw value bytes, so unknown vendor TLVs pass through unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTlv {
    pub tag: u16,
    pub value: Bytes,
}

impl RawTlv {
    fn from_tlv(tlv: &Tlv) -> Self {
        let tag = u16::from(tlv.tag());
        let value = match tlv.value() {
            Some(value) => {
                let mut buf = vec![0u8; value.length()];
                let written = value.encode(&mut buf);
                buf.truncate(written);
                Bytes::from(buf)
            }
            None => Bytes::new(),
        };
        Self { tag, value }
    }
}

/// Where a message came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An SMPP bind of the user (session id).
    Smpp {
        session_id: u64,
    },
    Http,
}

/// How the HTTP caller wants receipts (Jasmin `dlr-level`/`dlr-url`/`dlr-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DlrMethod {
    Get,
    #[default]
    Post,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DlrRequest {
    /// [`DlrRequest::SUBMIT`], [`DlrRequest::RECEIPT`] or [`DlrRequest::BOTH`].
    pub level: u8,
    pub url: String,
    pub method: DlrMethod,
}

impl DlrRequest {
    /// Jasmin's dlr-level 1: the SMSC's answer to submit_sm.
    pub const SUBMIT: u8 = 1;
    /// dlr-level 2: the operator's delivery receipt.
    pub const RECEIPT: u8 = 2;
    /// dlr-level 3: both.
    pub const BOTH: u8 = 3;

    /// A callback when the operator answers the submit_sm (levels 1 and 3).
    pub fn on_submit(&self) -> bool {
        self.level == Self::SUBMIT || self.level == Self::BOTH
    }

    /// A callback when the delivery receipt arrives (levels 2 and 3).
    pub fn on_receipt(&self) -> bool {
        self.level >= Self::RECEIPT
    }
}

/// A new message id: a UUID v7, so ids sort by the time they were given.
pub fn new_message_id() -> Arc<str> {
    Arc::from(uuid::Uuid::now_v7().to_string())
}

/// A message on its way to an operator (MT) or from one (MO).
#[derive(Debug, Clone)]
pub struct Message {
    /// Our id (UUID v7, time-ordered), given when the message is accepted.
    pub id: Arc<str>,
    /// The sending user's uid (MT) — empty for MO.
    pub uid: Arc<str>,
    pub gid: Arc<str>,
    pub origin: Origin,
    pub service_type: String,
    pub source: Address,
    pub destination: Address,
    pub esm_class: u8,
    pub protocol_id: u8,
    pub priority: u8,
    pub schedule_delivery_time: String,
    pub validity_period: String,
    pub registered_delivery: u8,
    pub replace_if_present: u8,
    pub data_coding: u8,
    pub sm_default_msg_id: u8,
    /// short_message, or message_payload when short_message is empty.
    pub content: Bytes,
    /// Content was given as message_payload (kept so it goes out the same way).
    pub payload_tlv: bool,
    /// Every other TLV, unchanged.
    pub tlvs: Vec<RawTlv>,
    /// HTTP callback wanted for receipts.
    pub dlr: Option<DlrRequest>,
    pub tags: Vec<String>,
    /// MO: the connector it arrived on.
    pub connector: Arc<str>,
    pub received_at: DateTime<Local>,
    /// Interceptors or the HTTP layer asked for the content to be split (HTTP long content).
    pub split_long: bool,
    /// A front end's own record of the message, journaled with it and handed back after
    /// a crash ([`Gateway::take_annexes`](crate::Gateway::take_annexes)) until the front
    /// end has stored it elsewhere. The pipeline never reads it.
    pub annex: Option<Bytes>,
}

impl Default for Message {
    fn default() -> Self {
        Self {
            id: Arc::from(""),
            uid: Arc::from(""),
            gid: Arc::from(""),
            origin: Origin::Http,
            service_type: String::new(),
            source: Address::default(),
            destination: Address::default(),
            esm_class: 0,
            protocol_id: 0,
            priority: 0,
            schedule_delivery_time: String::new(),
            validity_period: String::new(),
            registered_delivery: 0,
            replace_if_present: 0,
            data_coding: 0,
            sm_default_msg_id: 0,
            content: Bytes::new(),
            payload_tlv: false,
            tlvs: Vec::new(),
            dlr: None,
            tags: Vec::new(),
            connector: Arc::from(""),
            received_at: Local::now(),
            split_long: false,
            annex: None,
        }
    }
}

/// A field that does not fit its SMPP size.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{field} does not fit in a submit_sm")]
pub struct FieldError {
    pub field: &'static str,
}

/// The content of a PDU: message_payload when present (SMPP 3.4 §5.3.2.32: it carries the
/// message instead of short_message), else short_message. When both are present the
/// payload stays among the raw TLVs, where the submit path refuses it.
fn payload_and_tlvs(tlvs: &[Tlv], short_message: &[u8]) -> (Bytes, bool, Vec<RawTlv>) {
    let mut raw: Vec<RawTlv> = tlvs.iter().map(RawTlv::from_tlv).collect();
    if short_message.is_empty()
        && let Some(pos) = raw.iter().position(|t| t.tag == TAG_MESSAGE_PAYLOAD)
    {
        let payload = raw.remove(pos);
        return (payload.value, true, raw);
    }
    (Bytes::copy_from_slice(short_message), false, raw)
}

impl Message {
    /// A message from a client's submit_sm, fields as sent.
    pub fn from_submit_sm(pdu: &SubmitSm) -> Self {
        let (content, payload_tlv, tlvs) =
            payload_and_tlvs(pdu.tlvs(), pdu.short_message().as_ref());
        Self {
            service_type: pdu.service_type.value().as_str().to_owned(),
            source: Address::new(
                pdu.source_addr.as_str(),
                u8::from(pdu.source_addr_ton),
                u8::from(pdu.source_addr_npi),
            ),
            destination: Address::new(
                pdu.destination_addr.as_str(),
                u8::from(pdu.dest_addr_ton),
                u8::from(pdu.dest_addr_npi),
            ),
            esm_class: u8::from(pdu.esm_class),
            protocol_id: pdu.protocol_id,
            priority: u8::from(pdu.priority_flag),
            schedule_delivery_time: pdu.schedule_delivery_time.as_str().to_owned(),
            validity_period: pdu.validity_period.as_str().to_owned(),
            registered_delivery: u8::from(pdu.registered_delivery),
            replace_if_present: u8::from(pdu.replace_if_present_flag),
            data_coding: u8::from(pdu.data_coding),
            sm_default_msg_id: pdu.sm_default_msg_id,
            content,
            payload_tlv,
            tlvs,
            ..Self::default()
        }
    }

    /// An MO or receipt from an operator's deliver_sm.
    pub fn from_deliver_sm(pdu: &DeliverSm, connector: &Arc<str>) -> Self {
        let (content, payload_tlv, tlvs) =
            payload_and_tlvs(pdu.tlvs(), pdu.short_message().as_ref());
        Self {
            service_type: pdu.service_type.value().as_str().to_owned(),
            source: Address::new(
                pdu.source_addr.as_str(),
                u8::from(pdu.source_addr_ton),
                u8::from(pdu.source_addr_npi),
            ),
            destination: Address::new(
                pdu.destination_addr.as_str(),
                u8::from(pdu.dest_addr_ton),
                u8::from(pdu.dest_addr_npi),
            ),
            esm_class: u8::from(pdu.esm_class),
            protocol_id: pdu.protocol_id,
            priority: u8::from(pdu.priority_flag),
            registered_delivery: u8::from(pdu.registered_delivery),
            data_coding: u8::from(pdu.data_coding),
            content,
            payload_tlv,
            tlvs,
            connector: connector.clone(),
            ..Self::default()
        }
    }

    /// The message every destination of a client's submit_multi gets, TLVs included;
    /// the destination is set per copy.
    pub fn from_submit_multi(pdu: &SubmitMulti) -> Self {
        let (content, payload_tlv, tlvs) =
            payload_and_tlvs(pdu.tlvs(), pdu.short_message().as_ref());
        Self {
            service_type: pdu.service_type.value().as_str().to_owned(),
            source: Address::new(
                pdu.source_addr.as_str(),
                u8::from(pdu.source_addr_ton),
                u8::from(pdu.source_addr_npi),
            ),
            esm_class: u8::from(pdu.esm_class),
            protocol_id: pdu.protocol_id,
            priority: u8::from(pdu.priority_flag),
            schedule_delivery_time: pdu.schedule_delivery_time.as_str().to_owned(),
            validity_period: pdu.validity_period.as_str().to_owned(),
            registered_delivery: u8::from(pdu.registered_delivery),
            replace_if_present: u8::from(pdu.replace_if_present_flag),
            data_coding: u8::from(pdu.data_coding),
            sm_default_msg_id: pdu.sm_default_msg_id,
            content,
            payload_tlv,
            tlvs,
            ..Self::default()
        }
    }

    /// An MO or receipt from an operator's data_sm (content in message_payload).
    pub fn from_data_sm(pdu: &DataSm, connector: &Arc<str>) -> Self {
        let (content, payload_tlv, tlvs) = payload_and_tlvs(pdu.tlvs(), &[]);
        Self {
            service_type: pdu.service_type.value().as_str().to_owned(),
            source: Address::new(
                pdu.source_addr.as_str(),
                u8::from(pdu.source_addr_ton),
                u8::from(pdu.source_addr_npi),
            ),
            destination: Address::new(
                pdu.destination_addr.as_str(),
                u8::from(pdu.dest_addr_ton),
                u8::from(pdu.dest_addr_npi),
            ),
            esm_class: u8::from(pdu.esm_class),
            registered_delivery: u8::from(pdu.registered_delivery),
            data_coding: u8::from(pdu.data_coding),
            content,
            payload_tlv,
            tlvs,
            connector: connector.clone(),
            ..Self::default()
        }
    }

    pub fn tlv(&self, tag: u16) -> Option<&Bytes> {
        self.tlvs.iter().find(|t| t.tag == tag).map(|t| &t.value)
    }

    pub fn has_udhi(&self) -> bool {
        self.esm_class & ESM_UDHI != 0
    }

    /// The submit_sm for the operator: one part of this message (`content` is the part's
    /// bytes, UDH included; `extra` TLVs are added after the message's own).
    pub fn to_submit_sm(
        &self,
        content: &[u8],
        esm_class: u8,
        registered_delivery: u8,
        extra: &[RawTlv],
    ) -> Result<SubmitSm, FieldError> {
        let err = |field| FieldError { field };
        let mut tlvs: Vec<MessageSubmissionRequestTlvValue> = self
            .tlvs
            .iter()
            .chain(extra)
            .map(|t| MessageSubmissionRequestTlvValue::Other {
                tag: TlvTag::from(t.tag),
                value: AnyOctetString::from_bytes(t.value.clone()),
            })
            .collect();
        // Content that does not fit short_message goes in message_payload, as sent.
        let short_message = if self.payload_tlv || content.len() > 254 {
            tlvs.push(MessageSubmissionRequestTlvValue::Other {
                tag: TlvTag::from(TAG_MESSAGE_PAYLOAD),
                value: AnyOctetString::from_slice(content),
            });
            OctetString::empty()
        } else {
            OctetString::from_slice(content).map_err(|_| err("short_message"))?
        };
        let service_type = ServiceType::new(
            COctetString::from_string(self.service_type.clone())
                .map_err(|_| err("service_type"))?,
        );
        Ok(SubmitSm::builder()
            .service_type(service_type)
            .source_addr_ton(Ton::from(self.source.ton))
            .source_addr_npi(Npi::from(self.source.npi))
            .source_addr(
                COctetString::from_string(self.source.addr.clone())
                    .map_err(|_| err("source_addr"))?,
            )
            .dest_addr_ton(Ton::from(self.destination.ton))
            .dest_addr_npi(Npi::from(self.destination.npi))
            .destination_addr(
                COctetString::from_string(self.destination.addr.clone())
                    .map_err(|_| err("destination_addr"))?,
            )
            .esm_class(EsmClass::from(esm_class))
            .protocol_id(self.protocol_id)
            .priority_flag(PriorityFlag::from(self.priority))
            .schedule_delivery_time(
                EmptyOrFullCOctetString::from_string(self.schedule_delivery_time.clone())
                    .map_err(|_| err("schedule_delivery_time"))?,
            )
            .validity_period(
                EmptyOrFullCOctetString::from_string(self.validity_period.clone())
                    .map_err(|_| err("validity_period"))?,
            )
            .registered_delivery(RegisteredDelivery::from(registered_delivery))
            .replace_if_present_flag(ReplaceIfPresentFlag::from(self.replace_if_present))
            .data_coding(DataCoding::from(self.data_coding))
            .sm_default_msg_id(self.sm_default_msg_id)
            .short_message(short_message)
            .tlvs(tlvs)
            .build())
    }
}
