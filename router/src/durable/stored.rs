//! How each record is serialised: plain serde structs with postcard, so the log's
//! bytes do not depend on rusmpp's or chrono's types. The records written on every
//! message borrow their text and bytes (`Cow`): writing one copies nothing but into the
//! encoded record; reading one back owns its data (`'static`).

use std::{borrow::Cow, sync::Arc};

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
pub(super) struct StoredAddress<'a> {
    pub(super) addr: Cow<'a, str>,
    pub(super) ton: u8,
    pub(super) npi: u8,
}

impl<'a> From<&'a Address> for StoredAddress<'a> {
    fn from(a: &'a Address) -> Self {
        Self {
            addr: Cow::Borrowed(&a.addr),
            ton: a.ton,
            npi: a.npi,
        }
    }
}

impl From<StoredAddress<'_>> for Address {
    fn from(a: StoredAddress<'_>) -> Self {
        Address::new(a.addr.into_owned(), a.ton, a.npi)
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredDlr<'a> {
    pub(super) level: u8,
    pub(super) url: Cow<'a, str>,
    pub(super) post: bool,
}

impl<'a> From<&'a DlrRequest> for StoredDlr<'a> {
    fn from(d: &'a DlrRequest) -> Self {
        Self {
            level: d.level,
            url: Cow::Borrowed(&d.url),
            post: d.method == DlrMethod::Post,
        }
    }
}

impl From<StoredDlr<'_>> for DlrRequest {
    fn from(d: StoredDlr<'_>) -> Self {
        DlrRequest {
            level: d.level,
            url: d.url.into_owned(),
            method: if d.post {
                DlrMethod::Post
            } else {
                DlrMethod::Get
            },
        }
    }
}

/// `Message` as stored.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredMessage<'a> {
    pub(super) id: Cow<'a, str>,
    pub(super) uid: Cow<'a, str>,
    pub(super) gid: Cow<'a, str>,
    /// None = HTTP.
    pub(super) smpp_session: Option<u64>,
    pub(super) service_type: Cow<'a, str>,
    pub(super) source: StoredAddress<'a>,
    pub(super) destination: StoredAddress<'a>,
    pub(super) esm_class: u8,
    pub(super) protocol_id: u8,
    pub(super) priority: u8,
    pub(super) schedule_delivery_time: Cow<'a, str>,
    pub(super) validity_period: Cow<'a, str>,
    pub(super) registered_delivery: u8,
    pub(super) replace_if_present: u8,
    pub(super) data_coding: u8,
    pub(super) sm_default_msg_id: u8,
    pub(super) content: Cow<'a, [u8]>,
    pub(super) payload_tlv: bool,
    pub(super) tlvs: Vec<(u16, Cow<'a, [u8]>)>,
    pub(super) dlr: Option<StoredDlr<'a>>,
    pub(super) tags: Cow<'a, [String]>,
    pub(super) connector: Cow<'a, str>,
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

impl<'a> From<&'a Message> for StoredMessage<'a> {
    fn from(m: &'a Message) -> Self {
        Self::new(m, true)
    }
}

impl<'a> StoredMessage<'a> {
    /// `with_content: false` leaves the content out (empty), for a record that already
    /// holds it once as the part's content.
    pub(super) fn new(m: &'a Message, with_content: bool) -> Self {
        Self {
            id: Cow::Borrowed(&m.id),
            uid: Cow::Borrowed(&m.uid),
            gid: Cow::Borrowed(&m.gid),
            smpp_session: origin_session(&m.origin),
            service_type: Cow::Borrowed(&m.service_type),
            source: (&m.source).into(),
            destination: (&m.destination).into(),
            esm_class: m.esm_class,
            protocol_id: m.protocol_id,
            priority: m.priority,
            schedule_delivery_time: Cow::Borrowed(&m.schedule_delivery_time),
            validity_period: Cow::Borrowed(&m.validity_period),
            registered_delivery: m.registered_delivery,
            replace_if_present: m.replace_if_present,
            data_coding: m.data_coding,
            sm_default_msg_id: m.sm_default_msg_id,
            content: if with_content {
                Cow::Borrowed(&m.content)
            } else {
                Cow::Borrowed(&[])
            },
            payload_tlv: m.payload_tlv,
            tlvs: m
                .tlvs
                .iter()
                .map(|t| (t.tag, Cow::Borrowed(&t.value[..])))
                .collect(),
            dlr: m.dlr.as_ref().map(Into::into),
            tags: Cow::Borrowed(&m.tags),
            connector: Cow::Borrowed(&m.connector),
            received_at_micros: m.received_at.timestamp_micros(),
        }
    }

    pub(super) fn into_message(self) -> Message {
        Message {
            id: Arc::from(self.id),
            uid: Arc::from(self.uid),
            gid: Arc::from(self.gid),
            origin: origin_from(self.smpp_session),
            service_type: self.service_type.into_owned(),
            source: self.source.into(),
            destination: self.destination.into(),
            esm_class: self.esm_class,
            protocol_id: self.protocol_id,
            priority: self.priority,
            schedule_delivery_time: self.schedule_delivery_time.into_owned(),
            validity_period: self.validity_period.into_owned(),
            registered_delivery: self.registered_delivery,
            replace_if_present: self.replace_if_present,
            data_coding: self.data_coding,
            sm_default_msg_id: self.sm_default_msg_id,
            content: Bytes::from(self.content.into_owned()),
            payload_tlv: self.payload_tlv,
            tlvs: self
                .tlvs
                .into_iter()
                .map(|(tag, value)| RawTlv {
                    tag,
                    value: Bytes::from(value.into_owned()),
                })
                .collect(),
            dlr: self.dlr.map(Into::into),
            tags: self.tags.into_owned(),
            connector: Arc::from(self.connector),
            received_at: local_from_micros(self.received_at_micros),
            split_long: false,
            annex: None,
        }
    }
}

/// A part accepted and charged, waiting for the operator.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredPart<'a> {
    pub(super) message: StoredMessage<'a>,
    pub(super) username: Cow<'a, str>,
    pub(super) connector: Cow<'a, str>,
    pub(super) part: u32,
    pub(super) parts: u32,
    pub(super) content: Cow<'a, [u8]>,
    pub(super) esm_class: u8,
    pub(super) registered_delivery: u8,
    pub(super) charge_key: Cow<'a, str>,
    pub(super) amount: i64,
}

/// A part the operator took whose receipt nobody waits for: all a restart needs to
/// settle its charge.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredSubmitted<'a> {
    #[serde(borrow)]
    pub(super) operator_id: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) charge_key: Cow<'a, str>,
    /// Unix seconds after which the record is no longer needed.
    pub(super) expires_at: u64,
}

/// A part the operator took, waiting for its receipt.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredReceiptWait<'a> {
    // Borrowed from the record when decoded: a replay of millions of receipt waits
    // copies each string once, into what the gateway keeps.
    #[serde(borrow)]
    pub(super) id: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) uid: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) username: Cow<'a, str>,
    pub(super) smpp_session: Option<u64>,
    pub(super) source: StoredAddress<'a>,
    pub(super) destination: StoredAddress<'a>,
    pub(super) registered_delivery: u8,
    pub(super) dlr: Option<StoredDlr<'a>>,
    #[serde(borrow)]
    pub(super) connector: Cow<'a, str>,
    pub(super) submitted_at_micros: i64,
    pub(super) part: u32,
    #[serde(borrow)]
    pub(super) operator_id: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) charge_key: Cow<'a, str>,
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
pub(super) struct StoredMoPart<'a> {
    pub(super) message: StoredMessage<'a>,
    pub(super) expires_at: u64,
}

/// A front end's annex of an accepted message.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredAnnex<'a> {
    #[serde(borrow)]
    pub(super) id: Cow<'a, str>,
    pub(super) annex: Cow<'a, [u8]>,
}

/// Encodes a record into one buffer sized up front (`hint`: its variable-length bytes),
/// so writing it neither regrows nor copies.
pub(super) fn encode(record: &impl Serialize, hint: usize) -> Result<Bytes, postcard::Error> {
    postcard::to_extend(record, Vec::with_capacity(hint + 160)).map(Bytes::from)
}
