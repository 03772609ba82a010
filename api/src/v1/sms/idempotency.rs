//! The idempotency answers, written in batches: the claims, answers and releases of
//! every request running at once share one transaction and one turn of SQLite's writer.
//! A claim made alone was two autocommitted statements that waited for the writer's
//! lock in SQLite's busy handler (which sleeps rather than being woken).

use tokio::sync::{mpsc, oneshot};

use super::*;

/// Writes waiting at most.
const QUEUE: usize = 4096;
/// Writes per transaction at most.
const BATCH: usize = 512;

type Reply = oneshot::Sender<Result<bool, String>>;

/// The queue of writes, and its end until the writer task takes it.
pub(crate) struct IdemQueue {
    tx: mpsc::Sender<(IdemOp, Reply)>,
    rx: parking_lot::Mutex<Option<mpsc::Receiver<(IdemOp, Reply)>>>,
}

impl Default for IdemQueue {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            tx,
            rx: parking_lot::Mutex::new(Some(rx)),
        }
    }
}

/// Runs `op` in the writer's next transaction: whether it took effect (a claim won,
/// a key found).
pub(super) async fn write(v1: &V1, op: IdemOp) -> Result<bool, Problem> {
    let (reply, done) = oneshot::channel();
    v1.inner
        .idem
        .tx
        .send((op, reply))
        .await
        .map_err(|_| Problem::internal("the idempotency writer stopped"))?;
    match done.await {
        Ok(Ok(took)) => Ok(took),
        Ok(Err(error)) => Err(Problem::internal(error)),
        Err(_) => Err(Problem::internal("the idempotency writer stopped")),
    }
}

/// The writer: a transaction per batch of waiting writes. Writes what is queued when
/// `shutdown` is cancelled, then ends.
pub async fn write_idempotency(v1: V1, shutdown: CancellationToken) {
    let Some(mut rx) = v1.inner.idem.rx.lock().take() else {
        return;
    };
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let got = tokio::select! {
            _ = shutdown.cancelled() => {
                rx.close();
                rx.recv_many(&mut batch, usize::MAX).await
            }
            got = rx.recv_many(&mut batch, BATCH) => got,
        };
        if got == 0 {
            return;
        }
        let (ops, replies): (Vec<IdemOp>, Vec<Reply>) = batch.drain(..).unzip();
        match v1.db().idem_batch(&ops).await {
            Ok(done) => {
                for (reply, took) in replies.into_iter().zip(done) {
                    let _ = reply.send(Ok(took));
                }
            }
            Err(error) => {
                let error = error.to_string();
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}
