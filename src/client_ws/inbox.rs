//! The way from the client: the messages queued for the session, bounded in bytes as well as in
//! count. Each queued message holds its bytes twice: from the connection's
//! [`max_queued_bytes`](super::ClientWsConfigBuilder::max_queued_bytes) (the reader waits for
//! room, so the client's further messages wait in TCP) and from the process's
//! [`BodyBudget`] (no room: the message is answered at once with a `503` error event, code
//! `body_budget_exhausted`, and dropped). The bytes come back when the session takes the
//! message to serve it (the fallback layer then holds them for its replay buffer).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use http::StatusCode;
use serde_json::json;
use tokio::sync::Semaphore;
use wsfirst_fallback::BodyBudget;

use super::{
    convert::{Incoming, error_event, with_lane},
    held::Held,
};

/// The byte bounds of one connection's queue.
#[derive(Clone, Debug)]
pub(crate) struct Inbox {
    room: Arc<Semaphore>,
    max: usize,
    budget: BodyBudget,
    /// Whether the reader waits for room (the client is not gone: its frames wait in TCP).
    waiting: Arc<AtomicBool>,
}

impl Inbox {
    pub(crate) fn new(max_bytes: usize, budget: BodyBudget) -> Self {
        let max = max_bytes.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            room: Arc::new(Semaphore::new(max)),
            max,
            budget,
            waiting: Arc::default(),
        }
    }

    /// Whether the reader waits for room in the queue.
    pub(crate) fn is_waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire)
    }

    /// Waits until the queue has room for `incoming`'s bytes (one message always fits an empty
    /// queue), then holds them from the budget too; a message the budget has no room for
    /// becomes its error event.
    pub(crate) async fn admit(&self, incoming: Incoming) -> Incoming {
        let Incoming::Create(mut create) = incoming else {
            // A refusal's event is small and bounded; steering and acknowledgements too.
            return incoming;
        };
        let len = create.body.len();
        let wanted = u32::try_from(len.min(self.max)).unwrap_or(u32::MAX);
        self.waiting.store(true, Ordering::Release);
        let connection = Arc::clone(&self.room).acquire_many_owned(wanted).await.ok();
        self.waiting.store(false, Ordering::Release);
        match self.budget.try_reserve(len) {
            Ok(budget) => {
                create.held = Held {
                    _connection: connection,
                    _budget: Some(budget),
                };
                Incoming::Create(create)
            }
            Err(exhausted) => {
                tracing::debug!(len, error = %exhausted, "client websocket message refused: body budget exhausted");
                Incoming::Refused(with_lane(busy_event(), &create.lane))
            }
        }
    }
}

/// The error event of a message the process's body budget has no room for (status 503).
fn busy_event() -> String {
    error_event(
        Some(StatusCode::SERVICE_UNAVAILABLE),
        &json!({
            "type": "server_error",
            "code": "body_budget_exhausted",
            "message": "the gateway holds too many request bodies at once: send the request again later",
            "param": null,
        }),
        None,
        None,
    )
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::FutureExt;

    use super::*;
    use crate::client_ws::convert::Create;

    fn create(len: usize) -> Incoming {
        Incoming::Create(Create {
            body: Bytes::from(vec![b'x'; len]),
            lane: None,
            warm_up: false,
            held: Held::default(),
        })
    }

    #[tokio::test]
    async fn the_queue_is_bounded_in_bytes() {
        let inbox = Inbox::new(1000, BodyBudget::new(1 << 20));
        let first = inbox.admit(create(600)).await;
        // A second one does not fit beside it: the reader waits.
        let mut second = Box::pin(inbox.admit(create(600)));
        assert!((&mut second).now_or_never().is_none());
        assert!(inbox.is_waiting());
        drop(first);
        let second = second.await;
        assert!(matches!(second, Incoming::Create(_)));
        assert!(!inbox.is_waiting());
        // One message larger than the bound fits an empty queue.
        drop(second);
        let big = inbox.admit(create(5000)).await;
        assert!(matches!(big, Incoming::Create(_)));
    }

    #[tokio::test]
    async fn past_the_budget_a_message_becomes_a_503_event() {
        let budget = BodyBudget::new(1000);
        let inbox = Inbox::new(1 << 20, budget.clone());
        let held = inbox.admit(create(600)).await;
        assert_eq!(budget.available(), 400);
        let refused = inbox.admit(create(600)).await;
        let Incoming::Refused(event) = refused else {
            panic!("admitted past the budget");
        };
        assert!(event.contains(r#""status":503"#), "{event}");
        assert!(event.contains("body_budget_exhausted"), "{event}");
        drop(held);
        assert_eq!(budget.available(), 1000);
    }
}
