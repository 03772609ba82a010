//! Getting receipts and MO to clients. SMPP: deliver_sm to one of the user's receiver
//! binds, journaled and kept while the user is away, out of the journal once answered;
//! a bound client's receipt is relayed (the operator waits for the client's answer).
//! HTTP: callbacks journaled until acknowledged or given up.

use std::{sync::Arc, time::Duration};

use smpp_core::{
    rusmpp::{CommandStatus, Pdu},
    server::{DeliverError, Outbound, OutboundResult, SessionRegistry},
};
use tracing::{debug, warn};

use super::Gateway;
use crate::{
    callbacks::Callback,
    journaling::{Durable, Journal, JournalRecord},
    receipts::PendingStore,
};

/// How long after a client's error answer its deliver_sm goes out again (while it stays
/// bound; a new bind gets it at once).
const REDELIVERY_DELAY: Duration = Duration::from_secs(1);

/// deliver_sm_resp statuses that mean "never send this again": the client rejects the
/// PDU itself (its addresses or coding), or says so (SMPP 3.4 §5.1.3: ESME_RX_P_APPN
/// 0x65 "should NOT be retried", ESME_RX_R_APPN 0x66 "rejected and not retried"), so a
/// retry would only be refused again. Any other error (ESME_RX_T_APPN 0x64 "retried at
/// some future point", ESME_RSYSERR…) is taken as temporary and the PDU is kept.
const PERMANENT_REFUSALS: &[CommandStatus] = &[
    CommandStatus::EsmeRinvdstadr,
    CommandStatus::EsmeRinvsrcadr,
    CommandStatus::EsmeRinvesmclass,
    CommandStatus::EsmeRinvdcs,
    CommandStatus::EsmeRxPAppn,
    CommandStatus::EsmeRxRAppn,
];

/// What to do with a deliver_sm after the client's answer (or silence).
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// ESME_ROK: out of the journal.
    Delivered,
    /// A permanent refusal: out of the journal, with a warning.
    Refused(CommandStatus),
    /// An error the client may get over, no answer, or the bind lost: kept.
    Retry,
}

fn verdict(result: Option<OutboundResult>) -> Verdict {
    match result {
        Some(OutboundResult::Answered(CommandStatus::EsmeRok)) => Verdict::Delivered,
        Some(OutboundResult::Answered(status)) if PERMANENT_REFUSALS.contains(&status) => {
            Verdict::Refused(status)
        }
        _ => Verdict::Retry,
    }
}

/// What a spawned wait for a client's answer needs (the gateway itself is not `Arc`).
#[derive(Clone)]
struct Answers {
    journal: Arc<dyn Journal>,
    store: Arc<PendingStore>,
    registry: Arc<SessionRegistry>,
}

impl Answers {
    /// Waits for the client's answer: ESME_ROK or a permanent refusal takes the PDU out of
    /// the journal; anything else keeps it (the journal still has it) and tries the
    /// user's binds again after [`REDELIVERY_DELAY`].
    fn watch(
        self,
        username: Arc<str>,
        key: u128,
        pdu: Pdu,
        reply: tokio::sync::oneshot::Receiver<OutboundResult>,
    ) {
        tokio::spawn(async move {
            match verdict(reply.await.ok()) {
                Verdict::Delivered => {
                    self.journal.append(JournalRecord::Delivered { key });
                }
                Verdict::Refused(status) => {
                    warn!(user = %username, ?status, "client refused a deliver_sm for good: dropped");
                    self.journal.append(JournalRecord::Delivered { key });
                }
                Verdict::Retry => {
                    self.store.keep(&username, key, pdu);
                    self.redeliver_later(username);
                }
            }
        });
    }

    /// After an error answer the client is usually still bound: nothing else would flush
    /// its kept PDUs until it binds again.
    fn redeliver_later(self, username: Arc<str>) {
        tokio::spawn(async move {
            tokio::time::sleep(REDELIVERY_DELAY).await;
            for sent in self.store.flush(&username, &self.registry) {
                debug!(user = %username, "deliver_sm sent again");
                self.clone()
                    .watch(username.clone(), sent.key, sent.pdu, sent.reply);
            }
        });
    }
}

impl Gateway {
    /// Journals an HTTP callback, then makes it (with Jasmin's retries); the record
    /// leaves the journal when it is acknowledged or given up. The returned `Durable`
    /// says when it is safe to answer the operator for it.
    pub(super) fn throw(&self, callback: Callback) -> Durable {
        let key = uuid::Uuid::new_v4().as_u128();
        let durable = self.journal.append(JournalRecord::PendingCallback {
            key,
            callback: &callback,
            ttl: Duration::from_secs(self.settings().pending_expiry_secs),
        });
        self.spawn_callback(key, callback);
        durable
    }

    pub(super) fn spawn_callback(&self, key: u128, callback: Callback) {
        let thrower = self.thrower();
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
            ttl: Duration::from_secs(self.settings().pending_expiry_secs),
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
        let wait = Duration::from_millis(self.settings().receipt_relay_wait_ms);
        if wait.is_zero() || self.store.len(username) > 0 {
            return self.push_to_user(username, pdu);
        }
        let (outbound, reply) = Outbound::with_reply(pdu.clone());
        if self.registry.deliver(username, outbound).is_err() {
            return self.push_to_user(username, pdu);
        }
        let answers = self.answers();
        let username = username.clone();
        let ttl = Duration::from_secs(self.settings().pending_expiry_secs);
        Durable::Deferred(Box::pin(async move {
            let answer = tokio::time::timeout(wait, reply)
                .await
                .ok()
                .and_then(Result::ok);
            let error_answer = matches!(answer, Some(OutboundResult::Answered(_)));
            match verdict(answer) {
                Verdict::Delivered => return Ok(()),
                Verdict::Refused(status) => {
                    warn!(user = %username, ?status, "client refused a receipt for good: dropped");
                    return Ok(());
                }
                Verdict::Retry => {}
            }
            // Unanswered (or the bind went away): from here on it is ours to keep. A late
            // answer to the first copy makes the redelivery a duplicate, never a loss.
            let key = uuid::Uuid::new_v4().as_u128();
            let durable = answers.journal.append(JournalRecord::PendingDelivery {
                key,
                username: &username,
                pdu: &pdu,
                ttl,
            });
            answers.store.keep(&username, key, pdu);
            if error_answer {
                // Still bound (it answered): nothing else would send it again soon.
                answers.clone().redeliver_later(username.clone());
            }
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

    fn answers(&self) -> Answers {
        Answers {
            journal: self.journal.clone(),
            store: self.store.clone(),
            registry: self.registry.clone(),
        }
    }

    /// The client's answer decides whether the PDU leaves the journal ([`Answers::watch`]).
    fn await_answer(
        &self,
        username: Arc<str>,
        key: u128,
        pdu: Pdu,
        reply: tokio::sync::oneshot::Receiver<OutboundResult>,
    ) {
        self.answers().watch(username, key, pdu, reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_sorted() {
        let answered = |s| Some(OutboundResult::Answered(s));
        assert_eq!(
            verdict(answered(CommandStatus::EsmeRok)),
            Verdict::Delivered
        );
        assert_eq!(
            verdict(answered(CommandStatus::EsmeRxTAppn)),
            Verdict::Retry
        );
        assert_eq!(
            verdict(answered(CommandStatus::EsmeRsyserr)),
            Verdict::Retry
        );
        assert_eq!(
            verdict(answered(CommandStatus::EsmeRxRAppn)),
            Verdict::Refused(CommandStatus::EsmeRxRAppn)
        );
        assert_eq!(verdict(Some(OutboundResult::Timeout)), Verdict::Retry);
        assert_eq!(verdict(None), Verdict::Retry);
    }
}
