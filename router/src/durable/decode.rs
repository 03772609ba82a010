//! Replay: the log's records back into what the gateway restores.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;

use smpp_core::rusmpp::Pdu;

use crate::{callbacks::Callback, model::Message, receipts::DlrEntry};

use super::{stored::*, *};

/// What replay hands back to the pipeline.
#[derive(Debug)]
pub enum Restored {
    /// A part of a long MO whose message was not complete.
    MoPart {
        key: u128,
        message: Message,
        ttl: Duration,
    },
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
    /// A front end's annex of an accepted message (`Message::annex`).
    Annex {
        id: Arc<str>,
        annex: Bytes,
    },
    /// A part the operator took whose receipt nobody waits for.
    Submitted {
        key: u128,
        operator_id: String,
        charge_key: String,
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

pub(super) fn unix_now() -> u64 {
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

pub(super) fn warn_undecodable(record: &journal::Record, reason: &str) {
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
pub(super) fn try_decode(record: &journal::Record) -> Result<Option<Restored>, &'static str> {
    match record.kind {
        KIND_ACCEPTED => {
            let p: StoredPart<'static> =
                postcard::from_bytes(&record.payload).map_err(|_| "bad accepted part")?;
            let content = Bytes::from(p.content.into_owned());
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
                charge_key: p.charge_key.into_owned(),
                amount: p.amount,
            })))
        }
        KIND_AWAITING_RECEIPT => {
            let w: StoredReceiptWait<'_> =
                postcard::from_bytes(&record.payload).map_err(|_| "bad receipt wait")?;
            let Some(ttl) = time_left(w.expires_at) else {
                return Ok(None);
            };
            let connector = shared(&w.connector);
            Ok(Some(Restored::AwaitingReceipt {
                entry: DlrEntry {
                    id: Arc::from(w.id),
                    uid: shared(&w.uid),
                    username: shared(&w.username),
                    origin: origin_from(w.smpp_session),
                    source: w.source.into(),
                    destination: w.destination.into(),
                    registered_delivery: w.registered_delivery,
                    dlr: w.dlr.map(Into::into),
                    connector: connector.clone(),
                    submitted_at: local_from_micros(w.submitted_at_micros),
                    part: w.part as usize,
                    multipart: None,
                    trace: Default::default(),
                },
                connector,
                operator_id: w.operator_id.into_owned(),
                charge_key: w.charge_key.into_owned(),
                ttl,
            }))
        }
        KIND_SUBMITTED => {
            let s: StoredSubmitted<'_> =
                postcard::from_bytes(&record.payload).map_err(|_| "bad submitted part")?;
            let Some(ttl) = time_left(s.expires_at) else {
                return Ok(None);
            };
            Ok(Some(Restored::Submitted {
                key: record.id,
                operator_id: s.operator_id.into_owned(),
                charge_key: s.charge_key.into_owned(),
                ttl,
            }))
        }
        KIND_PENDING_DELIVERY => {
            let d: StoredDelivery =
                postcard::from_bytes(&record.payload).map_err(|_| "bad pending delivery")?;
            let Some(ttl) = time_left(d.expires_at) else {
                return Ok(None);
            };
            Ok(Some(Restored::PendingDelivery {
                key: record.id,
                username: Arc::from(d.username),
                pdu: decode_pdu(&d.pdu).ok_or("bad deliver_sm in pending delivery")?,
                ttl,
            }))
        }
        KIND_MO_PART => {
            let p: StoredMoPart<'static> =
                postcard::from_bytes(&record.payload).map_err(|_| "bad MO part")?;
            let Some(ttl) = time_left(p.expires_at) else {
                return Ok(None);
            };
            Ok(Some(Restored::MoPart {
                key: record.id,
                message: p.message.into_message(),
                ttl,
            }))
        }
        KIND_PENDING_CALLBACK => {
            let c: StoredCallback =
                postcard::from_bytes(&record.payload).map_err(|_| "bad pending callback")?;
            let Some(ttl) = time_left(c.expires_at) else {
                return Ok(None);
            };
            Ok(Some(Restored::PendingCallback {
                key: record.id,
                callback: c.into_callback().ok_or("bad callback parameters")?,
                ttl,
            }))
        }
        KIND_ANNEX => {
            let a: StoredAnnex<'_> =
                postcard::from_bytes(&record.payload).map_err(|_| "bad annex")?;
            Ok(Some(Restored::Annex {
                id: Arc::from(a.id),
                annex: Bytes::from(a.annex.into_owned()),
            }))
        }
        _ => Err("unknown record kind"),
    }
}

/// The time a record has left before `expires_at` (unix seconds); None once expired.
fn time_left(expires_at: u64) -> Option<Duration> {
    expires_at
        .checked_sub(unix_now())
        .filter(|&left| left > 0)
        .map(Duration::from_secs)
}

/// A user's or connector's name, shared with the records decoded just before: a replay
/// holds millions of receipt waits for a handful of names, so they share one allocation
/// each instead of three per record.
fn shared(name: &str) -> Arc<str> {
    const KEPT: usize = 32;
    thread_local! {
        static NAMES: std::cell::RefCell<Vec<Arc<str>>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if let Some(known) = names.iter().find(|n| &***n == name) {
            return known.clone();
        }
        let fresh: Arc<str> = Arc::from(name);
        if names.len() == KEPT {
            names.remove(0);
        }
        names.push(fresh.clone());
        fresh
    })
}
