//! After a restart, the journal's replay: accepted parts go back to the front of their
//! queues in their original order, awaited receipts get their operator-id mapping back,
//! kept deliveries and HTTP callbacks are made again.

use std::sync::Arc;

use proto::charging::{MessageCharge, PartCharge};
use smpp_core::rusmpp::CommandStatus;
use tracing::{debug, info, warn};

use super::{Annex, Connector, Gateway, InFlight, mt::segments};
use crate::{
    durable::{Restored, record_id},
    journaling::JournalRecord,
    queue::Queued,
};

/// What a journal replay brought back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// Charge keys and operator ids of parts the operator had accepted before the
    /// restart (their charges must be committed, whatever billing's store says).
    pub submitted: Vec<(String, String)>,
    pub requeued: usize,
    pub deliveries: usize,
    pub receipts_awaited: usize,
    /// HTTP callbacks (DLR and MO) sent again.
    pub callbacks: usize,
    /// Parts of long MO given back to reassembly.
    pub mo_parts: usize,
    /// Front ends' annexes kept for them (`take_annexes`).
    pub annexes: usize,
    pub dropped: usize,
}

impl Gateway {
    /// Whether a journal replay announced at start (`Deps::replay_pending`) is still
    /// being restored.
    pub fn restoring(&self) -> bool {
        !self.replayed.is_cancelled()
    }

    /// Take back what the journal replayed after a restart: accepted parts go to the front
    /// of their connector's queue in their original order; awaited receipts get their
    /// operator-id mapping back. Clients may already be bound: receipts that find no
    /// message wait until this ends (see `Deps::replay_pending`).
    pub async fn restore(&self, records: impl IntoIterator<Item = Restored>) -> RestoreReport {
        self.restore_with(records, |_| true).await
    }

    /// [`restore`](Self::restore), reporting in `submitted` only the charge keys that
    /// `settling` wants (the reservations billing still holds open): a day of receipt
    /// waits would otherwise be listed whole.
    pub async fn restore_with(
        &self,
        records: impl IntoIterator<Item = Restored>,
        settling: impl Fn(&str) -> bool,
    ) -> RestoreReport {
        let mut report = RestoreReport::default();
        let mut requeue: Vec<(Arc<Connector>, Queued)> = Vec::new();
        let mut mo_parts = Vec::new();
        let mut annexes = Vec::new();
        for (n, record) in records.into_iter().enumerate() {
            // A large replay runs beside live traffic: let other tasks in now and then.
            if n % 4096 == 4095 {
                tokio::task::yield_now().await;
            }
            match record {
                Restored::Part(p) => {
                    let Some(connector) = self.connectors.load().get(&p.connector).cloned() else {
                        warn!(id = %p.message.id, connector = %p.connector, "replayed message for an unknown connector: refunded");
                        self.charging.refund(&p.charge_key, "UNKNOWN_CONNECTOR");
                        report.dropped += 1;
                        continue;
                    };
                    // Reserving again is a no-op when billing still holds the reservation,
                    // and restores one its write-behind lost. A reference billing already
                    // settled is sent anyway: the receipt the client waits for may depend
                    // on it, and settling twice is a no-op.
                    let charges = [PartCharge {
                        index: p.part,
                        text: &p.content,
                        segments: segments(&p.message, &p.content),
                    }];
                    let charge = MessageCharge {
                        uid: &p.message.uid,
                        message_id: &p.message.id,
                        price_per_part: p.amount,
                        connector: &p.connector,
                        destination: &p.message.destination.addr,
                        sender: &p.message.source.addr,
                        parts: p.parts,
                        charges: &charges,
                        network: None,
                        cost_per_part: 0,
                    };
                    if let Err(error) = self.charging.reserve(charge).await {
                        debug!(id = %p.message.id, part = p.part, %error, "replayed part: no new reservation");
                    }
                    let message = Arc::new(p.message);
                    let tag = self.new_tag();
                    let f = InFlight {
                        expires_at: smpp_core::time::deadline(&message.validity_period),
                        message,
                        content: p.content,
                        esm_class: p.esm_class,
                        registered_delivery: p.registered_delivery,
                        part: p.part,
                        parts: p.parts,
                        connector: p.connector,
                        alternatives: None,
                        network: None,
                        lcr: None,
                        charge_key: p.charge_key,
                        amount: p.amount,
                        requeues: 0,
                        username: p.username,
                        multipart: None,
                        trace: super::trace::Parent::default(),
                    };
                    let Some(item) = self.rebuild(&f, tag) else {
                        self.fail(&f, u32::from(CommandStatus::EsmeRsyserr));
                        report.dropped += 1;
                        continue;
                    };
                    self.track(tag, f);
                    requeue.push((connector, item));
                    report.requeued += 1;
                }
                Restored::PendingDelivery {
                    key,
                    username,
                    pdu,
                    ttl,
                } => {
                    self.journal.adopt(key, ttl);
                    self.deliver_or_keep(&username, key, pdu);
                    report.deliveries += 1;
                }
                Restored::AwaitingReceipt {
                    entry,
                    connector,
                    operator_id,
                    charge_key,
                    ttl,
                } => {
                    self.journal.adopt(record_id(&entry.id, entry.part), ttl);
                    if settling(&charge_key) {
                        report.submitted.push((charge_key, operator_id.clone()));
                    }
                    self.idmap
                        .insert(&connector, &operator_id, Arc::new(entry), ttl);
                    report.receipts_awaited += 1;
                }
                Restored::Submitted {
                    key,
                    operator_id,
                    charge_key,
                    ttl,
                } => {
                    self.journal.adopt(key, ttl);
                    if settling(&charge_key) {
                        report.submitted.push((charge_key, operator_id));
                    }
                }
                Restored::MoPart { key, message, ttl } => {
                    self.journal.adopt(key, ttl);
                    mo_parts.push(message);
                }
                Restored::PendingCallback { key, callback, ttl } => {
                    self.journal.adopt(key, ttl);
                    self.spawn_callback(key, callback);
                    report.callbacks += 1;
                }
                Restored::Annex { id, annex } => {
                    annexes.push((id, annex));
                    report.annexes += 1;
                }
            }
        }
        self.hand_annexes(annexes);
        for (connector, item) in requeue.into_iter().rev() {
            connector.queue.push_front(item);
        }
        // Long MO waiting for their other parts get them back; a message whose parts
        // were all journaled before the crash is routed now.
        report.mo_parts = mo_parts.len();
        for part in mo_parts {
            self.on_mo(part, false).await;
        }
        if report.requeued + report.receipts_awaited + report.deliveries + report.dropped > 0 {
            info!(
                requeued = report.requeued,
                receipts_awaited = report.receipts_awaited,
                deliveries = report.deliveries,
                dropped = report.dropped,
                "journal replay restored"
            );
        }
        self.replayed.cancel();
        report
    }

    /// Hands `taker` the annexes (`Message::annex`) of messages the replay brings back,
    /// by message id: those already restored at once, the others once the replay has
    /// read them all and before it queues any of their messages again, so a front end
    /// knows each message before its receipt can come. Each annex stays in the journal
    /// until [`forget_annex`](Self::forget_annex).
    pub fn take_annexes(&self, taker: impl Fn(Vec<Annex>) + Send + Sync + 'static) {
        let mut annexes = self.annexes.lock();
        let waiting = std::mem::take(&mut annexes.waiting);
        if !waiting.is_empty() {
            taker(waiting);
        }
        annexes.taker = Some(Box::new(taker));
    }

    /// Gives restored annexes to their taker, or keeps them until one comes.
    fn hand_annexes(&self, restored: Vec<Annex>) {
        if restored.is_empty() {
            return;
        }
        let mut annexes = self.annexes.lock();
        match &annexes.taker {
            Some(taker) => taker(restored),
            None => annexes.waiting.extend(restored),
        }
    }

    /// The front end stored the annex of message `id` elsewhere: the journal drops it.
    pub fn forget_annex(&self, id: &str) {
        self.journal.append(JournalRecord::AnnexDone { id });
    }
}
