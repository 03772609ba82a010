//! The write half of a session: one task that batches encoded PDUs into few syscalls.
//!
//! Sessions encode on their own task and hand whole chunks here, so a slow peer pushes
//! back through this bounded channel instead of blocking the reader mid-PDU.

use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncWrite, AsyncWriteExt},
    sync::mpsc,
};

/// Chunks waiting for the socket; a full channel makes the session stop reading.
pub const WRITE_QUEUE: usize = 256;

/// Upper bound of one coalesced write.
const MAX_BATCH: usize = 256 * 1024;

/// Write every chunk from `rx` until the channel closes, then shut the write side down.
pub async fn write_loop<W: AsyncWrite + Unpin>(mut writer: W, mut rx: mpsc::Receiver<Bytes>) {
    let mut batch = BytesMut::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        if rx.is_empty() {
            if writer.write_all(&first).await.is_err() {
                return;
            }
        } else {
            batch.extend_from_slice(&first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(more) => batch.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            if writer.write_all(&batch).await.is_err() {
                return;
            }
            batch.clear();
        }
    }
    let _ = writer.shutdown().await;
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
            buf: BytesMut::with_capacity(16 * 1024),
            tx,
        }
    }

    pub fn buf(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Hand what was encoded to the writer; Err when the writer is gone.
    pub async fn flush(&mut self) -> Result<(), ()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        if self.buf.capacity() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        self.tx.send(chunk).await.map_err(|_| ())
    }
}
