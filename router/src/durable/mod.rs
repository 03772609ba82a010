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
//! - `SUBMITTED`: a part the operator accepted whose receipt nobody wants: kept a while
//!   so that a restart before billing's write-behind stored the charge still settles it.
//! - `PENDING_DELIVERY`: a receipt or MO kept for a client, until it answers.
//! - `PENDING_CALLBACK`: an HTTP DLR or MO callback, until it is acknowledged or given up.
//! - `ANNEX`: a front end's own record of an accepted message (`Message::annex`), until
//!   the front end has stored it elsewhere: it rides on the message's group commit, so
//!   the front end can answer without a second durable write of its own.

mod decode;
mod expiry;
mod stored;
#[cfg(test)]
mod tests;

use std::{
    borrow::Cow,
    time::{Duration, Instant},
};

use bytes::Bytes;
use hyper::Method;
use parking_lot::Mutex;
use serde::Serialize;

use crate::{
    callbacks::MO_AGENT,
    journaling::{Durable, FinalOutcome, Journal, JournalRecord},
};

use decode::unix_now;
pub use decode::{DecodeReport, Restored, RestoredPart, decode, decode_all};
use expiry::{Expiries, FixedTtlQueue};
use stored::*;

pub const KIND_ACCEPTED: u8 = 1;
pub const KIND_AWAITING_RECEIPT: u8 = 2;
pub const KIND_PENDING_DELIVERY: u8 = 3;
pub const KIND_PENDING_CALLBACK: u8 = 4;
pub const KIND_MO_PART: u8 = 5;
pub const KIND_SUBMITTED: u8 = 6;
pub const KIND_ANNEX: u8 = 7;

/// Added to a message's key for its annex: far above any part number.
const ANNEX_OFFSET: usize = 1 << 20;

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

/// The pipeline's `Journal` on the segmented log.
pub struct LogJournal {
    log: journal::Journal,
    /// Expiring records by deadline, so they leave the log when their TTL passes.
    expiries: Mutex<Expiries>,
    /// `JournalRecord::Submitted` records: one per part sent without a receipt wanted,
    /// all with the same TTL.
    bridges: Mutex<FixedTtlQueue>,
}

impl LogJournal {
    pub fn new(log: journal::Journal) -> Self {
        Self {
            log,
            expiries: Mutex::new(Expiries::new()),
            bridges: Mutex::new(FixedTtlQueue::new()),
        }
    }

    /// Records whose expiry is tracked (live receipt waits, pending deliveries and
    /// callbacks); falls back to zero when they complete.
    pub fn tracked_expiries(&self) -> usize {
        self.expiries.lock().deadlines.len() + self.bridges.lock().len()
    }

    /// Approximate heap bytes of the expiry tracking (for metrics and sizing).
    pub fn expiry_bytes(&self) -> usize {
        self.expiries.lock().bytes() + self.bridges.lock().bytes()
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

    /// Puts the record that follows a part's ACCEPTED one once the operator took it (the
    /// same key replaces it). Whether it was queued; when not, the accepted record is
    /// removed instead, so it does not linger and get the part sent again.
    fn replace_accepted(&self, key: u128, kind: u8, stored: &impl Serialize) -> bool {
        let queued = encode(stored, 0).is_ok_and(|bytes| self.log.try_put(key, kind, bytes));
        if !queued {
            self.finish(key);
        }
        queued
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
                    username: Cow::Borrowed(username),
                    connector: Cow::Borrowed(connector),
                    part: part as u32,
                    parts: parts as u32,
                    content: Cow::Borrowed(content),
                    esm_class,
                    registered_delivery,
                    charge_key: Cow::Borrowed(charge_key),
                };
                let hint = content.len() + if same { 0 } else { message.content.len() };
                let payload = match encode(&stored, hint) {
                    Ok(bytes) => bytes,
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
                    id: Cow::Borrowed(&entry.id),
                    uid: Cow::Borrowed(&entry.uid),
                    username: Cow::Borrowed(&entry.username),
                    smpp_session: origin_session(&entry.origin),
                    source: (&entry.source).into(),
                    destination: (&entry.destination).into(),
                    registered_delivery: entry.registered_delivery,
                    dlr: entry.dlr.as_ref().map(Into::into),
                    connector: Cow::Borrowed(&entry.connector),
                    submitted_at_micros: entry.submitted_at.timestamp_micros(),
                    part: entry.part as u32,
                    operator_id: Cow::Borrowed(operator_id),
                    charge_key: Cow::Borrowed(charge_key),
                    expires_at: unix_now() + ttl.as_secs(),
                };
                let id = record_id(&entry.id, entry.part);
                if self.replace_accepted(id, KIND_AWAITING_RECEIPT, &stored) {
                    self.expiries.lock().arm(id, ttl);
                }
                Durable::Done
            }
            JournalRecord::Submitted {
                id,
                part,
                operator_id,
                charge_key,
                ttl,
            } => {
                let stored = StoredSubmitted {
                    operator_id: Cow::Borrowed(operator_id),
                    charge_key: Cow::Borrowed(charge_key),
                    expires_at: unix_now() + ttl.as_secs(),
                };
                let key = record_id(id, part);
                if self.replace_accepted(key, KIND_SUBMITTED, &stored) {
                    self.bridges.lock().push(key, ttl);
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
            JournalRecord::Annex { id, annex } => {
                let stored = StoredAnnex {
                    id: Cow::Borrowed(id),
                    annex: Cow::Borrowed(annex),
                };
                let queued = encode(&stored, id.len() + annex.len()).is_ok_and(|bytes| {
                    self.log
                        .try_put(record_id(id, ANNEX_OFFSET), KIND_ANNEX, bytes)
                });
                // Not queued: the message must not be accepted without it.
                if queued { Durable::Done } else { Durable::Busy }
            }
            JournalRecord::AnnexDone { id } => {
                self.remove(id, ANNEX_OFFSET);
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
            JournalRecord::MoPart { key, message, ttl } => {
                let stored = StoredMoPart {
                    message: StoredMessage::new(message, true),
                    expires_at: unix_now() + ttl.as_secs(),
                };
                self.put_expiring(key, KIND_MO_PART, &stored, ttl)
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

    fn adopt(&self, key: u128, ttl: Duration) {
        self.expiries.lock().arm(key, ttl);
    }

    fn housekeeping(&self) {
        let now = Instant::now();
        let due = self.expiries.lock().due(now);
        let bridged = self.bridges.lock().due(now);
        // Removing a key that a receipt already finished is a no-op in the log.
        for key in due.into_iter().chain(bridged) {
            self.log.try_remove(key);
        }
    }
}
