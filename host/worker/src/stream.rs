//! Bounded streams from blocking work to an async consumer (an HTTP body, a store upload):
//! whatever the producer makes, memory holds at most a fixed number of chunks, a slow consumer
//! slows the producer down, and a consumer that stops altogether costs the producer a bounded
//! wait, never a thread forever.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc::error::TrySendError;

/// The sending end, used from blocking threads.
#[derive(Clone)]
pub struct Chunks(tokio::sync::mpsc::Sender<Bytes>);

impl Chunks {
    /// A stream holding at most `capacity` chunks.
    pub fn channel(capacity: usize) -> (Self, tokio::sync::mpsc::Receiver<Bytes>) {
        let (sender, receiver) = tokio::sync::mpsc::channel(capacity);
        (Self(sender), receiver)
    }

    /// Sends `chunk`, waiting for room until `deadline`. Returns whether it was sent (not when
    /// the consumer is gone or did not take it in time).
    pub fn send_by(&self, chunk: Bytes, deadline: Instant) -> bool {
        let mut chunk = chunk;
        loop {
            match self.0.try_send(chunk) {
                Ok(()) => return true,
                Err(TrySendError::Closed(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    chunk = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
}

/// What a [`ChunkWriter`] reports once: the producer's outcome if it ended while everything
/// was still held back, or `Ok` as soon as the first bytes went out.
pub type Committed = tokio::sync::oneshot::Sender<Result<(), String>>;

/// An `io::Write` over [`Chunks`]. The first `hold_back` bytes are kept until there are more
/// (or the writer is finished), so a producer that fails early can still be answered with an
/// error instead of a broken stream.
pub struct ChunkWriter {
    chunks: Chunks,
    buffer: Vec<u8>,
    chunk_bytes: usize,
    hold_back: usize,
    /// How long one chunk may wait for a consumer that does not read.
    patience: Duration,
    committed: Option<Committed>,
}

impl ChunkWriter {
    pub fn new(
        chunks: Chunks,
        chunk_bytes: usize,
        hold_back: usize,
        patience: Duration,
        committed: Committed,
    ) -> Self {
        Self {
            chunks,
            buffer: Vec::new(),
            chunk_bytes,
            hold_back,
            patience,
            committed: Some(committed),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if let Some(committed) = self.committed.take() {
            let _ = committed.send(Ok(()));
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buffer));
        if chunk.is_empty() || self.chunks.send_by(chunk, Instant::now() + self.patience) {
            return Ok(());
        }
        Err(std::io::Error::other(
            "the consumer stopped taking the stream",
        ))
    }

    /// Ends the stream: sends what is held, or, when nothing went out yet and `outcome` is an
    /// error, reports it instead.
    pub fn finish(mut self, outcome: Result<(), String>) -> Result<(), String> {
        match (outcome, self.committed.take()) {
            (Err(why), Some(committed)) => {
                let _ = committed.send(Err(why.clone()));
                Err(why)
            }
            (Err(why), None) => Err(why),
            (Ok(()), committed) => {
                self.committed = committed;
                self.send().map_err(|e| e.to_string())
            }
        }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        let threshold = if self.committed.is_some() {
            self.hold_back
        } else {
            self.chunk_bytes
        };
        if self.buffer.len() >= threshold {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
