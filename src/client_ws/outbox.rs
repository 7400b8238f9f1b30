//! The way to the client: a writer task that owns the socket's sending half, fed through a
//! buffer bounded in bytes, so a client that reads slowly is closed instead of holding the
//! gateway's memory.
//!
//! Messages wait in the buffer while the socket cannot take them; [`Outbox::push`] refuses one
//! that would take the buffer past its limit (one message is always accepted into an empty
//! buffer, whatever its size). A graceful close ([`Outbox::close`]) goes after the messages
//! already buffered; an abort ([`Outbox::abort`]) drops them and sends its close frame at
//! once (after the frame being written, if any).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::{Sink, SinkExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};

/// How long a close frame may take to be written before the socket is dropped.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The buffer is full: the client reads too slowly.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Overflow;

enum Outgoing {
    Message(Message, usize),
    Close(CloseFrame),
}

/// The sending side of a client connection.
#[derive(Debug)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
    buffered: Arc<AtomicUsize>,
    limit: usize,
    abort: watch::Sender<Option<CloseFrame>>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outgoing")
    }
}

impl Outbox {
    /// An outbox over `sink` holding at most `limit` bytes, and its writer task's future.
    pub(crate) fn new<S>(sink: S, limit: usize) -> (Self, impl Future<Output = ()> + Send)
    where
        S: Sink<Message> + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let buffered = Arc::new(AtomicUsize::new(0));
        let (abort, aborted) = watch::channel(None);
        let writer = write(sink, rx, Arc::clone(&buffered), aborted);
        (
            Self {
                tx,
                buffered,
                limit,
                abort,
            },
            writer,
        )
    }

    /// Queues a text message, or refuses it when the buffer would pass its limit.
    pub(crate) fn push(&self, text: String) -> Result<(), Overflow> {
        let len = text.len();
        let buffered = self.buffered.load(Ordering::Acquire);
        if buffered > 0 && buffered.saturating_add(len) > self.limit {
            return Err(Overflow);
        }
        self.buffered.fetch_add(len, Ordering::AcqRel);
        // The writer is gone only when the socket failed: the reader notices that too.
        let _ = self.tx.send(Outgoing::Message(Message::text(text), len));
        Ok(())
    }

    /// Queues a ping (outside the byte limit: it is tiny).
    pub(crate) fn ping(&self) {
        let _ = self
            .tx
            .send(Outgoing::Message(Message::Ping(Default::default()), 0));
    }

    /// The bytes waiting for the client.
    pub(crate) fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Acquire)
    }

    /// Closes after the buffered messages.
    pub(crate) fn close(&self, code: CloseCode, reason: &'static str) {
        let _ = self.tx.send(Outgoing::Close(frame(code, reason)));
    }

    /// Drops the buffered messages and closes at once.
    pub(crate) fn abort(&self, code: CloseCode, reason: &'static str) {
        self.abort.send_replace(Some(frame(code, reason)));
    }
}

fn frame(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

/// The writer task: sends what the outbox queues until a close, an abort, an error, or the
/// outbox is dropped.
async fn write<S>(
    mut sink: S,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    buffered: Arc<AtomicUsize>,
    mut aborted: watch::Receiver<Option<CloseFrame>>,
) where
    S: Sink<Message> + Unpin + Send + 'static,
{
    let abort = async |aborted: &mut watch::Receiver<Option<CloseFrame>>| {
        let frame = aborted
            .wait_for(Option::is_some)
            .await
            .ok()
            .map(|frame| frame.clone());
        match frame {
            Some(frame) => frame,
            // The outbox is gone without an abort: what it queued is still sent, up to the
            // end of the queue.
            None => std::future::pending().await,
        }
    };
    let close = loop {
        let next = tokio::select! {
            biased;
            frame = abort(&mut aborted) => break frame,
            next = rx.recv() => next,
        };
        match next {
            None => break None,
            Some(Outgoing::Close(frame)) => break Some(frame),
            Some(Outgoing::Message(message, len)) => {
                // A burst of events is written together: flushed once nothing else waits.
                let write = async {
                    sink.feed(message).await?;
                    match rx.is_empty() {
                        true => sink.flush().await,
                        false => Ok(()),
                    }
                };
                let sent = tokio::select! {
                    biased;
                    frame = abort(&mut aborted) => break frame,
                    sent = write => sent,
                };
                buffered.fetch_sub(len, Ordering::AcqRel);
                if sent.is_err() {
                    return;
                }
            }
        }
    };
    if let Some(frame) = close {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outbox whose writer never runs: nothing leaves the buffer.
    fn stalled(limit: usize) -> Outbox {
        let (outbox, _writer) = Outbox::new(futures_util::sink::drain(), limit);
        outbox
    }

    #[test]
    fn one_message_always_fits_an_empty_buffer() {
        let outbox = stalled(10);
        assert!(outbox.push("x".repeat(20)).is_ok());
        assert_eq!(outbox.buffered(), 20);
        assert!(outbox.push("x".to_owned()).is_err());
    }

    #[test]
    fn the_buffer_fills_to_its_limit_exactly_and_not_a_byte_past_it() {
        let outbox = stalled(10);
        assert!(outbox.push("x".repeat(4)).is_ok());
        assert!(
            outbox.push("x".repeat(6)).is_ok(),
            "4 + 6 bytes is the limit, not past it"
        );
        assert_eq!(outbox.buffered(), 10);
        assert!(
            outbox.push("x".to_owned()).is_err(),
            "one byte past the limit"
        );
        assert_eq!(outbox.buffered(), 10, "a refused message is not counted");
    }

    #[tokio::test]
    async fn what_the_writer_sent_leaves_the_count() {
        let (outbox, writer) = Outbox::new(futures_util::sink::drain(), 10);
        outbox.push("x".repeat(8)).unwrap();
        outbox.close(CloseCode::Normal, "done");
        writer.await;
        assert_eq!(outbox.buffered(), 0);
    }
}
