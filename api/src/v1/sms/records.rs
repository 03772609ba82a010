//! The message records behind `GET /api/v1/sms`: records staged before their message is
//! submitted and written in batches (group commit), receipts applied to them in memory
//! until then, and the idempotency purge. Receipts and MO themselves are followed in
//! `follow`.
//!
//! A record is durable before its send is answered in one of two ways:
//! - as its message's annex (`Message::annex`): the journal writes it with the message,
//!   in the same group commit, and keeps it until the record is in the database; after
//!   a crash the replay gives it back (`restage`). The send does not wait for the
//!   database.
//! - written to the database before the answer: sends with an `Idempotency-Key` (their
//!   answer is stored in the same transaction), and any send while the writer is far
//!   behind (`BEHIND_MAX`).

use tokio::sync::oneshot;

use super::{apply::Change, *};

/// Messages of the API not yet written to `api_messages`. A record is staged before its
/// message is submitted, so a receipt can never overtake it: until the writer takes it,
/// receipts move the record in memory (and it is written in its latest state); while
/// the writer writes it, they wait in `early` and are applied once it is written.
/// GET finds staged records here meanwhile.
#[derive(Default)]
pub(crate) struct Unwritten {
    /// Ids of accepted messages to write, a batch per send.
    batches: Vec<Vec<String>>,
    /// One per batch: told once the batch is written (true) or given up on (false).
    acks: Vec<oneshot::Sender<bool>>,
    /// Idempotency answers of those sends, stored with their records.
    answers: Vec<IdemOp>,
    by_id: HashMap<String, Staged>,
}

struct Staged {
    row: MessageRow,
    /// Taken by the writer: its receipts wait until it is written.
    writing: bool,
    /// Its annex waits in the journal until the record is written.
    annexed: bool,
}

/// How long a send waits for its records to be written before it answers anyway (the
/// writer stopped, or the store hangs): the messages are on their way regardless.
const RECORD_WAIT: Duration = Duration::from_secs(10);

/// Records staged and not yet written at most before sends wait for the writer again.
const BEHIND_MAX: usize = 50_000;

/// A record as its message's annex.
pub(super) fn annex(row: &MessageRow) -> Option<Bytes> {
    postcard::to_allocvec(row).ok().map(Bytes::from)
}

/// Keeps the records of messages about to be submitted (their ids chosen already);
/// `annexed`: each goes into the journal as its message's annex.
pub(super) fn stage(v1: &V1, rows: &[MessageRow], annexed: bool) {
    let mut unwritten = v1.inner.unwritten.lock();
    for row in rows {
        unwritten.by_id.insert(
            row.id.clone(),
            Staged {
                row: row.clone(),
                writing: false,
                annexed,
            },
        );
    }
}

/// Hands the staged records of accepted messages, journaled as their annexes, to the
/// writer without waiting. Gives the ids back when the writer is too far behind: the
/// send then waits for the write ([`record`]), which bounds what memory holds.
pub(super) fn hand_over(v1: &V1, ids: Vec<String>) -> Result<(), Vec<String>> {
    {
        let mut unwritten = v1.inner.unwritten.lock();
        if unwritten.by_id.len() > BEHIND_MAX {
            return Err(ids);
        }
        unwritten.batches.push(ids);
    }
    v1.inner.written.notify_one();
    Ok(())
}

/// Stages again the records that a journal replay brought back as annexes
/// (`Gateway::take_annexes`), before their messages are sent again, so their receipts
/// find them; the writer writes them (a record the database has already stays as it is).
pub(crate) fn restage(v1: &V1, annexes: Vec<router::Annex>) {
    let mut ids = Vec::with_capacity(annexes.len());
    {
        let mut unwritten = v1.inner.unwritten.lock();
        for (id, annex) in annexes {
            match postcard::from_bytes::<MessageRow>(&annex) {
                Ok(row) if *row.id == *id => {
                    unwritten.by_id.entry(row.id.clone()).or_insert(Staged {
                        row,
                        writing: false,
                        annexed: true,
                    });
                    ids.push(id.to_string());
                }
                _ => {
                    warn!(%id, "a message record in the journal cannot be read: dropped");
                    v1.gateway().forget_annex(&id);
                }
            }
        }
        tracing::info!(
            records = ids.len(),
            "REST API message records restored from the journal"
        );
        unwritten.batches.push(ids);
    }
    v1.inner.written.notify_one();
}

/// Forgets the staged records of messages that were refused.
pub(super) fn unstage(v1: &V1, ids: &[String]) {
    let mut unwritten = v1.inner.unwritten.lock();
    for id in ids {
        unwritten.by_id.remove(id);
    }
}

/// Hands staged records to the writer and waits until they are written, with every
/// record handed over before them, so that a 202 answer implies the record survives a
/// crash. Sends running at once share the writer's next transaction, and so does
/// `answer`, the send's idempotency answer. Whether it was all written (else the caller
/// stores the answer itself).
pub(super) async fn record(v1: &V1, ids: Vec<String>, answer: Option<IdemOp>) -> bool {
    let (ack, written) = oneshot::channel();
    {
        let mut unwritten = v1.inner.unwritten.lock();
        unwritten.batches.push(ids);
        unwritten.acks.push(ack);
        unwritten.answers.extend(answer);
    }
    v1.inner.written.notify_one();
    match tokio::time::timeout(RECORD_WAIT, written).await {
        Ok(Ok(true)) => true,
        // The writer warned already; the messages themselves are journaled and sent.
        Ok(Ok(false)) => false,
        Ok(Err(_)) | Err(_) => {
            warn!("the REST API's message records were not written in time; answering anyway");
            false
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
        .filter(|s| s.row.uid == uid)
        .map(|s| s.row.clone())
}

/// What receipts did to records not yet written.
#[derive(Default)]
pub(crate) struct MovedInMemory {
    /// Receipts of messages without a staged record: for the database.
    pub rest: Vec<ReceiptEvent>,
    /// Records that reached a final state (their webhook events are due).
    pub finals: Vec<MessageRow>,
    /// Ids of the records that took receipts in memory (or parked them).
    pub held: Vec<Arc<str>>,
}

/// Applies `changes` to the records not yet written; parks the receipts of records the
/// writer is writing. Checked and parked under the lock the writer takes to finish a
/// batch, so a parked receipt is always found again.
pub(crate) fn move_unwritten(
    v1: &V1,
    events: &[ReceiptEvent],
    changes: &[Change],
) -> MovedInMemory {
    let mut out = MovedInMemory::default();
    let mut unwritten = v1.inner.unwritten.lock();
    if unwritten.by_id.is_empty() {
        out.rest = events.to_vec();
        return out;
    }
    for change in changes {
        if let Some(staged) = unwritten.by_id.get_mut(&change.id)
            && !staged.writing
            && change.apply_to(&mut staged.row)
            && change.is_final
        {
            out.finals.push(staged.row.clone());
        }
    }
    for event in events {
        match unwritten.by_id.get(&*event.id) {
            None => out.rest.push(event.clone()),
            Some(staged) => {
                if staged.writing {
                    park(v1, event.clone());
                }
                out.held.push(event.id.clone());
            }
        }
    }
    out
}

/// Waits until the records in `ids` are written (or given up on) with what receipts did
/// to them in memory, since their annexes hold only the state they were accepted in. A
/// record whose send has not handed it over yet (a long list of recipients) is waited
/// for too, up to [`RECORD_WAIT`].
pub(crate) async fn until_written(v1: &V1, ids: &[Arc<str>]) {
    if ids.is_empty() {
        return;
    }
    let deadline = tokio::time::Instant::now() + RECORD_WAIT;
    loop {
        let pending = {
            let unwritten = v1.inner.unwritten.lock();
            ids.iter().any(|id| unwritten.by_id.contains_key(&**id))
        };
        // The writer's next turn: it takes every record handed over so far, and it
        // starts only once the turn that wrote the others has applied the receipts it
        // parked meanwhile.
        record(v1, Vec::new(), None).await;
        if !pending || tokio::time::Instant::now() >= deadline {
            return;
        }
    }
}

/// Rows per transaction of the writer.
const WRITE_BATCH: usize = 2000;
/// The least time between the starts of two of the writer's transactions: a send waits
/// up to this much longer, and under load each transaction takes more sends.
const WRITE_GAP: Duration = Duration::from_millis(2);

/// Writes the records of accepted messages in batches (group commit), tells their
/// sends, then applies the receipts that came while they were written. Writes what is
/// left when `shutdown` is cancelled.
pub async fn write_records(v1: V1, shutdown: CancellationToken) {
    let mut cadence = crate::v1::time::Cadence::new(WRITE_GAP);
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = v1.inner.written.notified() => false,
        };
        loop {
            cadence.next_turn().await;
            let (ids, rows, acks, answers, annexed) = {
                let mut unwritten = v1.inner.unwritten.lock();
                let batches = std::mem::take(&mut unwritten.batches);
                let acks = std::mem::take(&mut unwritten.acks);
                let answers = std::mem::take(&mut unwritten.answers);
                let ids: Vec<String> = batches.into_iter().flatten().collect();
                let mut rows = Vec::with_capacity(ids.len());
                let mut annexed = Vec::new();
                for id in &ids {
                    if let Some(staged) = unwritten.by_id.get_mut(id) {
                        staged.writing = true;
                        rows.push(staged.row.clone());
                        if staged.annexed {
                            annexed.push(id.clone());
                        }
                    }
                }
                (ids, rows, acks, answers, annexed)
            };
            if ids.is_empty() && acks.is_empty() {
                break;
            }
            let mut all_written = true;
            // The answers go with the last chunk (a send answers once all are in), and
            // are written even if, against expectation, no row was found to go with them.
            let mut chunks: Vec<&[MessageRow]> = rows.chunks(WRITE_BATCH).collect();
            if chunks.is_empty() {
                chunks.push(&[]);
            }
            let last = chunks.len() - 1;
            for (n, chunk) in chunks.into_iter().enumerate() {
                let answers: &[IdemOp] = if n == last { &answers } else { &[] };
                let mut tries = 0;
                while let Err(error) = v1.db().insert_messages(chunk, answers).await {
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
            // In the database now: the journal may drop their copies. Otherwise they
            // stay there, and a restart writes them.
            if all_written {
                for id in &annexed {
                    v1.gateway().forget_annex(id);
                }
            }
            // Written: receipts from now on find the rows in the database. Those that
            // came while they were written are taken under the same lock.
            let parked = {
                let mut unwritten = v1.inner.unwritten.lock();
                for id in &ids {
                    unwritten.by_id.remove(id);
                }
                take_parked(&v1, &ids)
            };
            replay(&v1, parked).await;
        }
        if stopping {
            return;
        }
    }
}

/// Receipts that came while their message's record was being written, by message id.
pub(crate) type Early = parking_lot::Mutex<HashMap<Arc<str>, (Instant, Vec<ReceiptEvent>)>>;

/// How long such a receipt waits for its message's record.
const EARLY_WAIT: Duration = Duration::from_secs(60);
/// Such receipts kept at most.
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

/// The receipts parked for `ids` (whoever takes them applies them, once).
fn take_parked(v1: &V1, ids: &[String]) -> Vec<ReceiptEvent> {
    let mut early = v1.inner.early.lock();
    if early.is_empty() {
        return Vec::new();
    }
    ids.iter()
        .filter_map(|id| early.remove(id.as_str()))
        .flat_map(|(_, events)| events)
        .collect()
}

/// Applies receipts that waited for their record, in one batch. They were acknowledged
/// when parked: like the record they waited for, they lived in memory only until it
/// was written.
async fn replay(v1: &V1, parked: Vec<ReceiptEvent>) {
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
