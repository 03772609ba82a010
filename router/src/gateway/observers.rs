//! Observers that must see every receipt and MO (the REST API's message records and
//! its webhooks), as opposed to best-effort listeners that may skip some.
//!
//! Each observer gets a bounded queue. The receipt and MO paths run in the uplink's
//! deliver_sm handlers, which may wait: they wait for room in the queue, then for
//! the observer's acknowledgement that the event is durable on its side, before the
//! operator hears ESME_ROK. A slow observer therefore slows the operator's receipts
//! and MO through the SMPP window (the uplink stops reading once `max_inbound`
//! handlers wait, and TCP pushes back), and an event the operator was answered for
//! is already stored: a kill -9 loses none. The observer's work never depends on the
//! uplink, so the wait cannot deadlock it.
//!
//! Failures found on the submit path (submit_sm_resp errors, expiry in the queue)
//! happen where nothing may wait: they are queued without waiting for room, on a task
//! of their own when the queue is full. Their number is bounded by the parts in
//! flight, since each part fails at most once.

use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::receipts::{MoEvent, ReceiptEvent};

/// One event handed to an observer; call [`Observed::done`] once it is durable.
#[derive(Debug)]
pub struct Observed<T> {
    pub event: T,
    ack: Option<oneshot::Sender<()>>,
}

impl<T> Observed<T> {
    /// The event is stored: its operator may be answered.
    pub fn done(mut self) -> T {
        if let Some(ack) = self.ack.take() {
            let _ = ack.send(());
        }
        self.event
    }

    /// Whether somebody waits for [`Observed::done`] (false for failures reported on
    /// the submit path, which nobody holds back).
    pub fn awaited(&self) -> bool {
        self.ack.is_some()
    }
}

/// What an observer receives: receipts (and failures), and MO messages.
pub struct Subscription {
    pub receipts: mpsc::Receiver<Observed<ReceiptEvent>>,
    pub mo: mpsc::Receiver<Observed<MoEvent>>,
}

struct Subscriber {
    receipts: mpsc::Sender<Observed<ReceiptEvent>>,
    mo: mpsc::Sender<Observed<MoEvent>>,
}

/// An observer dropped an event without storing it (it stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotStored;

#[derive(Default)]
pub(super) struct Observers {
    subscribers: RwLock<Vec<Subscriber>>,
}

impl Observers {
    pub(super) fn subscribe(&self, capacity: usize) -> Subscription {
        let (receipts_tx, receipts) = mpsc::channel(capacity.max(1));
        let (mo_tx, mo) = mpsc::channel(capacity.max(1));
        self.subscribers.write().push(Subscriber {
            receipts: receipts_tx,
            mo: mo_tx,
        });
        Subscription { receipts, mo }
    }

    /// The live subscribers' senders. Every receipt reads this: the write lock is taken
    /// only to forget a subscriber that went away.
    fn senders<T>(&self, pick: impl Fn(&Subscriber) -> mpsc::Sender<T>) -> Vec<mpsc::Sender<T>> {
        {
            let subscribers = self.subscribers.read();
            if subscribers.iter().all(|s| !s.receipts.is_closed()) {
                return subscribers.iter().map(pick).collect();
            }
        }
        let mut subscribers = self.subscribers.write();
        subscribers.retain(|s| !s.receipts.is_closed());
        subscribers.iter().map(pick).collect()
    }

    /// Hands `event` to every observer, waiting for room, then for each to store it.
    async fn deliver<T: Clone>(
        senders: Vec<mpsc::Sender<Observed<T>>>,
        event: T,
    ) -> Result<(), NotStored> {
        let mut acks = Vec::with_capacity(senders.len());
        for tx in senders {
            let (ack, stored) = oneshot::channel();
            let observed = Observed {
                event: event.clone(),
                ack: Some(ack),
            };
            if tx.send(observed).await.is_err() {
                return Err(NotStored);
            }
            acks.push(stored);
        }
        for stored in acks {
            stored.await.map_err(|_| NotStored)?;
        }
        Ok(())
    }

    /// A matched receipt: returns once every observer stored it.
    pub(super) async fn receipt(&self, event: ReceiptEvent) -> Result<(), NotStored> {
        let senders = self.senders(|s| s.receipts.clone());
        if senders.is_empty() {
            return Ok(());
        }
        Self::deliver(senders, event).await
    }

    /// An MO handed to a user: returns once every observer stored it.
    pub(super) async fn mo(&self, event: MoEvent) -> Result<(), NotStored> {
        let senders = self.senders(|s| s.mo.clone());
        if senders.is_empty() {
            return Ok(());
        }
        Self::deliver(senders, event).await
    }

    /// A failure on the submit path, where nothing may wait: queued at once, or by a
    /// task of its own while the queue is full.
    pub(super) fn failure(&self, event: ReceiptEvent) {
        for tx in self.senders(|s| s.receipts.clone()) {
            let observed = Observed {
                event: event.clone(),
                ack: None,
            };
            match tx.try_send(observed) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => {}
                Err(mpsc::error::TrySendError::Full(observed)) => {
                    match tokio::runtime::Handle::try_current() {
                        Ok(runtime) => {
                            runtime.spawn(async move {
                                let _ = tx.send(observed).await;
                            });
                        }
                        // The gateway runs on tokio; this is never reached in practice.
                        Err(_) => {
                            warn!(id = %observed.event.id, "failure not observed: no runtime")
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;

    fn event(n: usize) -> ReceiptEvent {
        ReceiptEvent {
            id: Arc::from(format!("m{n}")),
            uid: Arc::from("u"),
            connector: Arc::from("c"),
            operator_id: String::new(),
            stat: "DELIVRD".into(),
            err: "000".into(),
            part: 0,
        }
    }

    #[tokio::test]
    async fn a_receipt_waits_for_room_and_for_its_acknowledgement() {
        let observers = Arc::new(Observers::default());
        let mut sub = observers.subscribe(1);
        let first = tokio::spawn({
            let o = observers.clone();
            async move { o.receipt(event(1)).await }
        });
        let second = tokio::spawn({
            let o = observers.clone();
            async move { o.receipt(event(2)).await }
        });
        let got = sub.receipts.recv().await.expect("first");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !first.is_finished() && !second.is_finished(),
            "not stored yet"
        );
        got.done();
        let got = sub.receipts.recv().await.expect("second");
        got.done();
        assert_eq!(first.await.expect("task"), Ok(()));
        assert_eq!(second.await.expect("task"), Ok(()));
        // Failures never wait, even on a full queue, and still arrive.
        for n in 0..5 {
            observers.failure(event(10 + n));
        }
        for _ in 0..5 {
            let got = sub.receipts.recv().await.expect("failure");
            assert!(!got.awaited());
        }
    }

    #[tokio::test]
    async fn an_observer_that_stops_does_not_store() {
        let observers = Arc::new(Observers::default());
        let mut sub = observers.subscribe(4);
        let waiting = tokio::spawn({
            let o = observers.clone();
            async move { o.receipt(event(1)).await }
        });
        // Taken, then dropped unstored (the observer stopped).
        drop(sub.receipts.recv().await.expect("event"));
        assert_eq!(waiting.await.expect("task"), Err(NotStored));
        drop(sub);
        // Gone: no longer waited for.
        assert_eq!(observers.receipt(event(2)).await, Ok(()));
    }
}
