//! Delivery receipts: a part the operator accepted waits for its receipt under the
//! operator's id; the receipt, once matched, is reported to the client (deliver_sm or
//! an HTTP DLR), whole for a multipart message when so configured. Failures found here
//! (rejected, expired) are reported the same way.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hyper::Method;
use parking_lot::Mutex;
use smpp_core::rusmpp::{CommandStatus, Pdu};
use tracing::{debug, warn};

use super::{Gateway, InFlight};
use crate::{
    callbacks::{Callback, DLR_AGENT},
    idmap::{IdForm, Lookup, normalize},
    journaling::{Durable, JournalRecord},
    model::{DlrMethod, DlrRequest, Origin, RD_RECEIPT_MASK},
    receipts::{self, DlrEntry, Receipt, ReceiptEvent},
    stats::bump,
};

impl Gateway {
    pub(super) fn wants_receipt(&self, f: &InFlight) -> bool {
        match &f.message.origin {
            Origin::Smpp { .. } => f.message.registered_delivery & RD_RECEIPT_MASK != 0,
            // A callback URL, or a receipt asked for explicitly (REST v1 follows its
            // messages through `Gateway::receipts` rather than a callback).
            Origin::Http => {
                f.message.registered_delivery & RD_RECEIPT_MASK != 0
                    || f.message
                        .dlr
                        .as_ref()
                        .is_some_and(|d| d.on_receipt() && !d.url.is_empty())
            }
        }
    }

    pub(super) fn entry_for(&self, f: &InFlight) -> DlrEntry {
        DlrEntry {
            id: f.message.id.clone(),
            uid: f.message.uid.clone(),
            username: f.username.clone(),
            origin: f.message.origin.clone(),
            source: f.message.source.clone(),
            destination: f.message.destination.clone(),
            registered_delivery: f.message.registered_delivery,
            dlr: f.message.dlr.clone(),
            connector: f.connector.clone(),
            submitted_at: f.message.received_at,
            part: f.part,
            multipart: f.multipart.clone(),
            trace: f.trace.clone(),
        }
    }

    pub(super) fn report_failure(&self, f: &InFlight, stat: &str, status_name: &str, err: &str) {
        let entry = self.entry_for(f);
        let r = Receipt {
            id: String::new(),
            stat: stat.to_owned(),
            err: err.to_owned(),
            sub: "ND".into(),
            dlvrd: "ND".into(),
            submit_date: "ND".into(),
            done_date: "ND".into(),
            text: String::new(),
        };
        // A multipart message is reported once: the failed part completes its share of
        // the whole, like a receipt would.
        let whole_receipt = || {
            f.multipart
                .as_ref()
                .map(|state| state.lock().record(f.part, stat))
        };
        if let Some(dlr) = &f.message.dlr {
            if dlr.on_submit() {
                let level1 = match &f.multipart {
                    Some(state) => state.lock().responded(status_name),
                    None => Some(status_name.to_owned()),
                };
                if let Some(status) = level1 {
                    self.http_dlr_level1(&entry, dlr, &status);
                }
            }
            if dlr.on_receipt() {
                match whole_receipt() {
                    Some(Some(whole)) => {
                        let _ = self.report(&entry, &r, &whole);
                    }
                    Some(None) => {}
                    // A single message at level 3 gets the level-1 error only, as in Jasmin.
                    None if dlr.level == DlrRequest::RECEIPT => {
                        let _ = self.report(&entry, &r, stat);
                    }
                    None => {}
                }
            }
            return;
        }
        match whole_receipt() {
            Some(Some(whole)) => {
                let _ = self.report(&entry, &r, &whole);
            }
            Some(None) => {}
            None => {
                let _ = self.report(&entry, &r, stat);
            }
        }
    }

    /// A failure on the submit path, heard by the observers (REST v1 state, webhooks,
    /// WebSocket) like a receipt, for the HTTP-sent messages they keep records of.
    pub(super) fn observe_failure(&self, f: &InFlight, stat: &str, err: String) {
        if !matches!(f.message.origin, Origin::Http) {
            return;
        }
        self.observers.failure(ReceiptEvent {
            id: f.message.id.clone(),
            uid: f.message.uid.clone(),
            connector: f.connector.clone(),
            operator_id: String::new(),
            stat: stat.to_owned(),
            err,
            part: f.part,
        });
    }

    pub(super) fn http_dlr_level1(&self, entry: &DlrEntry, dlr: &DlrRequest, status: &str) {
        if dlr.url.is_empty() {
            return;
        }
        let _ = self.throw(Callback {
            url: dlr.url.clone(),
            method: if dlr.method == DlrMethod::Get {
                Method::GET
            } else {
                Method::POST
            },
            params: vec![
                ("id", entry.id.as_bytes().to_vec()),
                ("message_status", status.as_bytes().to_vec()),
                ("level", b"1".to_vec()),
                ("connector", entry.connector.as_bytes().to_vec()),
            ],
            user_agent: DLR_AGENT,
        });
    }

    /// A matched receipt: track multipart, then deliver to the client. Also returns the
    /// event for the observers, which the operator's answer waits for.
    fn deliver_receipt(
        &self,
        cid: &Arc<str>,
        entry: &Arc<DlrEntry>,
        r: &Receipt,
    ) -> (Durable, ReceiptEvent) {
        let stat = receipts::is_final(&r.stat)
            .then_some(())
            .map(|_| r.stat.clone());
        let is_final = stat.is_some();
        // Only for a traced message (see `trace`): an unsampled one makes no span.
        let span = if entry.trace.is_set() {
            tracing::debug_span!("receipt", message_id = %entry.id, stat = %r.stat)
        } else {
            tracing::Span::none()
        };
        entry.trace.adopt(&span);
        let _span = span.entered();
        if let Some(c) = self.connectors.load().get(cid) {
            c.counters.receipt(&r.stat, entry.submitted_at, is_final);
        }
        if is_final {
            self.health_receipt(cid, &r.stat, entry.submitted_at);
        }
        bump(&self.user_counters(&entry.uid).receipts);
        if is_final {
            self.idmap.remove(cid, &r.id, self.id_form(cid));
        }
        self.recent.record(
            &entry.id,
            &entry.uid,
            super::query::state_of_stat(&r.stat),
            r.err.parse().unwrap_or(0),
        );
        let event = ReceiptEvent {
            id: entry.id.clone(),
            uid: entry.uid.clone(),
            connector: cid.clone(),
            operator_id: normalize(&r.id),
            stat: r.stat.clone(),
            err: r.err.clone(),
            part: entry.part,
        };
        let reported = match (&entry.multipart, stat) {
            (Some(state), Some(stat)) => state.lock().record(entry.part, &stat),
            // Intermediate receipts of a multipart message are not reported in whole mode.
            (Some(_), None) => None,
            (None, _) => Some(r.stat.clone()),
        };
        let durable = match reported {
            Some(reported) => self.report(entry, r, &reported),
            None => Durable::Done,
        };
        if !is_final {
            return (durable, event);
        }
        let durable = match durable {
            // Relayed: the mapping may leave the journal only once the client has the
            // receipt. Until then a crash must leave it, so that the operator's resend
            // still finds its message.
            Durable::Deferred(relayed) => {
                let journal = self.journal.clone();
                let (id, part) = (entry.id.clone(), entry.part);
                Durable::Deferred(Box::pin(async move {
                    relayed.await?;
                    journal.append(JournalRecord::ReceiptDone { id: &id, part });
                    Ok(())
                }))
            }
            // Queued after the client's copy, so a crash between the two leaves both.
            durable => {
                self.journal.append(JournalRecord::ReceiptDone {
                    id: &entry.id,
                    part: entry.part,
                });
                durable
            }
        };
        (durable, event)
    }

    fn report(&self, entry: &DlrEntry, r: &Receipt, stat: &str) -> Durable {
        match &entry.origin {
            Origin::Smpp { .. } => {
                if receipts::wanted_by_smpp(entry.registered_delivery, stat)
                    && let Some(pdu) = receipts::client_receipt(entry, stat, &r.err)
                {
                    return self.relay_to_user(&entry.username, Pdu::DeliverSm(pdu));
                }
            }
            Origin::Http => {
                let Some(dlr) = &entry.dlr else {
                    return Durable::Done;
                };
                if !dlr.on_receipt() || dlr.url.is_empty() {
                    return Durable::Done;
                }
                let p = |s: &str| s.as_bytes().to_vec();
                return self.throw(Callback {
                    url: dlr.url.clone(),
                    method: if dlr.method == DlrMethod::Get {
                        Method::GET
                    } else {
                        Method::POST
                    },
                    params: vec![
                        ("id", p(&entry.id)),
                        ("message_status", p(stat)),
                        ("level", p("2")),
                        ("connector", p(&entry.connector)),
                        ("id_smsc", p(&normalize(&r.id))),
                        ("sub", p(&r.sub)),
                        ("dlvrd", p(&r.dlvrd)),
                        ("subdate", p(&r.submit_date)),
                        ("donedate", p(&r.done_date)),
                        ("err", p(&r.err)),
                        ("text", p(&r.text)),
                    ],
                    user_agent: DLR_AGENT,
                });
            }
        }
        Durable::Done
    }

    fn id_form(&self, cid: &str) -> IdForm {
        self.connectors
            .load()
            .get(cid)
            .map_or(IdForm::default(), |c| c.config.dlr_id_form)
    }

    /// A receipt from the operator: matched to its message and reported; the operator
    /// hears ESME_ROK only once the client's copy is durable.
    pub(super) async fn on_receipt(&self, cid: &Arc<str>, r: Receipt) -> CommandStatus {
        let form = self.id_form(cid);
        // Its submit_sm_resp may still be on its way (or, just after a restart, the
        // replay still running): the operator is answered only once the receipt is
        // matched and written, or the hold expires. An ambiguous match waits too: the
        // exact id may still arrive.
        let hold = Duration::from_millis(self.settings().early_receipt_hold_ms);
        let mut deadline = Instant::now() + hold;
        let ambiguous = loop {
            match self.idmap.get(cid, &r.id, form) {
                Lookup::Found(entry) => {
                    let (durable, event) = self.deliver_receipt(cid, &entry, &r);
                    // Only HTTP-sent messages have records on the API's side; an SMPP
                    // client's receipt must not wait for the API's database.
                    let observed = async {
                        match entry.origin {
                            Origin::Http => self.observers.receipt(event).await,
                            Origin::Smpp { .. } => Ok(()),
                        }
                    };
                    let (journaled, observed) = tokio::join!(durable.wait(), observed);
                    if let Err(error) = journaled {
                        warn!(%error, "receipt not journaled: operator asked to resend");
                        return CommandStatus::EsmeRsyserr;
                    }
                    if observed.is_err() {
                        // The observer stopped (shutdown): the client has its copy, and
                        // the mapping is gone, so a resend would not be matched again.
                        warn!(message_id = %entry.id, "receipt not stored by an observer");
                    }
                    return CommandStatus::EsmeRok;
                }
                _ if !self.replayed.is_cancelled() => {
                    self.replayed.cancelled().await;
                    deadline = Instant::now() + hold;
                }
                Lookup::Ambiguous(n) if Instant::now() >= deadline => break Some(n),
                Lookup::Missing if Instant::now() >= deadline => break None,
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        };
        if let Some(c) = self.connectors.load().get(cid) {
            bump(&c.counters.receipts_unmatched);
        }
        match ambiguous {
            Some(matches) => warn_ambiguous(cid, &r.id, matches),
            None => {
                warn!(connector = %cid, operator_id = %r.id, "receipt for an unknown message id dropped")
            }
        }
        CommandStatus::EsmeRok
    }
}

/// A receipt id that only matches hex/decimal aliases of several messages is dropped
/// rather than given to a client it may not belong to. An operator with short ids can
/// cause one per receipt, so the warning comes at most every 10 s, the rest at debug.
fn warn_ambiguous(cid: &str, operator_id: &str, matches: usize) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let now = Instant::now();
    let loud = {
        let mut last = LAST.lock();
        let due = last.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(10));
        if due {
            *last = Some(now);
        }
        due
    };
    if loud {
        warn!(connector = %cid, %operator_id, matches,
            "receipt id matches several messages only as hex/decimal aliases: dropped \
             (set the connector's dlr_id_form)");
    } else {
        debug!(connector = %cid, %operator_id, matches, "ambiguous receipt id dropped");
    }
}
