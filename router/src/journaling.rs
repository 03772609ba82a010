//! What the pipeline tells the journal, and when an acknowledgement may go out.
//!
//! Every state change that a crash must not lose is a [`JournalRecord`]; the pipeline
//! answers a client (or an operator) only once the [`Durable`] of its record completes.
//! [`crate::durable::LogJournal`] writes them to the local log; [`NoJournal`] is the
//! `memory` mode.

use std::{pin::Pin, time::Duration};

use bytes::Bytes;
use smpp_core::rusmpp::Pdu;
use tokio::sync::oneshot;

use crate::{model::Message, receipts::DlrEntry};

/// A message's final fate, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalOutcome {
    Failed { status: u32 },
    Expired,
}

/// What the journal is told.
#[derive(Debug)]
pub enum JournalRecord<'a> {
    /// One part accepted and charged, about to be queued. The client is answered only
    /// when this is durable.
    Accepted {
        message: &'a Message,
        username: &'a str,
        connector: &'a str,
        part: usize,
        parts: usize,
        content: &'a Bytes,
        esm_class: u8,
        registered_delivery: u8,
        charge_key: &'a str,
        /// This part's price, reserved under `charge_key`.
        amount: i64,
    },
    /// A front end's annex of an accepted message (`Message::annex`), appended before
    /// the message's last ACCEPTED part so that part's acknowledgement covers it. Kept
    /// until `AnnexDone`.
    Annex { id: &'a str, annex: &'a Bytes },
    /// The front end stored the annex of message `id` elsewhere (or the message was
    /// refused after all).
    AnnexDone { id: &'a str },
    /// The operator took a part whose receipt the client wants: keep what is needed to
    /// match the receipt after a restart.
    AwaitingReceipt {
        entry: &'a DlrEntry,
        operator_id: &'a str,
        /// The part's (committed) charge, so a restart can tell billing it went out.
        charge_key: &'a str,
        ttl: Duration,
    },
    /// The operator took a part whose receipt nobody wants. The record only bridges
    /// billing's write-behind: a restart must still know the part went out (and not
    /// send it again, nor refund it). Every such record lives the same fixed `ttl`.
    Submitted {
        id: &'a str,
        part: usize,
        operator_id: &'a str,
        charge_key: &'a str,
        ttl: Duration,
    },
    /// One part's final outcome (no receipt awaited).
    Outcome {
        id: &'a str,
        part: usize,
        outcome: FinalOutcome,
    },
    /// The final receipt of a part was handled.
    ReceiptDone { id: &'a str, part: usize },
    /// A deliver_sm (receipt or MO) for a client, kept until the client answers it.
    PendingDelivery {
        key: u128,
        username: &'a str,
        pdu: &'a Pdu,
        ttl: Duration,
    },
    /// One part of a long MO, held until its whole message is routed (or `ttl`, the
    /// reassembly timeout, passes); ended by `Delivered { key }`.
    MoPart {
        key: u128,
        message: &'a Message,
        ttl: Duration,
    },
    /// The client answered that deliver_sm (or the HTTP callback of that key is done).
    Delivered { key: u128 },
    /// An HTTP callback (DLR or MO) not yet acknowledged or given up; ended by
    /// `Delivered { key }`.
    PendingCallback {
        key: u128,
        callback: &'a crate::callbacks::Callback,
        ttl: Duration,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("journal append failed: {0}")]
pub struct JournalError(pub String);

/// When an append is safe to acknowledge.
pub enum Durable {
    Done,
    /// Completed by the log's group commit.
    Pending(oneshot::Receiver<Result<(), String>>),
    /// Safe once this completes: e.g. a client's answer, or else a journal write.
    Deferred(Pin<Box<dyn Future<Output = Result<(), String>> + Send>>),
    /// The log's queue is full: nothing was written, try again shortly.
    Busy,
    /// Could not even be queued (the log stopped or failed).
    Failed(String),
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Done => f.write_str("Done"),
            Self::Pending(_) => f.write_str("Pending"),
            Self::Deferred(_) => f.write_str("Deferred"),
            Self::Busy => f.write_str("Busy"),
            Self::Failed(reason) => f.debug_tuple("Failed").field(reason).finish(),
        }
    }
}

impl Durable {
    pub async fn wait(self) -> Result<(), JournalError> {
        match self {
            Self::Done => Ok(()),
            Self::Pending(rx) => rx
                .await
                .map_err(|_| JournalError("log writer stopped".into()))?
                .map_err(JournalError),
            Self::Deferred(done) => done.await.map_err(JournalError),
            Self::Busy => Err(JournalError("journal busy".into())),
            Self::Failed(reason) => Err(JournalError(reason)),
        }
    }
}

pub trait Journal: Send + Sync + 'static {
    fn append(&self, record: JournalRecord<'_>) -> Durable;

    /// Periodic upkeep (expiring records nobody will finish).
    fn housekeeping(&self) {}

    /// A record replayed after a restart stays where it is in the log; from now on this
    /// process expires it after `ttl` unless it is finished first.
    fn adopt(&self, _key: u128, _ttl: std::time::Duration) {}
}

/// No log (`durability = "memory"`): everything is "durable" at once.
#[derive(Debug, Default)]
pub struct NoJournal;

impl Journal for NoJournal {
    fn append(&self, _record: JournalRecord<'_>) -> Durable {
        Durable::Done
    }
}
