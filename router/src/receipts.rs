//! Delivery receipts: parsing the operator's, building the client's (with OUR id), the
//! per-part tracking of multipart messages, and the store that keeps receipts and MO for
//! users whose receiver binds are down.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use chrono::{DateTime, Local};
use parking_lot::Mutex;
use smpp_core::{
    receipt::{self, ReceiptState},
    rusmpp::{
        Pdu,
        pdus::DeliverSm,
        tlvs::{MessageDeliveryRequestTlvValue, TlvTag},
        types::{AnyOctetString, COctetString, OctetString},
        values::{EsmClass, Npi, Ton},
    },
    server::{DeliverError, Outbound, OutboundResult, SessionRegistry},
};
use tokio::sync::oneshot;
use tracing::warn;

use crate::model::{
    Address, DlrRequest, Message, Origin, TAG_MESSAGE_STATE, TAG_RECEIPTED_MESSAGE_ID,
};

/// What we remember about a submitted part so its receipt can reach the client.
#[derive(Debug)]
pub struct DlrEntry {
    pub id: Arc<str>,
    pub uid: Arc<str>,
    pub username: Arc<str>,
    pub origin: Origin,
    pub source: Address,
    pub destination: Address,
    pub registered_delivery: u8,
    pub dlr: Option<DlrRequest>,
    pub connector: Arc<str>,
    pub submitted_at: DateTime<Local>,
    pub part: usize,
    /// Shared by the parts of one multipart message.
    pub multipart: Option<Arc<Mutex<MultipartState>>>,
    /// The submit's trace, which the receipt's span joins (not journaled).
    pub trace: crate::gateway::TraceParent,
}

/// Final states of the parts of one message; reported once when all are final.
#[derive(Debug)]
pub struct MultipartState {
    pub stats: Vec<Option<String>>,
    pub reported: bool,
    /// Parts whose submit_sm_resp (or final failure) is in, and the first error among them.
    pub responded: usize,
    pub first_error: Option<String>,
}

impl MultipartState {
    pub fn new(parts: usize) -> Self {
        Self {
            stats: vec![None; parts],
            reported: false,
            responded: 0,
            first_error: None,
        }
    }

    /// A part's submit outcome (`ESME_ROK` or the error's name); when it was the last
    /// part to answer, the outcome of the whole message for its one level-1 callback:
    /// `ESME_ROK` only if every part was accepted, else the first error.
    pub fn responded(&mut self, status: &str) -> Option<String> {
        self.responded += 1;
        if status != "ESME_ROK" && self.first_error.is_none() {
            self.first_error = Some(status.to_owned());
        }
        (self.responded == self.stats.len()).then(|| {
            self.first_error
                .clone()
                .unwrap_or_else(|| "ESME_ROK".to_owned())
        })
    }

    /// Record a part's final stat; when every part is final, the stat for the whole
    /// message (DELIVRD only if all were delivered, else the first failure).
    pub fn record(&mut self, part: usize, stat: &str) -> Option<String> {
        if let Some(slot) = self.stats.get_mut(part) {
            *slot = Some(stat.to_owned());
        }
        if self.reported || self.stats.iter().any(Option::is_none) {
            return None;
        }
        self.reported = true;
        let worst = self
            .stats
            .iter()
            .flatten()
            .find(|s| s.as_str() != "DELIVRD")
            .cloned()
            .unwrap_or_else(|| "DELIVRD".to_owned());
        Some(worst)
    }
}

/// A receipt from an operator, with the fields as Jasmin's DLR callback sends them
/// (docs/jasmin-compat.md §2.2): `sub`, `dlvrd` and `err` 3-digit zero-padded, dates as sent,
/// `ND` for what the receipt lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub id: String,
    pub stat: String,
    pub err: String,
    pub sub: String,
    pub dlvrd: String,
    pub submit_date: String,
    pub done_date: String,
    pub text: String,
}

/// Jasmin's final states end the id mapping (docs/jasmin-compat.md §2.1), after mapping
/// operator spellings (`FAILED`, `DELIVERED`…) to the standard ones. `UNKNOWN`,
/// `ACCEPTD` and `ENROUTE` are not final: more receipts can follow.
pub fn is_final(stat: &str) -> bool {
    matches!(
        ReceiptState::from_stat(stat).canonical(),
        ReceiptState::Delivered
            | ReceiptState::Expired
            | ReceiptState::Deleted
            | ReceiptState::Undeliverable
            | ReceiptState::Rejected
    )
}

pub fn is_success(stat: &str) -> bool {
    matches!(
        ReceiptState::from_stat(stat).canonical(),
        ReceiptState::Delivered | ReceiptState::Accepted
    )
}

fn nd(value: Option<String>) -> String {
    value.unwrap_or_else(|| "ND".to_owned())
}

/// A receipt if the PDU carries one (`smpp_core::receipt::parse_with_tlvs`: the
/// receipted_message_id and message_state TLVs win over the text). Unlike Jasmin,
/// `stat` of any length (`FAILED`, `ENROUTE`) is recognised instead of turning into an MO.
pub fn parse(m: &Message) -> Option<Receipt> {
    let tlv_id = m
        .tlv(TAG_RECEIPTED_MESSAGE_ID)
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let tlv_state = m.tlv(TAG_MESSAGE_STATE).and_then(|v| v.first().copied());
    let r = receipt::parse_with_tlvs(&m.content, tlv_id.as_deref(), tlv_state)?;
    let pad3 = |n: Option<u32>| nd(n.map(|n| format!("{n:03}")));
    Some(Receipt {
        stat: r.stat.as_str().to_owned(),
        err: nd(r.err.map(|e| format!("{e:0>3}"))),
        sub: pad3(r.sub),
        dlvrd: pad3(r.dlvrd),
        submit_date: nd(r.submit_date),
        done_date: nd(r.done_date),
        text: r.text.unwrap_or_default(),
        id: r.id,
    })
}

/// The deliver_sm receipt for an SMPP client, Jasmin's short format
/// (`smpp_core::receipt::format_short`), with our id in the text and in
/// receipted_message_id.
pub fn client_receipt(entry: &DlrEntry, stat: &str, err: &str) -> Option<DeliverSm> {
    let state = ReceiptState::from_stat(stat);
    let message_state = state.message_state();
    let text = receipt::format_short(&receipt::Receipt {
        id: entry.id.to_string(),
        sub: None,
        dlvrd: None,
        submit_date: Some(entry.submitted_at.format("%y%m%d%H%M").to_string()),
        done_date: Some(Local::now().format("%y%m%d%H%M").to_string()),
        stat: state,
        err: Some(err.to_owned()),
        text: None,
    });
    let mut id_value = entry.id.as_bytes().to_vec();
    id_value.push(0);
    let tlvs = vec![
        MessageDeliveryRequestTlvValue::Other {
            tag: TlvTag::from(TAG_RECEIPTED_MESSAGE_ID),
            value: AnyOctetString::from_bytes(Bytes::from(id_value)),
        },
        MessageDeliveryRequestTlvValue::Other {
            tag: TlvTag::from(TAG_MESSAGE_STATE),
            value: AnyOctetString::from_slice(&[message_state]),
        },
    ];
    Some(
        DeliverSm::builder()
            .source_addr_ton(Ton::from(entry.destination.ton))
            .source_addr_npi(Npi::from(entry.destination.npi))
            .source_addr(COctetString::from_string(entry.destination.addr.clone()).ok()?)
            .dest_addr_ton(Ton::from(entry.source.ton))
            .dest_addr_npi(Npi::from(entry.source.npi))
            .destination_addr(COctetString::from_string(entry.source.addr.clone()).ok()?)
            .esm_class(EsmClass::from(0x04))
            .short_message(OctetString::from_string(text).ok()?)
            .tlvs(tlvs)
            .build(),
    )
}

/// Should a receipt with this stat go to an SMPP client that asked `registered_delivery`?
/// 1 = every receipt, 2 = failures only.
pub fn wanted_by_smpp(registered_delivery: u8, stat: &str) -> bool {
    match registered_delivery & crate::model::RD_RECEIPT_MASK {
        1 => true,
        2 => !is_success(stat),
        _ => false,
    }
}

/// A kept deliver_sm; `key` names its journal record.
struct Kept {
    at: Instant,
    key: u128,
    pdu: Pdu,
}

/// A kept deliver_sm handed to a bind: the caller waits for the client's answer.
pub struct Sent {
    pub key: u128,
    pub pdu: Pdu,
    pub reply: oneshot::Receiver<OutboundResult>,
}

/// deliver_sm (receipts and MO) kept for users whose receiver binds are down, bounded
/// per user and expiring; sent in order when one binds.
pub struct PendingStore {
    users: Mutex<HashMap<Arc<str>, VecDeque<Kept>>>,
    /// Limits an admin may change while PDUs are kept (`[settings]`).
    per_user: AtomicUsize,
    expiry_ms: AtomicU64,
}

impl PendingStore {
    pub fn new(per_user: usize, expiry: Duration) -> Self {
        let store = Self {
            users: Mutex::new(HashMap::new()),
            per_user: AtomicUsize::new(1),
            expiry_ms: AtomicU64::new(0),
        };
        store.set_limits(per_user, expiry);
        store
    }

    /// New limits, for what is kept from now on and for the next purge.
    pub fn set_limits(&self, per_user: usize, expiry: Duration) {
        self.per_user.store(per_user.max(1), Ordering::Relaxed);
        let ms = u64::try_from(expiry.as_millis()).unwrap_or(u64::MAX);
        self.expiry_ms.store(ms, Ordering::Relaxed);
    }

    fn expiry(&self) -> Duration {
        Duration::from_millis(self.expiry_ms.load(Ordering::Relaxed))
    }

    /// Keep a PDU; the oldest goes (with a warning) when the user's store is full.
    pub fn keep(&self, username: &Arc<str>, key: u128, pdu: Pdu) {
        let mut users = self.users.lock();
        let q = users.entry(username.clone()).or_default();
        let per_user = self.per_user.load(Ordering::Relaxed);
        if q.len() >= per_user {
            q.drain(..=q.len() - per_user);
            warn!(user = %username, "pending store full: oldest dropped");
        }
        q.push_back(Kept {
            at: Instant::now(),
            key,
            pdu,
        });
    }

    pub fn len(&self, username: &str) -> usize {
        self.users.lock().get(username).map_or(0, VecDeque::len)
    }

    /// Push what waits for `username` to its binds; what does not fit stays. Returns
    /// what was handed over, with the replies to wait on.
    pub fn flush(&self, username: &str, registry: &SessionRegistry) -> Vec<Sent> {
        let mut users = self.users.lock();
        let Some(q) = users.get_mut(username) else {
            return Vec::new();
        };
        let now = Instant::now();
        let expiry = self.expiry();
        let mut sent = Vec::new();
        while let Some(kept) = q.pop_front() {
            if now.duration_since(kept.at) > expiry {
                continue;
            }
            let (outbound, reply) = Outbound::with_reply(kept.pdu.clone());
            match registry.deliver(username, outbound) {
                Ok(_) => sent.push(Sent {
                    key: kept.key,
                    pdu: kept.pdu,
                    reply,
                }),
                Err(DeliverError::NotBound(_) | DeliverError::Full(_)) => {
                    q.push_front(kept);
                    break;
                }
            }
        }
        if q.is_empty() {
            users.remove(username);
        }
        sent
    }

    pub fn purge(&self) {
        let now = Instant::now();
        let expiry = self.expiry();
        let mut users = self.users.lock();
        for q in users.values_mut() {
            q.retain(|kept| now.duration_since(kept.at) <= expiry);
        }
        users.retain(|_, q| !q.is_empty());
    }
}

/// A receipt event as observers see it (WebSocket, webhooks, CDR).
#[derive(Debug, Clone)]
pub struct ReceiptEvent {
    pub id: Arc<str>,
    pub uid: Arc<str>,
    pub connector: Arc<str>,
    pub operator_id: String,
    pub stat: String,
    pub err: String,
    pub part: usize,
}

/// An MO message handed to a user's receiver binds, as observers see it (REST v1
/// webhooks and WebSocket).
#[derive(Debug, Clone)]
pub struct MoEvent {
    pub id: Arc<str>,
    pub uid: Arc<str>,
    pub connector: Arc<str>,
    pub from: String,
    pub to: String,
    pub data_coding: u8,
    pub content: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RawTlv;

    fn msg(esm_class: u8, text: &'static [u8], tlvs: Vec<RawTlv>) -> Message {
        Message {
            esm_class,
            content: Bytes::from_static(text),
            tlvs,
            ..Message::default()
        }
    }

    #[test]
    fn parses_text_and_tlv_receipts() {
        let m = msg(
            0x04,
            b"id:0A1b sub:001 dlvrd:1 submit date:2401011200 done date:2401011201 stat:DELIVRD err:0 text:hi",
            vec![],
        );
        let r = parse(&m).expect("receipt");
        assert_eq!(r.id, "0A1b");
        assert_eq!(r.stat, "DELIVRD");
        assert_eq!(r.dlvrd, "001");
        assert_eq!(r.err, "000");
        assert_eq!(r.submit_date, "2401011200");
        assert_eq!(r.text, "hi");
        let r = parse(&msg(0, b"id:77 stat:FAILED err:12", vec![])).expect("receipt");
        assert_eq!((r.stat.as_str(), r.err.as_str()), ("FAILED", "012"));
        assert_eq!((r.sub.as_str(), r.done_date.as_str()), ("ND", "ND"));
        assert!(parse(&msg(0, b"hello there", vec![])).is_none());
        // TLVs win over the text; a C-string TLV id loses its NUL.
        let tlvs = vec![
            RawTlv {
                tag: TAG_RECEIPTED_MESSAGE_ID,
                value: Bytes::from_static(b"abc\0"),
            },
            RawTlv {
                tag: TAG_MESSAGE_STATE,
                value: Bytes::from_static(&[5]),
            },
        ];
        let r = parse(&msg(0x04, b"id:zzz stat:DELIVRD err:000", tlvs)).expect("receipt");
        assert_eq!((r.id.as_str(), r.stat.as_str()), ("abc", "UNDELIV"));
    }

    #[test]
    fn final_and_success_states() {
        for stat in [
            "DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "REJECTD", "FAILED",
        ] {
            assert!(is_final(stat), "{stat}");
        }
        for stat in ["ACCEPTD", "ENROUTE", "UNKNOWN", "WHATEVER"] {
            assert!(!is_final(stat), "{stat}");
        }
        assert!(is_success("DELIVRD") && is_success("ACCEPTD") && !is_success("UNDELIV"));
        assert!(wanted_by_smpp(1, "DELIVRD") && !wanted_by_smpp(2, "DELIVRD"));
        assert!(wanted_by_smpp(2, "UNDELIV") && !wanted_by_smpp(0, "UNDELIV"));
    }

    #[test]
    fn client_receipt_is_jasmins_short_format() {
        let entry = DlrEntry {
            id: Arc::from("5f0c-uuid"),
            uid: Arc::from("u"),
            username: Arc::from("bank"),
            origin: Origin::Smpp { session_id: 1 },
            source: Address::new("BANK", 5, 0),
            destination: Address::new("255700", 1, 1),
            registered_delivery: 1,
            dlr: None,
            connector: Arc::from("op1"),
            submitted_at: Local::now(),
            part: 0,
            multipart: None,
            trace: Default::default(),
        };
        let pdu = client_receipt(&entry, "UNDELIV", "099").expect("pdu");
        let text = String::from_utf8_lossy(pdu.short_message().as_ref()).into_owned();
        assert!(text.starts_with("id:5f0c-uuid submit date:"), "{text}");
        assert!(text.ends_with(" stat:UNDELIV err:099"), "{text}");
        assert_eq!(pdu.source_addr.as_str(), "255700");
        assert_eq!(pdu.destination_addr.as_str(), "BANK");
        let m = Message::from_deliver_sm(&pdu, &Arc::from("x"));
        let back = parse(&m).expect("our own receipt parses");
        assert_eq!(
            (back.id.as_str(), back.stat.as_str()),
            ("5f0c-uuid", "UNDELIV")
        );
    }

    #[test]
    fn multipart_reports_once() {
        let mut s = MultipartState::new(3);
        assert_eq!(s.record(0, "DELIVRD"), None);
        assert_eq!(s.record(2, "UNDELIV"), None);
        assert_eq!(s.record(1, "DELIVRD"), Some("UNDELIV".to_owned()));
        assert_eq!(s.record(1, "DELIVRD"), None);
    }

    #[test]
    fn a_multipart_message_answers_level_one_once() {
        let mut state = MultipartState::new(3);
        assert_eq!(state.responded("ESME_ROK"), None);
        assert_eq!(state.responded("ESME_RINVDSTADR"), None);
        assert_eq!(
            state.responded("ESME_ROK"),
            Some("ESME_RINVDSTADR".to_owned())
        );
        let mut ok = MultipartState::new(2);
        ok.responded("ESME_ROK");
        assert_eq!(ok.responded("ESME_ROK"), Some("ESME_ROK".to_owned()));
    }
}
