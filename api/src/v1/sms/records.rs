//! The message records behind `GET /api/v1/sms`: receipts and MO followed into
//! `api_messages`, records written in batches off the request path, receipts that
//! overtake their record parked until it is written, and the idempotency purge.

use super::*;

/// Moves API messages to the state their receipts report (and hands them on to
/// webhooks and the WebSocket when those listen).
pub async fn follow_receipts(v1: V1, shutdown: CancellationToken) {
    let mut receipts = v1.gateway().receipts();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = receipts.recv() => event,
        };
        let event = match event {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                // Their messages still answer GET from the gateway's own state.
                warn!(missed = n, "REST API fell behind the receipts");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let (status, is_final) = stat_state(&event.stat);
        let error = (is_final && status != "delivered").then_some(event.err.as_str());
        v1.inner.hub.publish(
            &event.uid,
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
        );
        // Read before looking for the record: a send that ends after this had not
        // recorded its messages yet when it was read, one that ended before has.
        let sends_running = v1.inner.sending.load(Ordering::Acquire) > 0;
        match apply(&v1, &event).await {
            Ok(true) => {}
            // No record (yet): a receipt can overtake the send that is about to record
            // its message. While sends run, it waits in `early` for them.
            Ok(false) if sends_running => {
                park(&v1, event.clone());
                match v1.db().message_any(&event.id).await {
                    Ok(Some(_)) => replay_early(&v1, &event.id).await,
                    Ok(None) => {}
                    Err(error) => warn!(%error, id = %event.id, "message not read"),
                }
            }
            Ok(false) => {}
            Err(error) => warn!(%error, id = %event.id, "message state not recorded"),
        }
    }
}

/// MO messages for the API's users: `sms.mo` webhook events and the WebSocket. Not
/// journaled on this side: an MO whose event was not yet written when the process
/// stops reaches the user's receiver binds (journaled) but no webhook.
pub async fn follow_mo(v1: V1, shutdown: CancellationToken) {
    let mut mo = v1.gateway().mo_events();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = mo.recv() => event,
        };
        let event = match event {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                warn!(missed = n, "REST API fell behind the MO messages");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let data = json!({
            "message_id": event.id.as_ref(),
            "from": event.from,
            "to": event.to,
            "text": smpp_core::text::decode(&event.content, event.data_coding),
            "data_coding": event.data_coding,
            "connector": event.connector.as_ref(),
            "received_at": rfc3339(now_us()),
        });
        let mut ws = data.clone();
        ws["type"] = json!("mo");
        v1.inner.hub.publish(&event.uid, ws);
        if let Err(error) =
            super::super::webhooks::enqueue_data(&v1, &event.uid, "sms.mo", data, None).await
        {
            warn!(%error, id = %event.id, "MO webhook event not written");
        }
    }
}

/// Accepted messages not yet written to `api_messages`: the writer stores them in
/// batches, off the request's path. GET finds them here meanwhile.
#[derive(Default)]
pub(crate) struct Unwritten {
    batches: Vec<Vec<MessageRow>>,
    by_id: HashMap<String, MessageRow>,
}

/// Hands a send's records to the writer. Until they are written they count as a send
/// still running, so receipts that overtake them wait for them.
pub(super) fn record(v1: &V1, rows: Vec<MessageRow>) {
    if rows.is_empty() {
        return;
    }
    v1.inner.sending.fetch_add(1, Ordering::AcqRel);
    let mut unwritten = v1.inner.unwritten.lock();
    for row in &rows {
        unwritten.by_id.insert(row.id.clone(), row.clone());
    }
    unwritten.batches.push(rows);
    drop(unwritten);
    v1.inner.written.notify_one();
}

/// A record not yet written, if it is `uid`'s.
pub(crate) fn unwritten(v1: &V1, uid: &str, id: &str) -> Option<MessageRow> {
    v1.inner
        .unwritten
        .lock()
        .by_id
        .get(id)
        .filter(|r| r.uid == uid)
        .cloned()
}

/// Rows per transaction of the writer.
const WRITE_BATCH: usize = 2000;

/// Writes the records of accepted messages in batches (group commit), then applies
/// the receipts that came first. Writes what is left when `shutdown` is cancelled.
pub async fn write_records(v1: V1, shutdown: CancellationToken) {
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = v1.inner.written.notified() => false,
        };
        loop {
            let batches = std::mem::take(&mut v1.inner.unwritten.lock().batches);
            if batches.is_empty() {
                break;
            }
            let count = batches.len();
            let rows: Vec<MessageRow> = batches.into_iter().flatten().collect();
            for chunk in rows.chunks(WRITE_BATCH) {
                let mut tries = 0;
                while let Err(error) = v1.db().insert_messages(chunk).await {
                    tries += 1;
                    if tries >= 3 {
                        // The messages are on their way; only their record is missing.
                        warn!(%error, rows = chunk.len(), "accepted messages not recorded for the REST API");
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            {
                let mut unwritten = v1.inner.unwritten.lock();
                for row in &rows {
                    unwritten.by_id.remove(&row.id);
                }
            }
            for row in &rows {
                replay_early(&v1, &row.id).await;
            }
            v1.inner.sending.fetch_sub(count, Ordering::AcqRel);
        }
        if stopping {
            return;
        }
    }
}

/// Receipts that came before their message was recorded, by message id.
pub(crate) type Early = parking_lot::Mutex<HashMap<Arc<str>, (Instant, Vec<ReceiptEvent>)>>;

/// How long an early receipt waits for its message's record.
const EARLY_WAIT: Duration = Duration::from_secs(60);
/// Early receipts kept at most.
const EARLY_MAX: usize = 100_000;

fn park(v1: &V1, event: ReceiptEvent) {
    let mut early = v1.inner.early.lock();
    if early.len() >= EARLY_MAX {
        let now = Instant::now();
        early.retain(|_, (at, _)| now.duration_since(*at) < EARLY_WAIT);
        if early.len() >= EARLY_MAX {
            return;
        }
    }
    early
        .entry(event.id.clone())
        .or_insert_with(|| (Instant::now(), Vec::new()))
        .1
        .push(event);
}

/// Applies the receipts parked for `id` (whoever takes them applies them, once).
pub(crate) async fn replay_early(v1: &V1, id: &str) {
    let parked = v1.inner.early.lock().remove(id);
    for event in parked.map(|(_, events)| events).unwrap_or_default() {
        if let Err(error) = apply(v1, &event).await {
            warn!(%error, id = %event.id, "message state not recorded");
        }
    }
}

/// Records a receipt's news on its message and writes its webhook event; false when
/// the API has no record of the message.
async fn apply(v1: &V1, event: &ReceiptEvent) -> Result<bool, super::super::StoreError> {
    let (status, is_final) = stat_state(&event.stat);
    let error = (is_final && status != "delivered").then_some(event.err.as_str());
    let db = v1.db();
    let mut changed = false;
    for _ in 0..2 {
        changed = db
            .update_message(
                &event.id,
                status,
                error,
                &event.connector,
                now_us(),
                is_final,
            )
            .await?;
        if changed {
            break;
        }
        match db.message_any(&event.id).await? {
            // Not a message of this API (or not recorded yet).
            None => return Ok(false),
            // Recorded between the update and this read: update again.
            Some(row) if !is_final_state(&row.status) && (is_final || row.status == "queued") => {
                continue;
            }
            // Already final (another part's receipt decided).
            Some(_) => return Ok(true),
        }
    }
    if !changed {
        return Ok(true);
    }
    // A message's final state is reported once (its first final part decides).
    if !is_final {
        return Ok(true);
    }
    let Some(row) = db.message_any(&event.id).await? else {
        return Ok(true);
    };
    let kind = match status {
        "delivered" => "sms.delivered",
        "expired" => "sms.expired",
        _ => "sms.failed",
    };
    super::super::webhooks::enqueue(v1, kind, &row).await?;
    Ok(true)
}

/// Drops idempotency answers older than their time, every few minutes.
pub async fn purge_idempotency(v1: V1, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    let ttl = i64::try_from(v1.config().idempotency_ttl.as_micros()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        v1.inner.hub.purge();
        let now = Instant::now();
        v1.inner
            .early
            .lock()
            .retain(|_, (at, _)| now.duration_since(*at) < EARLY_WAIT);
        if let Err(error) = v1.db().idem_purge(now_us().saturating_sub(ttl)).await {
            warn!(%error, "idempotency purge failed");
        }
    }
}
