//! The message records behind `GET /api/v1/sms`: records written in batches (group
//! commit) before the send is answered, receipts that overtake their record parked
//! until it is written, and the idempotency purge. Receipts and MO themselves are
//! followed in `follow`.

use tokio::sync::oneshot;

use super::*;

/// Accepted messages not yet written to `api_messages`: the writer stores them in
/// batches, one transaction for the records of every send waiting at that moment.
/// GET finds them here meanwhile.
#[derive(Default)]
pub(crate) struct Unwritten {
    batches: Vec<Vec<MessageRow>>,
    /// One per batch: told once the batch is written (true) or given up on (false).
    acks: Vec<oneshot::Sender<bool>>,
    by_id: HashMap<String, MessageRow>,
}

/// How long a send waits for its records to be written before it answers anyway (the
/// writer stopped, or the store hangs): the messages are on their way regardless.
const RECORD_WAIT: Duration = Duration::from_secs(10);

/// Hands a send's records to the writer and waits until they are written, so that a
/// 202 answer implies the record survives a crash. Sends running at once share the
/// writer's next transaction. Until written the records count as a send still
/// running, so receipts that overtake them wait for them.
pub(super) async fn record(v1: &V1, rows: Vec<MessageRow>) {
    if rows.is_empty() {
        return;
    }
    let (ack, written) = oneshot::channel();
    v1.inner.sending.fetch_add(1, Ordering::AcqRel);
    {
        let mut unwritten = v1.inner.unwritten.lock();
        for row in &rows {
            unwritten.by_id.insert(row.id.clone(), row.clone());
        }
        unwritten.batches.push(rows);
        unwritten.acks.push(ack);
    }
    v1.inner.written.notify_one();
    match tokio::time::timeout(RECORD_WAIT, written).await {
        Ok(Ok(true)) => {}
        // The writer warned already; the messages themselves are journaled and sent.
        Ok(Ok(false)) => {}
        Ok(Err(_)) | Err(_) => {
            warn!("the REST API's message records were not written in time; answering anyway");
        }
    }
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

/// Writes the records of accepted messages in batches (group commit), tells their
/// sends, then applies the receipts that came first. Writes what is left when `shutdown` is cancelled.
pub async fn write_records(v1: V1, shutdown: CancellationToken) {
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = v1.inner.written.notified() => false,
        };
        loop {
            let (batches, acks) = {
                let mut unwritten = v1.inner.unwritten.lock();
                (
                    std::mem::take(&mut unwritten.batches),
                    std::mem::take(&mut unwritten.acks),
                )
            };
            if batches.is_empty() {
                break;
            }
            let count = batches.len();
            let rows: Vec<MessageRow> = batches.into_iter().flatten().collect();
            let mut all_written = true;
            for chunk in rows.chunks(WRITE_BATCH) {
                let mut tries = 0;
                while let Err(error) = v1.db().insert_messages(chunk).await {
                    tries += 1;
                    if tries >= 3 {
                        // The messages are on their way; only their record is missing.
                        warn!(%error, rows = chunk.len(), "accepted messages not recorded for the REST API");
                        all_written = false;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            // The sends may answer now (a send that gave up waiting is gone: fine).
            for ack in acks {
                let _ = ack.send(all_written);
            }
            {
                let mut unwritten = v1.inner.unwritten.lock();
                for row in &rows {
                    unwritten.by_id.remove(&row.id);
                }
            }
            let ids: Vec<String> = rows.into_iter().map(|r| r.id).collect();
            replay_early(&v1, &ids).await;
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

pub(super) fn park(v1: &V1, event: ReceiptEvent) {
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

/// Applies the receipts parked for `ids` (whoever takes them applies them, once), in
/// one batch. They were acknowledged when parked: like the record they wait for, they
/// live in memory only until it is written.
pub(crate) async fn replay_early(v1: &V1, ids: &[String]) {
    let parked: Vec<ReceiptEvent> = {
        let mut early = v1.inner.early.lock();
        if early.is_empty() {
            return;
        }
        ids.iter()
            .filter_map(|id| early.remove(id.as_str()))
            .flat_map(|(_, events)| events)
            .collect()
    };
    if parked.is_empty() {
        return;
    }
    let mut tries = 0;
    while let Err(error) = super::follow::apply_receipts(v1, &parked).await {
        tries += 1;
        if tries >= 3 {
            warn!(%error, receipts = parked.len(), "early receipts not recorded");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
