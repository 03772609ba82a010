//! Getting receipts and MO to clients. SMPP: deliver_sm to one of the user's receiver
//! binds, journaled and kept while the user is away, out of the journal once answered;
//! a bound client's receipt is relayed (the operator waits for the client's answer).
//! HTTP: callbacks journaled until acknowledged or given up.

use std::{sync::Arc, time::Duration};

use smpp_core::{
    rusmpp::Pdu,
    server::{DeliverError, Outbound, OutboundResult},
};

use super::Gateway;
use crate::{
    callbacks::Callback,
    journaling::{Durable, JournalRecord},
};

impl Gateway {
    /// Journals an HTTP callback, then makes it (with Jasmin's retries); the record
    /// leaves the journal when it is acknowledged or given up. The returned `Durable`
    /// says when it is safe to answer the operator for it.
    pub(super) fn throw(&self, callback: Callback) -> Durable {
        let key = uuid::Uuid::new_v4().as_u128();
        let durable = self.journal.append(JournalRecord::PendingCallback {
            key,
            callback: &callback,
            ttl: Duration::from_secs(self.settings.pending_expiry_secs),
        });
        self.spawn_callback(key, callback);
        durable
    }

    pub(super) fn spawn_callback(&self, key: u128, callback: Callback) {
        let thrower = self.thrower.clone();
        let journal = self.journal.clone();
        tokio::spawn(async move {
            // Acknowledged or given up after Jasmin's retries: final either way.
            thrower.deliver(callback).await;
            journal.append(JournalRecord::Delivered { key });
        });
    }

    /// deliver_sm to one of the user's receiver binds, or kept until one binds. The PDU
    /// goes into the journal first (the returned `Durable`: the operator is answered only
    /// once it is written) and leaves it when the client answers, so a receipt or MO we
    /// took responsibility for survives a crash.
    pub(super) fn push_to_user(&self, username: &Arc<str>, pdu: Pdu) -> Durable {
        let key = uuid::Uuid::new_v4().as_u128();
        let durable = self.journal.append(JournalRecord::PendingDelivery {
            key,
            username,
            pdu: &pdu,
            ttl: Duration::from_secs(self.settings.pending_expiry_secs),
        });
        self.deliver_or_keep(username, key, pdu);
        durable
    }

    /// A receipt for a bound client, relayed: the returned `Durable` completes when the
    /// client answered (nothing journaled: until the operator hears from us, it keeps
    /// the receipt and sends it again after a crash), or, when the client does not
    /// answer within `receipt_relay_wait_ms`, once the receipt is journaled and kept for
    /// its next bind. Not bound, or older PDUs waiting: journaled at once.
    pub(super) fn relay_to_user(&self, username: &Arc<str>, pdu: Pdu) -> Durable {
        let wait = Duration::from_millis(self.settings.receipt_relay_wait_ms);
        if wait.is_zero() || self.store.len(username) > 0 {
            return self.push_to_user(username, pdu);
        }
        let (outbound, reply) = Outbound::with_reply(pdu.clone());
        if self.registry.deliver(username, outbound).is_err() {
            return self.push_to_user(username, pdu);
        }
        let journal = self.journal.clone();
        let store = self.store.clone();
        let username = username.clone();
        let ttl = Duration::from_secs(self.settings.pending_expiry_secs);
        Durable::Deferred(Box::pin(async move {
            if let Ok(Ok(OutboundResult::Answered(_))) = tokio::time::timeout(wait, reply).await {
                return Ok(());
            }
            // Unanswered (or the bind went away): from here on it is ours to keep. A late
            // answer to the first copy makes the redelivery a duplicate, never a loss.
            let key = uuid::Uuid::new_v4().as_u128();
            let durable = journal.append(JournalRecord::PendingDelivery {
                key,
                username: &username,
                pdu: &pdu,
                ttl,
            });
            store.keep(&username, key, pdu);
            durable.wait().await.map_err(|e| e.0)
        }))
    }

    pub(super) fn deliver_or_keep(&self, username: &Arc<str>, key: u128, pdu: Pdu) {
        if self.store.len(username) > 0 {
            // Keep order behind what already waits.
            self.store.keep(username, key, pdu);
            self.flush_pending(username);
            return;
        }
        let (outbound, reply) = Outbound::with_reply(pdu.clone());
        match self.registry.deliver(username, outbound) {
            Ok(_) => self.await_answer(username.clone(), key, pdu, reply),
            Err(DeliverError::NotBound(o) | DeliverError::Full(o)) => {
                self.store.keep(username, key, *o.pdu);
            }
        }
    }

    /// Hands what waits for `username` to its binds (it just bound).
    pub(crate) fn flush_pending(&self, username: &Arc<str>) {
        for sent in self.store.flush(username, &self.registry) {
            self.await_answer(username.clone(), sent.key, sent.pdu, sent.reply);
        }
    }

    /// The client's answer takes the PDU out of the journal; no answer (timeout, bind
    /// lost) keeps it for the next bind, where the journal still has it.
    fn await_answer(
        &self,
        username: Arc<str>,
        key: u128,
        pdu: Pdu,
        reply: tokio::sync::oneshot::Receiver<OutboundResult>,
    ) {
        let journal = self.journal.clone();
        let store = self.store.clone();
        tokio::spawn(async move {
            match reply.await {
                Ok(OutboundResult::Answered(_)) => {
                    journal.append(JournalRecord::Delivered { key });
                }
                _ => store.keep(&username, key, pdu),
            }
        });
    }
}
