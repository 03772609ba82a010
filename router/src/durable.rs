//! The durable log under the pipeline: what a client was told ESME_ROK / `Success` for
//! is in the journal before the answer goes out, and stays there until its outcome is
//! final, so a restart after a crash sends it again instead of losing it.
//!
//! Records, keyed by our message id plus the part number:
//! - `ACCEPTED`: a part accepted and charged, not yet answered by the operator. Replay
//!   queues it again (a part that reached the operator but whose submit_sm_resp was lost
//!   goes out twice; that window is one response timeout).
//! - `AWAITING_RECEIPT`: a part the operator accepted, whose receipt the client asked
//!   for: replay restores the operator-id mapping so the receipt still finds its client.
//!   Removed when the final receipt is handled or when `dlr_expiry` passes.
//! - `PENDING_DELIVERY`: a receipt or MO kept for a client, until it answers.
//! - `PENDING_CALLBACK`: an HTTP DLR or MO callback, until it is acknowledged or given up.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use chrono::{DateTime, Local, TimeZone};
use hyper::Method;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use smpp_core::rusmpp::Pdu;

use crate::{
    callbacks::{self, Callback, DLR_AGENT, MO_AGENT},
    journaling::{Durable, FinalOutcome, Journal, JournalRecord},
    model::{Address, DlrMethod, DlrRequest, Message, Origin, RawTlv},
    receipts::DlrEntry,
};

pub const KIND_ACCEPTED: u8 = 1;
pub const KIND_AWAITING_RECEIPT: u8 = 2;
pub const KIND_PENDING_DELIVERY: u8 = 3;
pub const KIND_PENDING_CALLBACK: u8 = 4;

/// The journal key of one part of a message.
pub fn record_id(message_id: &str, part: usize) -> u128 {
    let base = uuid::Uuid::parse_str(message_id)
        .map(|u| u.as_u128())
        // Ids are UUIDs; anything else still gets a stable key.
        .unwrap_or_else(|_| {
            message_id.bytes().fold(0xcbf2_9ce4_8422_2325_u128, |h, b| {
                (h ^ u128::from(b)).wrapping_mul(0x0100_0000_0000_0000_0000_0000_013B)
            })
        });
    base.wrapping_add(part as u128)
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredAddress {
    addr: String,
    ton: u8,
    npi: u8,
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
struct StoredDlr {
    level: u8,
    url: String,
    post: bool,
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
struct StoredMessage {
    id: String,
    uid: String,
    gid: String,
    /// None = HTTP.
    smpp_session: Option<u64>,
    service_type: String,
    source: StoredAddress,
    destination: StoredAddress,
    esm_class: u8,
    protocol_id: u8,
    priority: u8,
    schedule_delivery_time: String,
    validity_period: String,
    registered_delivery: u8,
    replace_if_present: u8,
    data_coding: u8,
    sm_default_msg_id: u8,
    content: Vec<u8>,
    payload_tlv: bool,
    tlvs: Vec<(u16, Vec<u8>)>,
    dlr: Option<StoredDlr>,
    tags: Vec<String>,
    connector: String,
    received_at_micros: i64,
}

fn origin_session(origin: &Origin) -> Option<u64> {
    match origin {
        Origin::Smpp { session_id } => Some(*session_id),
        Origin::Http => None,
    }
}

fn origin_from(session: Option<u64>) -> Origin {
    match session {
        Some(session_id) => Origin::Smpp { session_id },
        None => Origin::Http,
    }
}

fn local_from_micros(micros: i64) -> DateTime<Local> {
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
    fn new(m: &Message, with_content: bool) -> Self {
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

    fn into_message(self) -> Message {
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
struct StoredPart {
    message: StoredMessage,
    username: String,
    connector: String,
    part: u32,
    parts: u32,
    content: Vec<u8>,
    esm_class: u8,
    registered_delivery: u8,
    charge_key: String,
    amount: i64,
}

/// A part the operator took, waiting for its receipt.
#[derive(Debug, Serialize, Deserialize)]
struct StoredReceiptWait {
    id: String,
    uid: String,
    username: String,
    smpp_session: Option<u64>,
    source: StoredAddress,
    destination: StoredAddress,
    registered_delivery: u8,
    dlr: Option<StoredDlr>,
    connector: String,
    submitted_at_micros: i64,
    part: u32,
    operator_id: String,
    charge_key: String,
    /// Unix seconds after which the receipt is no longer awaited.
    expires_at: u64,
}

/// A deliver_sm waiting for its client: the username and the encoded PDU.
#[derive(Debug, Serialize, Deserialize)]
struct StoredDelivery {
    username: String,
    pdu: Vec<u8>,
    expires_at: u64,
}

/// An HTTP callback waiting to be acknowledged.
#[derive(Debug, Serialize, Deserialize)]
struct StoredCallback {
    url: String,
    post: bool,
    /// MO (else DLR): which User-Agent it is sent with.
    mo: bool,
    params: Vec<(String, Vec<u8>)>,
    expires_at: u64,
}

impl StoredCallback {
    fn into_callback(self) -> Option<Callback> {
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

fn encode_pdu(pdu: &Pdu) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    smpp_core::frame::encode_pdu(pdu, 0, 0, &mut buf);
    buf.to_vec()
}

fn decode_pdu(bytes: &[u8]) -> Option<Pdu> {
    let mut buf = bytes::BytesMut::from(bytes);
    let frame = smpp_core::frame::Framer::default()
        .next_frame(&mut buf)
        .ok()??;
    frame.decode().ok()?.into_parts().pdu
}

/// What replay hands back to the pipeline.
#[derive(Debug)]
pub enum Restored {
    PendingDelivery {
        key: u128,
        username: Arc<str>,
        pdu: Pdu,
        ttl: Duration,
    },
    Part(RestoredPart),
    AwaitingReceipt {
        entry: DlrEntry,
        connector: Arc<str>,
        operator_id: String,
        charge_key: String,
        ttl: Duration,
    },
    PendingCallback {
        key: u128,
        callback: Callback,
        ttl: Duration,
    },
}

#[derive(Debug)]
pub struct RestoredPart {
    pub message: Message,
    pub username: Arc<str>,
    pub connector: Arc<str>,
    pub part: usize,
    pub parts: usize,
    pub content: Bytes,
    pub esm_class: u8,
    pub registered_delivery: u8,
    pub charge_key: String,
    pub amount: i64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Decode a replayed record; None for one that is unreadable (logged) or no longer
/// relevant (expired).
pub fn decode(record: &journal::Record) -> Option<Restored> {
    match try_decode(record) {
        Ok(restored) => restored,
        Err(reason) => {
            warn_undecodable(record, reason);
            None
        }
    }
}

/// What `decode_all` dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecodeReport {
    pub restored: usize,
    /// Past their expiry: dropped on purpose.
    pub expired: usize,
    /// Unreadable (corrupt, or written by a newer version): each was logged.
    pub undecodable: usize,
}

/// Decode every replayed record, counting what had to be dropped and why.
pub fn decode_all(records: &[journal::Record]) -> (Vec<Restored>, DecodeReport) {
    let mut report = DecodeReport::default();
    let mut restored = Vec::with_capacity(records.len());
    for record in records {
        match try_decode(record) {
            Ok(Some(r)) => {
                report.restored += 1;
                restored.push(r);
            }
            Ok(None) => report.expired += 1,
            Err(reason) => {
                warn_undecodable(record, reason);
                report.undecodable += 1;
            }
        }
    }
    (restored, report)
}

fn warn_undecodable(record: &journal::Record, reason: &str) {
    // A lost ACCEPTED is a lost message and a lost receipt wait an unmatched receipt:
    // say which record it was so it can be looked at in the segment.
    tracing::warn!(
        key = %uuid::Uuid::from_u128(record.id),
        kind = record.kind,
        bytes = record.payload.len(),
        segment = record.segment,
        offset = record.offset,
        reason,
        "journal record cannot be decoded: dropped from replay"
    );
}

/// Ok(None): readable but expired; Err: unreadable.
fn try_decode(record: &journal::Record) -> Result<Option<Restored>, &'static str> {
    match record.kind {
        KIND_ACCEPTED => {
            let p: StoredPart =
                postcard::from_bytes(&record.payload).map_err(|_| "bad accepted part")?;
            let content = Bytes::from(p.content);
            let mut message = p.message.into_message();
            if message.content.is_empty() {
                // Stored once, as the part's content (identical when both are empty).
                message.content = content.clone();
            }
            Ok(Some(Restored::Part(RestoredPart {
                message,
                username: Arc::from(p.username),
                connector: Arc::from(p.connector),
                part: p.part as usize,
                parts: p.parts as usize,
                content,
                esm_class: p.esm_class,
                registered_delivery: p.registered_delivery,
                charge_key: p.charge_key,
                amount: p.amount,
            })))
        }
        KIND_AWAITING_RECEIPT => {
            let w: StoredReceiptWait =
                postcard::from_bytes(&record.payload).map_err(|_| "bad receipt wait")?;
            let now = unix_now();
            if w.expires_at <= now {
                return Ok(None);
            }
            let connector: Arc<str> = Arc::from(w.connector);
            Ok(Some(Restored::AwaitingReceipt {
                entry: DlrEntry {
                    id: Arc::from(w.id),
                    uid: Arc::from(w.uid),
                    username: Arc::from(w.username),
                    origin: origin_from(w.smpp_session),
                    source: w.source.into(),
                    destination: w.destination.into(),
                    registered_delivery: w.registered_delivery,
                    dlr: w.dlr.map(Into::into),
                    connector: connector.clone(),
                    submitted_at: local_from_micros(w.submitted_at_micros),
                    part: w.part as usize,
                    multipart: None,
                },
                connector,
                operator_id: w.operator_id,
                charge_key: w.charge_key,
                ttl: Duration::from_secs(w.expires_at - now),
            }))
        }
        KIND_PENDING_DELIVERY => {
            let d: StoredDelivery =
                postcard::from_bytes(&record.payload).map_err(|_| "bad pending delivery")?;
            let now = unix_now();
            if d.expires_at <= now {
                return Ok(None);
            }
            Ok(Some(Restored::PendingDelivery {
                key: record.id,
                username: Arc::from(d.username),
                pdu: decode_pdu(&d.pdu).ok_or("bad deliver_sm in pending delivery")?,
                ttl: Duration::from_secs(d.expires_at - now),
            }))
        }
        KIND_PENDING_CALLBACK => {
            let c: StoredCallback =
                postcard::from_bytes(&record.payload).map_err(|_| "bad pending callback")?;
            let now = unix_now();
            if c.expires_at <= now {
                return Ok(None);
            }
            let ttl = Duration::from_secs(c.expires_at - now);
            Ok(Some(Restored::PendingCallback {
                key: record.id,
                callback: c.into_callback().ok_or("bad callback parameters")?,
                ttl,
            }))
        }
        _ => Err("unknown record kind"),
    }
}

/// Deadlines of the records that expire (receipt waits, pending deliveries and
/// callbacks), tracked only while the record is live: its completion forgets it in O(1),
/// so memory follows what is in flight, not throughput × TTL.
///
/// `deadlines` is the truth; `heap` orders them and is cleaned lazily: an entry whose
/// key was forgotten (or re-armed with another deadline) is skipped when it surfaces,
/// and the heap is rebuilt from `deadlines` once stale entries outnumber live ones, so
/// each completion costs amortised O(1) and the heap stays within 2 × live + slack.
struct Expiries {
    /// Milliseconds since `base`: 8 bytes instead of an `Instant`'s 16.
    deadlines: HashMap<u128, u64>,
    heap: BinaryHeap<Reverse<(u64, u128)>>,
    base: Instant,
}

/// Stale heap entries tolerated before a rebuild, beyond one per live entry.
const HEAP_SLACK: usize = 1024;

impl Expiries {
    fn new() -> Self {
        Self {
            deadlines: HashMap::new(),
            heap: BinaryHeap::new(),
            base: Instant::now(),
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    fn arm(&mut self, key: u128, ttl: Duration) {
        let at = self.millis(Instant::now() + ttl);
        self.deadlines.insert(key, at);
        self.heap.push(Reverse((at, key)));
        self.compact();
    }

    fn forget(&mut self, key: u128) {
        if self.deadlines.remove(&key).is_some() {
            self.compact();
        }
    }

    /// Pop the keys whose deadline passed.
    fn due(&mut self, now: Instant) -> Vec<u128> {
        let now = self.millis(now);
        let mut due = Vec::new();
        while let Some(&Reverse((at, key))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            // Only if this is still the key's current deadline (else it is stale).
            if self.deadlines.get(&key) == Some(&at) {
                self.deadlines.remove(&key);
                due.push(key);
            }
        }
        due
    }

    fn compact(&mut self) {
        if self.heap.len() <= 2 * self.deadlines.len() + HEAP_SLACK {
            return;
        }
        self.heap = self
            .deadlines
            .iter()
            .map(|(&key, &at)| Reverse((at, key)))
            .collect();
        // Give back what a burst left behind.
        if self.deadlines.capacity() > 4 * self.deadlines.len() + HEAP_SLACK {
            self.deadlines.shrink_to(2 * self.deadlines.len());
        }
    }

    /// Bytes held, by capacity (the hash table's control bytes included).
    fn bytes(&self) -> usize {
        let map_slot = std::mem::size_of::<(u128, u64)>() + 1;
        self.deadlines.capacity() * map_slot
            + self.heap.capacity() * std::mem::size_of::<Reverse<(u64, u128)>>()
    }
}

/// The pipeline's `Journal` on the segmented log.
pub struct LogJournal {
    log: journal::Journal,
    /// Expiring records by deadline, so they leave the log when their TTL passes.
    expiries: Mutex<Expiries>,
}

impl LogJournal {
    pub fn new(log: journal::Journal) -> Self {
        Self {
            log,
            expiries: Mutex::new(Expiries::new()),
        }
    }

    /// Records whose expiry is tracked (live receipt waits, pending deliveries and
    /// callbacks); falls back to zero when they complete.
    pub fn tracked_expiries(&self) -> usize {
        self.expiries.lock().deadlines.len()
    }

    /// Approximate heap bytes of the expiry tracking (for metrics and sizing).
    pub fn expiry_bytes(&self) -> usize {
        self.expiries.lock().bytes()
    }

    pub fn log(&self) -> &journal::Journal {
        &self.log
    }

    /// A record the client's answer (or the callback's end) removes, or else `ttl`;
    /// acknowledged once durable.
    fn put_expiring(&self, key: u128, kind: u8, stored: &impl Serialize, ttl: Duration) -> Durable {
        let payload = match postcard::to_allocvec(stored) {
            Ok(bytes) => Bytes::from(bytes),
            Err(error) => return Durable::Failed(error.to_string()),
        };
        match self.log.put_ack(key, kind, payload) {
            Ok(ack) => {
                self.expiries.lock().arm(key, ttl);
                Durable::Pending(ack)
            }
            Err(error) => Durable::Failed(error.to_string()),
        }
    }

    /// The record of `key` is finished: forget its expiry and remove it from the log.
    fn finish(&self, key: u128) {
        self.expiries.lock().forget(key);
        // A removal that cannot be queued only means a resend after a crash.
        self.log.try_remove(key);
    }

    fn remove(&self, id: &str, part: usize) {
        self.finish(record_id(id, part));
    }
}

impl Journal for LogJournal {
    fn append(&self, record: JournalRecord<'_>) -> Durable {
        match record {
            JournalRecord::Accepted {
                message,
                username,
                connector,
                part,
                parts,
                content,
                esm_class,
                registered_delivery,
                charge_key,
                amount,
            } => {
                // A single-part message's content is the part's content: store it once
                // (an empty stored message content means "same as the part"; see decode).
                let same = message.content == *content;
                let stored = StoredPart {
                    amount,
                    message: StoredMessage::new(message, !same),
                    username: username.to_owned(),
                    connector: connector.to_owned(),
                    part: part as u32,
                    parts: parts as u32,
                    content: content.to_vec(),
                    esm_class,
                    registered_delivery,
                    charge_key: charge_key.to_owned(),
                };
                let payload = match postcard::to_allocvec(&stored) {
                    Ok(bytes) => Bytes::from(bytes),
                    Err(error) => return Durable::Failed(error.to_string()),
                };
                match self
                    .log
                    .put_ack(record_id(&message.id, part), KIND_ACCEPTED, payload)
                {
                    Ok(ack) => Durable::Pending(ack),
                    // The writer's queue is full: the client may retry in a moment.
                    Err(journal::JournalError::Busy) => Durable::Busy,
                    Err(error) => Durable::Failed(error.to_string()),
                }
            }
            JournalRecord::AwaitingReceipt {
                entry,
                operator_id,
                charge_key,
                ttl,
            } => {
                let stored = StoredReceiptWait {
                    id: entry.id.to_string(),
                    uid: entry.uid.to_string(),
                    username: entry.username.to_string(),
                    smpp_session: origin_session(&entry.origin),
                    source: (&entry.source).into(),
                    destination: (&entry.destination).into(),
                    registered_delivery: entry.registered_delivery,
                    dlr: entry.dlr.as_ref().map(Into::into),
                    connector: entry.connector.to_string(),
                    submitted_at_micros: entry.submitted_at.timestamp_micros(),
                    part: entry.part as u32,
                    operator_id: operator_id.to_owned(),
                    charge_key: charge_key.to_owned(),
                    expires_at: unix_now() + ttl.as_secs(),
                };
                let id = record_id(&entry.id, entry.part);
                if let Ok(bytes) = postcard::to_allocvec(&stored)
                    && self
                        .log
                        .try_put(id, KIND_AWAITING_RECEIPT, Bytes::from(bytes))
                {
                    self.expiries.lock().arm(id, ttl);
                } else {
                    // Not recorded: the accepted record must not linger and be resent.
                    self.finish(id);
                }
                Durable::Done
            }
            JournalRecord::Outcome { id, part, outcome } => {
                // Submitted parts are kept as receipt waits (`AwaitingReceipt`); only
                // failures and expiries end here.
                match outcome {
                    FinalOutcome::Failed { .. } | FinalOutcome::Expired => self.remove(id, part),
                }
                Durable::Done
            }
            JournalRecord::ReceiptDone { id, part } => {
                self.remove(id, part);
                Durable::Done
            }
            JournalRecord::PendingDelivery {
                key,
                username,
                pdu,
                ttl,
            } => {
                let stored = StoredDelivery {
                    username: username.to_owned(),
                    pdu: encode_pdu(pdu),
                    expires_at: unix_now() + ttl.as_secs(),
                };
                self.put_expiring(key, KIND_PENDING_DELIVERY, &stored, ttl)
            }
            JournalRecord::Delivered { key } => {
                self.finish(key);
                Durable::Done
            }
            JournalRecord::PendingCallback { key, callback, ttl } => {
                let stored = StoredCallback {
                    url: callback.url.clone(),
                    post: callback.method == Method::POST,
                    mo: callback.user_agent == MO_AGENT,
                    params: callback
                        .params
                        .iter()
                        .map(|(name, value)| ((*name).to_owned(), value.clone()))
                        .collect(),
                    expires_at: unix_now() + ttl.as_secs(),
                };
                self.put_expiring(key, KIND_PENDING_CALLBACK, &stored, ttl)
            }
        }
    }

    fn housekeeping(&self) {
        let due = self.expiries.lock().due(Instant::now());
        for key in due {
            self.log.try_remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_one_message_get_distinct_stable_keys() {
        let id = "07033084-5cfd-4812-90a4-e4d24ffb6e3d";
        assert_eq!(record_id(id, 0), record_id(id, 0));
        assert_ne!(record_id(id, 0), record_id(id, 1));
        assert_ne!(
            record_id("not-a-uuid", 0),
            record_id("not-a-uuid-either", 0)
        );
    }

    #[test]
    fn a_message_survives_the_round_trip() {
        let message = Message {
            id: Arc::from("07033084-5cfd-4812-90a4-e4d24ffb6e3d"),
            uid: Arc::from("bank1"),
            source: Address::new("BANK", 5, 0),
            destination: Address::new("998901234567", 1, 1),
            content: Bytes::from_static(b"code 1234"),
            registered_delivery: 1,
            tags: vec!["otp".into()],
            dlr: Some(DlrRequest {
                level: 3,
                url: "http://127.0.0.1/dlr".into(),
                method: DlrMethod::Get,
            }),
            ..Message::default()
        };
        let stored = StoredPart {
            message: (&message).into(),
            username: "bank".into(),
            connector: "sim".into(),
            part: 0,
            parts: 1,
            content: b"code 1234".to_vec(),
            esm_class: 0,
            registered_delivery: 1,
            charge_key: message.id.to_string(),
            amount: 20_000,
        };
        let record = journal::Record {
            id: record_id(&message.id, 0),
            kind: KIND_ACCEPTED,
            payload: Bytes::from(postcard::to_allocvec(&stored).unwrap()),
            segment: 1,
            offset: 0,
        };
        let Some(Restored::Part(part)) = decode(&record) else {
            panic!("not restored");
        };
        assert_eq!(part.message.id, message.id);
        assert_eq!(part.message.destination, message.destination);
        assert_eq!(part.message.dlr, message.dlr);
        assert_eq!(part.message.tags, message.tags);
        assert_eq!(&part.content[..], b"code 1234");
        assert_eq!(&*part.username, "bank");
    }

    #[test]
    fn an_expiry_re_armed_later_is_not_fired_by_its_old_deadline() {
        let mut expiries = Expiries::new();
        expiries.arm(5, Duration::ZERO);
        expiries.arm(5, Duration::from_secs(3600));
        expiries.arm(6, Duration::ZERO);
        let due = expiries.due(Instant::now() + Duration::from_secs(1));
        assert_eq!(due, vec![6]);
        assert_eq!(expiries.deadlines.len(), 1);
    }

    /// Many parts accepted, submitted (receipt awaited), then finished: nothing of
    /// theirs stays in the expiry tracking (it used to keep every one until its TTL).
    #[tokio::test]
    async fn finished_records_leave_the_expiry_tracking() {
        let dir = tempfile_dir("durable-expiry");
        let (log, _) = journal::Journal::open(journal::JournalConfig::new(
            &dir,
            journal::Durability::Batched,
        ))
        .unwrap();
        let journal = LogJournal::new(log.clone());
        let day = Duration::from_secs(24 * 3600);
        let ids: Vec<String> = (0..20_000)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        let callback = Callback {
            url: "http://127.0.0.1:9/dlr".into(),
            method: Method::GET,
            params: vec![("id", b"abc".to_vec())],
            user_agent: DLR_AGENT,
        };
        for (n, id) in ids.iter().enumerate() {
            let message = Message {
                id: Arc::from(id.as_str()),
                content: Bytes::from_static(b"code 1234"),
                ..Message::default()
            };
            let content = message.content.clone();
            let accepted = journal.append(JournalRecord::Accepted {
                message: &message,
                username: "bank",
                connector: "sim",
                part: 0,
                parts: 1,
                content: &content,
                esm_class: 0,
                registered_delivery: 1,
                charge_key: id,
                amount: 1,
            });
            assert!(!matches!(accepted, Durable::Failed(_)));
            let entry = DlrEntry {
                id: message.id.clone(),
                uid: Arc::from("bank1"),
                username: Arc::from("bank"),
                origin: Origin::Http,
                source: Address::new("BANK", 5, 0),
                destination: Address::new("998901234567", 1, 1),
                registered_delivery: 1,
                dlr: None,
                connector: Arc::from("sim"),
                submitted_at: Local::now(),
                part: 0,
                multipart: None,
            };
            journal.append(JournalRecord::AwaitingReceipt {
                entry: &entry,
                operator_id: "op",
                charge_key: id,
                ttl: day,
            });
            let key = record_id(id, 1);
            journal.append(JournalRecord::PendingCallback {
                key,
                callback: &callback,
                ttl: day,
            });
            if n % 1000 == 999 {
                log.flush().await.unwrap();
            }
        }
        assert_eq!(journal.tracked_expiries(), 2 * ids.len());
        let full = journal.expiry_bytes();
        for id in &ids {
            journal.append(JournalRecord::ReceiptDone { id, part: 0 });
            journal.append(JournalRecord::Delivered {
                key: record_id(id, 1),
            });
        }
        assert_eq!(journal.tracked_expiries(), 0);
        // The lazily cleaned heap was rebuilt and the map shrunk along the way.
        let after = journal.expiry_bytes();
        assert!(after < full / 10, "{after} bytes left of {full}");
        journal.housekeeping();
        log.flush().await.unwrap();
        assert_eq!(
            log.stats().live.load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        eprintln!(
            "expiry tracking: {full} bytes for {} entries = {} bytes each",
            2 * ids.len(),
            full / (2 * ids.len())
        );
        drop(log);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("{name}-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn a_single_part_stores_its_content_once_and_gets_it_back() {
        let message = Message {
            id: Arc::from("07033084-5cfd-4812-90a4-e4d24ffb6e3d"),
            content: Bytes::from(vec![b'c'; 140]),
            ..Message::default()
        };
        let once = StoredPart {
            message: StoredMessage::new(&message, false),
            username: "bank".into(),
            connector: "sim".into(),
            part: 0,
            parts: 1,
            content: message.content.to_vec(),
            esm_class: 0,
            registered_delivery: 1,
            charge_key: message.id.to_string(),
            amount: 1,
        };
        let payload = postcard::to_allocvec(&once).unwrap();
        assert!(payload.len() < 140 + 140, "{} bytes", payload.len());
        let record = journal::Record {
            id: 1,
            kind: KIND_ACCEPTED,
            payload: Bytes::from(payload),
            segment: 1,
            offset: 0,
        };
        let Ok(Some(Restored::Part(part))) = try_decode(&record) else {
            panic!("not restored");
        };
        assert_eq!(part.message.content, message.content);
        assert_eq!(part.content, message.content);
    }

    #[test]
    fn undecodable_records_are_counted_apart_from_expired_ones() {
        let record = |kind, payload: &'static [u8]| journal::Record {
            id: 9,
            kind,
            payload: Bytes::from_static(payload),
            segment: 3,
            offset: 120,
        };
        let expired = StoredDelivery {
            username: "bank".into(),
            pdu: Vec::new(),
            expires_at: 1,
        };
        let expired = journal::Record {
            payload: Bytes::from(postcard::to_allocvec(&expired).unwrap()),
            ..record(KIND_PENDING_DELIVERY, b"")
        };
        let records = [
            record(KIND_ACCEPTED, b"\xff\xff"),
            record(99, b"x"),
            expired,
        ];
        let (restored, report) = decode_all(&records);
        assert!(restored.is_empty());
        assert_eq!(
            report,
            DecodeReport {
                restored: 0,
                expired: 1,
                undecodable: 2
            }
        );
    }

    #[tokio::test]
    async fn a_pending_callback_is_replayed_until_it_is_done() {
        let dir = std::env::temp_dir().join(format!("durable-cb-{}", uuid::Uuid::new_v4()));
        let config = || journal::JournalConfig::new(&dir, journal::Durability::Fsync);
        let callback = Callback {
            url: "http://127.0.0.1:9/dlr".into(),
            method: Method::POST,
            params: vec![
                ("id", b"abc".to_vec()),
                ("message_status", b"DELIVRD".to_vec()),
            ],
            user_agent: DLR_AGENT,
        };
        let (done, pending) = (1_u128, 2_u128);
        {
            let (log, _) = journal::Journal::open(config()).unwrap();
            let journal = LogJournal::new(log.clone());
            for key in [done, pending] {
                let ttl = Duration::from_secs(60);
                let record = JournalRecord::PendingCallback {
                    key,
                    callback: &callback,
                    ttl,
                };
                journal.append(record).wait().await.unwrap();
            }
            journal.append(JournalRecord::Delivered { key: done });
            log.flush().await.unwrap();
        }
        let (_log, replayed) = journal::Journal::open(config()).unwrap();
        let restored: Vec<Restored> = replayed.iter().filter_map(decode).collect();
        let [
            Restored::PendingCallback {
                key,
                callback: back,
                ..
            },
        ] = &restored[..]
        else {
            panic!("expected the one pending callback, got {restored:?}");
        };
        assert_eq!(*key, pending);
        assert_eq!(back.url, callback.url);
        assert_eq!(back.method, Method::POST);
        assert_eq!(back.params, callback.params);
        assert_eq!(back.user_agent, DLR_AGENT);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
