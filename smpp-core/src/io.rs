//! The write half of a session: one task that batches encoded PDUs into few syscalls.
//!
//! Sessions encode on their own task and hand whole chunks here, so a slow peer pushes
//! back through this bounded channel instead of blocking the reader mid-PDU.
//!
//! Every write has a deadline: a peer that stops reading would otherwise park this task
//! in `write_all` forever, and with it the session that waits for room in the channel.

use std::{future::Future, time::Duration};

use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncWrite, AsyncWriteExt},
    sync::mpsc::{self, error::TrySendError},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

/// Chunks waiting for the socket; a full channel makes the session stop reading.
pub const WRITE_QUEUE: usize = 256;

/// Upper bound of one coalesced write.
const MAX_BATCH: usize = 256 * 1024;

/// Write every chunk from `rx` until the channel closes, then shut the write side down.
///
/// Gives up (and so closes the channel, which ends the session) when one chunk of at most
/// [`MAX_BATCH`] bytes is not accepted by the peer within `write_timeout`.
pub async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::Receiver<Bytes>,
    write_timeout: Duration,
) {
    // Grows to the largest batch written; an idle session holds none.
    let mut batch = BytesMut::new();
    while let Some(first) = rx.recv().await {
        let chunk: &[u8] = if rx.is_empty() {
            &first
        } else {
            batch.clear();
            batch.extend_from_slice(&first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(more) => batch.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            &batch
        };
        match tokio::time::timeout(write_timeout, writer.write_all(chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(%error, "write failed");
                return;
            }
            Err(_) => {
                tracing::warn!("peer did not accept a write within the write timeout: closing");
                return;
            }
        }
    }
    // A TLS close_notify is a write too: a peer that does not read must not hold it.
    let _ = tokio::time::timeout(write_timeout, writer.shutdown()).await;
}

/// Resolves at `deadline`, or, once `shutdown` is cancelled, `grace` later if that is
/// sooner: what a session is willing to wait for a blocked write.
pub async fn give_up_at(deadline: Instant, shutdown: Option<(&CancellationToken, Duration)>) {
    let Some((shutdown, grace)) = shutdown else {
        return tokio::time::sleep_until(deadline).await;
    };
    tokio::select! {
        _ = tokio::time::sleep_until(deadline) => return,
        _ = shutdown.cancelled() => {}
    }
    tokio::time::sleep_until(deadline.min(Instant::now() + grace)).await
}

/// Encoded output of one turn of a session loop, flushed as one chunk.
#[derive(Debug)]
pub struct Outbox {
    buf: BytesMut,
    tx: mpsc::Sender<Bytes>,
}

impl Outbox {
    pub fn new(tx: mpsc::Sender<Bytes>) -> Self {
        Self {
            // Grows with the first responses; an idle session holds little.
            buf: BytesMut::with_capacity(512),
            tx,
        }
    }

    pub fn buf(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Resolves when the writer has given up (write error or write timeout).
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    /// Hand what was encoded to the writer. Err when the writer is gone, or when the
    /// queue stays full until `give_up` resolves: the peer is not reading, and the
    /// session's own deadlines must not wait behind it.
    pub async fn flush_or<F: Future<Output = ()>>(&mut self, give_up: F) -> Result<(), ()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        if self.buf.capacity() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        // The common case takes no timer.
        let chunk = match self.tx.try_send(chunk) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed(_)) => return Err(()),
            Err(TrySendError::Full(chunk)) => chunk,
        };
        tokio::select! {
            biased;
            sent = self.tx.send(chunk) => sent.map_err(|_| ()),
            _ = give_up => Err(()),
        }
    }
}
