//! Receipts and MO followed into the API, from the gateway's observer queues
//! ([`router::Gateway::observe`]): every event, in batches.
//!
//! A batch of receipts is one transaction (message states and their webhook events
//! together, see `apply`); a batch of MO is one transaction of `sms.mo` events. Only
//! then are the batch's events acknowledged, and only then does the gateway answer
//! the operator: what the operator was told we have, we have, across a kill -9.
//!
//! When the database is slow, batches grow and the operator's receipts and MO are
//! answered at the database's pace (the uplink's window of deliver_sm pushes back on
//! the operator). When it fails, the batch is tried again with backoff, its events
//! held meanwhile: receipts and MO wait at the operator, who resends what it got no
//! answer for, rather than being dropped here.

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use router::{
    Observed,
    receipts::{MoEvent, ReceiptEvent},
};
use tokio::sync::mpsc;

use super::{
    super::time::Cadence,
    super::{
        StoreError,
        webhooks::{self, Webhook},
    },
    apply::{Applied, Change},
    *,
};

/// Events per batch (and per transaction).
const BATCH: usize = 1000;
/// The least time between the starts of two receipt batches: the operator's receipts
/// are answered up to this much later, and under load a batch takes more of them.
const RECEIPTS_GAP: Duration = Duration::from_millis(5);
/// The longest pause between two tries of a batch the database refused.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Runs `attempt` until it succeeds; None once `shutdown` is cancelled while it fails.
async fn until_stored<T, F, Fut>(
    shutdown: &CancellationToken,
    what: &str,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut pause = Duration::from_millis(50);
    loop {
        match attempt().await {
            Ok(done) => return Some(done),
            Err(error) => warn!(%error, what, "not stored yet: held and tried again"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_BACKOFF);
    }
}

/// Moves API messages to the state their receipts report, writes their webhook events,
/// and hands them to the WebSocket.
pub async fn follow_receipts(
    v1: V1,
    mut receipts: mpsc::Receiver<Observed<ReceiptEvent>>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut cadence = Cadence::new(RECEIPTS_GAP);
    loop {
        cadence.next_turn().await;
        let got = tokio::select! {
            _ = shutdown.cancelled() => return,
            got = receipts.recv_many(&mut batch, BATCH) => got,
        };
        if got == 0 {
            return;
        }
        let events: Vec<ReceiptEvent> = batch.iter().map(|o| o.event.clone()).collect();
        // Records not written yet move in memory (most of them under load: the
        // operator's receipt often comes before the send is answered).
        let now = now_us();
        let moved = move_unwritten(&v1, &events, &reduce(&events, now));
        // Records that took their receipt in memory: the operator is answered once
        // they are in the database with it.
        until_written(&v1, &moved.held).await;
        let stored = until_stored(&shutdown, "receipts", || async {
            let applied = apply_receipts(&v1, &moved.rest).await?;
            let events = final_events(&v1, &moved.finals, now).await?;
            v1.db().insert_events(&events, now).await?;
            if !events.is_empty() {
                webhooks::wake(&v1);
            }
            Ok(applied)
        })
        .await;
        if stored.is_none() {
            // Stopping: the operator was not answered for these and sends them again.
            return;
        }
        v1.inner
            .hub
            .publish(events.iter().map(receipt_frame).collect());
        for observed in batch.drain(..) {
            observed.done();
        }
    }
}

/// The webhook events of messages that reached a final state in `rows`.
async fn final_events(
    v1: &V1,
    rows: &[MessageRow],
    now: i64,
) -> Result<Vec<webhooks::EventRow>, StoreError> {
    let mut events = Vec::new();
    for row in rows {
        let hooks = webhooks::hooks_of(v1, &row.uid).await?;
        events.extend(final_event_rows(&hooks, row, now));
    }
    Ok(events)
}

fn final_event_rows(hooks: &[Webhook], row: &MessageRow, now: i64) -> Vec<webhooks::EventRow> {
    let kind = match row.status.as_str() {
        "delivered" => "sms.delivered",
        "expired" => "sms.expired",
        _ => "sms.failed",
    };
    let data = webhooks::message_data(row);
    webhooks::event_rows(hooks, &row.uid, kind, data, row.webhook_url.as_deref(), now)
}

/// Applies `events` to the records in the database in one transaction; the batch's
/// outcome.
pub(crate) async fn apply_receipts(
    v1: &V1,
    events: &[ReceiptEvent],
) -> Result<Applied, StoreError> {
    if events.is_empty() {
        return Ok(Applied::default());
    }
    let now = now_us();
    let changes = reduce(events, now);
    let mut hooks: HashMap<&str, Arc<Vec<Webhook>>> = HashMap::new();
    for event in events {
        if !hooks.contains_key(&*event.uid) {
            hooks.insert(&event.uid, webhooks::hooks_of(v1, &event.uid).await?);
        }
    }
    let applied = v1
        .db()
        .apply_changes(
            &changes,
            |row| {
                hooks
                    .get(row.uid.as_str())
                    .map(|hooks| final_event_rows(hooks, row, now))
                    .unwrap_or_default()
            },
            now,
        )
        .await?;
    if applied.events > 0 {
        webhooks::wake(v1);
    }
    Ok(applied)
}

/// One change per message: its first final receipt in the batch decides (a message's
/// final state is reported once), else its first receipt.
fn reduce(events: &[ReceiptEvent], at: i64) -> Vec<Change> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<Change> = Vec::with_capacity(events.len());
    for event in events {
        let (status, is_final) = stat_state(&event.stat);
        let change = Change {
            id: event.id.to_string(),
            status,
            error_code: (is_final && status != "delivered").then(|| event.err.clone()),
            connector: event.connector.to_string(),
            at,
            is_final,
        };
        match index.get(&*event.id) {
            Some(&i) if is_final && !out[i].is_final => out[i] = change,
            Some(_) => {}
            None => {
                index.insert(&event.id, out.len());
                out.push(change);
            }
        }
    }
    out
}

/// A receipt as the WebSocket shows it, for its user.
fn receipt_frame(event: &ReceiptEvent) -> (Arc<str>, Value) {
    let (status, is_final) = stat_state(&event.stat);
    let error = (is_final && status != "delivered").then_some(event.err.as_str());
    (
        event.uid.clone(),
        json!({
            "type": "receipt",
            "message_id": event.id.as_ref(),
            "status": status,
            "final": is_final,
            "stat": event.stat,
            "error_code": error,
            "connector": event.connector.as_ref(),
            "operator_message_id": event.operator_id,
            "part": event.part + 1,
            "at": rfc3339(now_us()),
        }),
    )
}

/// MO messages for the API's users: `sms.mo` webhook events (stored before the
/// operator is answered) and the WebSocket.
pub async fn follow_mo(
    v1: V1,
    mut mo: mpsc::Receiver<Observed<MoEvent>>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let got = tokio::select! {
            _ = shutdown.cancelled() => return,
            got = mo.recv_many(&mut batch, BATCH) => got,
        };
        if got == 0 {
            return;
        }
        let events: Vec<MoEvent> = batch.iter().map(|o| o.event.clone()).collect();
        let now = now_us();
        let data: Vec<Value> = events.iter().map(|e| mo_data(e, now)).collect();
        let stored = until_stored(&shutdown, "MO webhook events", || async {
            let mut rows = Vec::new();
            for (event, data) in events.iter().zip(&data) {
                let hooks = webhooks::hooks_of(&v1, &event.uid).await?;
                rows.extend(webhooks::event_rows(
                    &hooks,
                    &event.uid,
                    "sms.mo",
                    data.clone(),
                    None,
                    now,
                ));
            }
            v1.db().insert_events(&rows, now).await?;
            Ok(rows.len())
        })
        .await;
        let Some(written) = stored else {
            // Stopping: the operator hears an error for these and sends them again.
            return;
        };
        if written > 0 {
            webhooks::wake(&v1);
        }
        let frames = events
            .iter()
            .zip(data)
            .map(|(event, mut ws)| {
                ws["type"] = json!("mo");
                (event.uid.clone(), ws)
            })
            .collect();
        v1.inner.hub.publish(frames);
        for observed in batch.drain(..) {
            observed.done();
        }
    }
}

fn mo_data(event: &MoEvent, now: i64) -> Value {
    json!({
        "message_id": event.id.as_ref(),
        "from": event.from,
        "to": event.to,
        "text": smpp_core::text::decode(&event.content, event.data_coding),
        "data_coding": event.data_coding,
        "connector": event.connector.as_ref(),
        "received_at": rfc3339(now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(id: &str, stat: &str, part: usize) -> ReceiptEvent {
        ReceiptEvent {
            id: Arc::from(id),
            uid: Arc::from("u"),
            connector: Arc::from("c"),
            operator_id: String::new(),
            stat: stat.into(),
            err: "001".into(),
            part,
        }
    }

    #[test]
    fn the_first_final_receipt_of_a_message_decides() {
        let changes = reduce(
            &[
                receipt("a", "ENROUTE", 0),
                receipt("b", "DELIVRD", 0),
                receipt("a", "UNDELIV", 1),
                receipt("a", "DELIVRD", 0),
                receipt("b", "ENROUTE", 1),
            ],
            7,
        );
        assert_eq!(changes.len(), 2);
        assert_eq!((changes[0].id.as_str(), changes[0].status), ("a", "failed"));
        assert_eq!(changes[0].error_code.as_deref(), Some("001"));
        assert!(changes[0].is_final);
        assert_eq!(
            (changes[1].id.as_str(), changes[1].status),
            ("b", "delivered")
        );
        assert_eq!(changes[1].error_code, None);
    }
}
