//! How each record is serialised: plain serde structs with postcard, so the log's
//! bytes do not depend on rusmpp's or chrono's types.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Local, TimeZone};
use hyper::Method;
use serde::{Deserialize, Serialize};

use smpp_core::rusmpp::Pdu;

use crate::{
    callbacks::{self, Callback, DLR_AGENT, MO_AGENT},
    model::{Address, DlrMethod, DlrRequest, Message, Origin, RawTlv},
};

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredAddress {
    pub(super) addr: String,
    pub(super) ton: u8,
    pub(super) npi: u8,
}

impl From<&Address> for StoredAddress {
    fn from(a: &Address) -> Self {
        Self {
            addr: a.addr.clone(),
            ton: a.ton,
            npi: a.npi,
        }
    }
}

impl From<StoredAddress> for Address {
    fn from(a: StoredAddress) -> Self {
        Address::new(a.addr, a.ton, a.npi)
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredDlr {
    pub(super) level: u8,
    pub(super) url: String,
    pub(super) post: bool,
}

impl From<&DlrRequest> for StoredDlr {
    fn from(d: &DlrRequest) -> Self {
        Self {
            level: d.level,
            url: d.url.clone(),
            post: d.method == DlrMethod::Post,
        }
    }
}

impl From<StoredDlr> for DlrRequest {
    fn from(d: StoredDlr) -> Self {
        DlrRequest {
            level: d.level,
            url: d.url,
            method: if d.post {
                DlrMethod::Post
            } else {
                DlrMethod::Get
            },
        }
    }
}

/// `Message` as stored: plain owned data.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredMessage {
    pub(super) id: String,
    pub(super) uid: String,
    pub(super) gid: String,
    /// None = HTTP.
    pub(super) smpp_session: Option<u64>,
    pub(super) service_type: String,
    pub(super) source: StoredAddress,
    pub(super) destination: StoredAddress,
    pub(super) esm_class: u8,
    pub(super) protocol_id: u8,
    pub(super) priority: u8,
    pub(super) schedule_delivery_time: String,
    pub(super) validity_period: String,
    pub(super) registered_delivery: u8,
    pub(super) replace_if_present: u8,
    pub(super) data_coding: u8,
    pub(super) sm_default_msg_id: u8,
    pub(super) content: Vec<u8>,
    pub(super) payload_tlv: bool,
    pub(super) tlvs: Vec<(u16, Vec<u8>)>,
    pub(super) dlr: Option<StoredDlr>,
    pub(super) tags: Vec<String>,
    pub(super) connector: String,
    pub(super) received_at_micros: i64,
}

pub(super) fn origin_session(origin: &Origin) -> Option<u64> {
    match origin {
        Origin::Smpp { session_id } => Some(*session_id),
        Origin::Http => None,
    }
}

pub(super) fn origin_from(session: Option<u64>) -> Origin {
    match session {
        Some(session_id) => Origin::Smpp { session_id },
        None => Origin::Http,
    }
}

pub(super) fn local_from_micros(micros: i64) -> DateTime<Local> {
    Local
        .timestamp_micros(micros)
        .single()
        .unwrap_or_else(Local::now)
}

impl From<&Message> for StoredMessage {
    fn from(m: &Message) -> Self {
        Self::new(m, true)
    }
}

impl StoredMessage {
    /// `with_content: false` leaves the content out (empty), for a record that already
    /// holds it once as the part's content.
    pub(super) fn new(m: &Message, with_content: bool) -> Self {
        Self {
            id: m.id.to_string(),
            uid: m.uid.to_string(),
            gid: m.gid.to_string(),
            smpp_session: origin_session(&m.origin),
            service_type: m.service_type.clone(),
            source: (&m.source).into(),
            destination: (&m.destination).into(),
            esm_class: m.esm_class,
            protocol_id: m.protocol_id,
            priority: m.priority,
            schedule_delivery_time: m.schedule_delivery_time.clone(),
            validity_period: m.validity_period.clone(),
            registered_delivery: m.registered_delivery,
            replace_if_present: m.replace_if_present,
            data_coding: m.data_coding,
            sm_default_msg_id: m.sm_default_msg_id,
            content: if with_content {
                m.content.to_vec()
            } else {
                Vec::new()
            },
            payload_tlv: m.payload_tlv,
            tlvs: m.tlvs.iter().map(|t| (t.tag, t.value.to_vec())).collect(),
            dlr: m.dlr.as_ref().map(Into::into),
            tags: m.tags.clone(),
            connector: m.connector.to_string(),
            received_at_micros: m.received_at.timestamp_micros(),
        }
    }

    pub(super) fn into_message(self) -> Message {
        Message {
            id: Arc::from(self.id),
            uid: Arc::from(self.uid),
            gid: Arc::from(self.gid),
            origin: origin_from(self.smpp_session),
            service_type: self.service_type,
            source: self.source.into(),
            destination: self.destination.into(),
            esm_class: self.esm_class,
            protocol_id: self.protocol_id,
            priority: self.priority,
            schedule_delivery_time: self.schedule_delivery_time,
            validity_period: self.validity_period,
            registered_delivery: self.registered_delivery,
            replace_if_present: self.replace_if_present,
            data_coding: self.data_coding,
            sm_default_msg_id: self.sm_default_msg_id,
            content: Bytes::from(self.content),
            payload_tlv: self.payload_tlv,
            tlvs: self
                .tlvs
                .into_iter()
                .map(|(tag, value)| RawTlv {
                    tag,
                    value: Bytes::from(value),
                })
                .collect(),
            dlr: self.dlr.map(Into::into),
            tags: self.tags,
            connector: Arc::from(self.connector),
            received_at: local_from_micros(self.received_at_micros),
            split_long: false,
        }
    }
}

/// A part accepted and charged, waiting for the operator.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredPart {
    pub(super) message: StoredMessage,
    pub(super) username: String,
    pub(super) connector: String,
    pub(super) part: u32,
    pub(super) parts: u32,
    pub(super) content: Vec<u8>,
    pub(super) esm_class: u8,
    pub(super) registered_delivery: u8,
    pub(super) charge_key: String,
    pub(super) amount: i64,
}

/// A part the operator took, waiting for its receipt.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredReceiptWait {
    pub(super) id: String,
    pub(super) uid: String,
    pub(super) username: String,
    pub(super) smpp_session: Option<u64>,
    pub(super) source: StoredAddress,
    pub(super) destination: StoredAddress,
    pub(super) registered_delivery: u8,
    pub(super) dlr: Option<StoredDlr>,
    pub(super) connector: String,
    pub(super) submitted_at_micros: i64,
    pub(super) part: u32,
    pub(super) operator_id: String,
    pub(super) charge_key: String,
    /// Unix seconds after which the receipt is no longer awaited.
    pub(super) expires_at: u64,
}

/// A deliver_sm waiting for its client: the username and the encoded PDU.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredDelivery {
    pub(super) username: String,
    pub(super) pdu: Vec<u8>,
    pub(super) expires_at: u64,
}

/// An HTTP callback waiting to be acknowledged.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredCallback {
    pub(super) url: String,
    pub(super) post: bool,
    /// MO (else DLR): which User-Agent it is sent with.
    pub(super) mo: bool,
    pub(super) params: Vec<(String, Vec<u8>)>,
    pub(super) expires_at: u64,
}

impl StoredCallback {
    pub(super) fn into_callback(self) -> Option<Callback> {
        let params = self
            .params
            .into_iter()
            .map(|(name, value)| Some((callbacks::param_name(&name)?, value)))
            .collect::<Option<Vec<_>>>()?;
        Some(Callback {
            url: self.url,
            method: if self.post { Method::POST } else { Method::GET },
            params,
            user_agent: if self.mo { MO_AGENT } else { DLR_AGENT },
        })
    }
}

pub(super) fn encode_pdu(pdu: &Pdu) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    smpp_core::frame::encode_pdu(pdu, 0, 0, &mut buf);
    buf.to_vec()
}

pub(super) fn decode_pdu(bytes: &[u8]) -> Option<Pdu> {
    let mut buf = bytes::BytesMut::from(bytes);
    let frame = smpp_core::frame::Framer::default()
        .next_frame(&mut buf)
        .ok()??;
    frame.decode().ok()?.into_parts().pdu
}

/// A part of a long MO waiting for the rest of its message.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredMoPart {
    pub(super) message: StoredMessage,
    pub(super) expires_at: u64,
}
