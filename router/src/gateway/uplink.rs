//! What the operator answered to each submit_sm: the charge commits on success; an error
//! requeues the part or fails it (refund and report); a lost link moves failover
//! routes' parts to another connector.

use std::{sync::Arc, time::Duration};

use proto::charging::Carrier;
use smpp_core::{
    client::{SubmitOutcome, SubmitRequest, SubmitResult},
    rusmpp::{CommandStatus, Pdu, values::MessageState},
};
use tracing::{debug, warn};

use super::{Connector, Gateway, InFlight};
use crate::{
    journaling::{FinalOutcome, JournalRecord},
    model::{Origin, RD_RECEIPT_ALWAYS, RD_RECEIPT_MASK},
    queue::Queued,
    receipts,
    stats::bump,
};

/// How long the journal remembers that a part without a receipt request went out: long
/// enough for billing's write-behind to have stored its charge.
const SUBMITTED_RECORD_TTL: Duration = Duration::from_secs(60);

/// How often a part handed back by a lost link is queued again on the same connector
/// when no other can take it (the uplink's own resend limit).
const HANDED_BACK_RESENDS: u32 = 5;

/// `ESME_RTHROTTLED` for 0x58: the name Jasmin puts in its DLRs.
fn status_name(status: u32) -> String {
    format!("{:?}", CommandStatus::from(status))
        .to_uppercase()
        .replace("ESMER", "ESME_R")
}

impl Gateway {
    /// A part's validity ended in the queue: drop, refund, report EXPIRED.
    pub(super) fn expired(&self, tag: u64) {
        let Some(f) = self.take(tag) else { return };
        if let Some(c) = self.connectors.load().get(&f.connector) {
            bump(&c.counters.expired);
        }
        self.charging.refund(&f.charge_key, "EXPIRED");
        self.recent
            .record(&f.message.id, &f.message.uid, MessageState::Expired, 0);
        self.journal.append(JournalRecord::Outcome {
            id: &f.message.id,
            part: f.part,
            outcome: FinalOutcome::Expired,
        });
        self.observe_failure(&f, "EXPIRED", "000".to_owned());
        self.report_failure(&f, "EXPIRED", "ESME_RUNKNOWNERR", "000");
    }

    pub(super) fn on_submit_result(&self, cid: &Arc<str>, result: SubmitResult) {
        let Some(mut f) = self.take(result.tag) else {
            debug!(tag = result.tag, "result for an unknown part");
            return;
        };
        let Some(connector) = self.connectors.load().get(cid).cloned() else {
            return;
        };
        connector.counters.submit_answered(&result);
        let span = if f.trace.is_set() {
            tracing::debug_span!("uplink.submit_result", message_id = %f.message.id, connector = %cid)
        } else {
            tracing::Span::none()
        };
        f.trace.adopt(&span);
        let _span = span.entered();
        // Unanswered because the link dropped (handed back at once), not a timeout.
        let handed_back = result.latency.is_zero();
        match result.outcome {
            SubmitOutcome::Accepted { message_id } => {
                bump(&connector.counters.submitted);
                if connector.lcr_managed {
                    connector.health.submit_answer(true);
                }
                let carrier = Carrier {
                    connector: cid,
                    cost_per_part: self.carrier_cost(&f, cid),
                };
                self.charging
                    .commit_via(&f.charge_key, &message_id, carrier);
                self.accepted(&connector, f, &message_id);
            }
            SubmitOutcome::Rejected(status) => {
                let code = u32::from(status);
                if connector.lcr_managed && connector.health.submit_answer(false) {
                    self.breaker_opened(&connector, "consecutive submit errors");
                }
                if f.lcr.is_some() {
                    // LcrRoute: the next candidate, each at most once; none left: failed.
                    if self.lcr_next(&mut f) {
                        debug!(id = %f.message.id, from = %cid, to = %f.connector, status = code, "rejected: next LCR candidate");
                        self.requeue_now(f, result.tag);
                    } else {
                        bump(&connector.counters.failed);
                        self.fail(&f, code);
                    }
                } else if connector.config.requeue_statuses.contains(&code)
                    && f.requeues < connector.config.requeue_count
                {
                    bump(&connector.counters.requeued);
                    f.requeues += 1;
                    self.requeue_later(
                        f,
                        result.tag,
                        Duration::from_millis(connector.config.requeue_delay_ms),
                    );
                } else {
                    bump(&connector.counters.failed);
                    self.fail(&f, code);
                }
            }
            SubmitOutcome::TimedOut => {
                if !handed_back && connector.lcr_managed && connector.health.submit_answer(false) {
                    self.breaker_opened(&connector, "consecutive submit timeouts");
                }
                if f.lcr.is_some() && self.lcr_next(&mut f) {
                    // Sent and unanswered: the old operator may have it, so the client may
                    // get it twice (README, duplicates); never zero times.
                    debug!(id = %f.message.id, from = %cid, to = %f.connector, "unanswered: next LCR candidate");
                    self.requeue_now(f, result.tag);
                } else if (handed_back || (connector.lcr_managed && f.lcr.is_none()))
                    && f.requeues < HANDED_BACK_RESENDS
                {
                    // No other candidate (or a Jasmin route on an LCR connector): sent
                    // again here after the reconnect, as the uplink itself would.
                    f.requeues += 1;
                    self.requeue_now(f, result.tag);
                } else {
                    bump(&connector.counters.failed);
                    self.fail(&f, u32::from(CommandStatus::EsmeRunknownerr));
                }
            }
            SubmitOutcome::NotSent if f.lcr.is_some() => {
                if !self.lcr_next(&mut f) {
                    // Back to its own queue for when the uplink returns.
                    f.connector = cid.clone();
                }
                self.requeue_now(f, result.tag);
            }
            SubmitOutcome::NotSent => {
                // The uplink stopped with it: another connector of its failover route, or
                // back in its queue for when the uplink comes back.
                let target = self
                    .failover_target(&f)
                    .unwrap_or_else(|| f.connector.clone());
                f.connector = target;
                self.requeue_now(f, result.tag);
            }
        }
    }

    pub(super) fn failover_target(&self, f: &InFlight) -> Option<Arc<str>> {
        f.alternatives
            .as_ref()?
            .iter()
            .find(|cid| {
                **cid != f.connector
                    && self
                        .connectors
                        .load()
                        .get(*cid)
                        .is_some_and(|c| c.is_bound())
            })
            .cloned()
    }

    pub(super) fn rebuild(&self, f: &InFlight, tag: u64) -> Option<Queued> {
        match f
            .message
            .to_submit_sm(&f.content, f.esm_class, f.registered_delivery, &[])
        {
            Ok(pdu) => Some(Queued::new(SubmitRequest::new(tag, pdu), f.expires_at)),
            Err(error) => {
                warn!(%error, "cannot rebuild a requeued part");
                None
            }
        }
    }

    fn requeue_now(&self, f: InFlight, tag: u64) {
        let Some(item) = self.rebuild(&f, tag) else {
            self.fail(&f, u32::from(CommandStatus::EsmeRsyserr));
            return;
        };
        let Some(connector) = self.connectors.load().get(&f.connector).cloned() else {
            return;
        };
        self.track(tag, f);
        connector.queue.push_front(item);
    }

    fn requeue_later(&self, f: InFlight, tag: u64, delay: Duration) {
        let Some(item) = self.rebuild(&f, tag) else {
            self.fail(&f, u32::from(CommandStatus::EsmeRsyserr));
            return;
        };
        let Some(connector) = self.connectors.load().get(&f.connector).cloned() else {
            return;
        };
        self.track(tag, f);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            connector.queue.push_front(item);
        });
    }

    /// The uplink went down: queued parts of failover routes move to a bound connector,
    /// those of LcrRoutes to their next candidate.
    pub(super) fn link_down(&self, cid: &Arc<str>) {
        self.move_queue(cid, false);
    }

    fn accepted(&self, connector: &Arc<Connector>, f: InFlight, operator_id: &str) {
        self.recent
            .record(&f.message.id, &f.message.uid, MessageState::Enroute, 0);
        // Built only when something uses it: most parts want no receipt nor notice.
        let entry_cell = std::cell::OnceCell::new();
        let entry = || entry_cell.get_or_init(|| Arc::new(self.entry_for(&f)));
        if let Some(dlr) = &f.message.dlr
            && dlr.on_submit()
        {
            // One level-1 callback per message, when its last part is answered.
            let level1 = match &f.multipart {
                Some(state) => state.lock().responded("ESME_ROK"),
                None => (f.part + 1 == f.parts).then(|| "ESME_ROK".to_owned()),
            };
            if let Some(status) = level1 {
                self.http_dlr_level1(entry(), dlr, &status);
            }
        }
        if matches!(f.message.origin, Origin::Smpp { .. })
            && self.settings().smpp_receipt_on_submit_ok
            && f.message.registered_delivery & RD_RECEIPT_MASK == RD_RECEIPT_ALWAYS
            && let Some(pdu) = receipts::client_receipt(entry(), "ACCEPTD", "000")
        {
            // The submit_sm_resp path cannot hold the operator back; a crash here loses
            // only this optional ACCEPTD notice.
            let _ = self.push_to_user(&f.username, Pdu::DeliverSm(pdu));
        }
        if !self.wants_receipt(&f) {
            // Kept a short while rather than removed: if billing's write-behind has not
            // stored the commit when the process dies, the restart still knows this part
            // went out and charges it.
            self.journal.append(JournalRecord::Submitted {
                id: &f.message.id,
                part: f.part,
                operator_id,
                charge_key: &f.charge_key,
                ttl: SUBMITTED_RECORD_TTL,
            });
            return;
        }
        let entry = entry().clone();
        self.journal.append(JournalRecord::AwaitingReceipt {
            entry: &entry,
            operator_id,
            charge_key: &f.charge_key,
            ttl: connector.config.dlr_expiry(),
        });
        self.idmap.insert(
            &connector.cid,
            operator_id,
            entry,
            connector.config.dlr_expiry(),
        );
    }

    /// A final failure: refund, journal, and a failed receipt if one was asked for.
    pub(super) fn fail(&self, f: &InFlight, status: u32) {
        let name = status_name(status);
        self.charging.refund(&f.charge_key, &name);
        self.recent.record(
            &f.message.id,
            &f.message.uid,
            MessageState::Undeliverable,
            0,
        );
        self.journal.append(JournalRecord::Outcome {
            id: &f.message.id,
            part: f.part,
            outcome: FinalOutcome::Failed { status },
        });
        self.observe_failure(f, "UNDELIV", name.clone());
        self.report_failure(f, "UNDELIV", &name, "099");
    }
}
