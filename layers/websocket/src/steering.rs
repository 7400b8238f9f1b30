//! [`Steering`]: a way back from a running WebSocket answer to the upstream connection that
//! runs it, for messages about that response (the Responses API's `response.steer`).
//!
//! A streaming answer served over the upstream's WebSocket carries a `Steering` in its response
//! extensions while its body holds the connection. A message sent with it is written to that
//! connection the next time the body is polled (or at once when the body waits for the
//! upstream); the upstream's answers to it (`response.steer.accepted` / `.pending` /
//! `.failed`) arrive as events of the same body. When the upstream says it will run another
//! response after this one ([`Codec::extends_answer`](crate::Codec::extends_answer), the
//! Responses API's `response.steer.accepted`), the body goes on past this response's end to the
//! end of that one, so the connection never returns to the pool with an answer still coming.
//!
//! ```
//! use wsfirst_websocket::{Message, Steering};
//!
//! /// Steers the response running as `response`'s answer, if the upstream's WebSocket runs it.
//! fn steer<B>(response: &http::Response<B>, steer: &str) -> bool {
//!     response
//!         .extensions()
//!         .get::<Steering>()
//!         .is_some_and(|steering| steering.send(Message::text(steer)).is_ok())
//! }
//!
//! // An answer served over HTTP has no connection to steer.
//! let response = http::Response::new(());
//! assert!(!steer(&response, r#"{"type":"response.steer","previous_response_id":"resp_1"}"#));
//! ```

use std::fmt;

use tokio::sync::mpsc;

use crate::Message;

/// How many messages may wait for the body to write them.
const QUEUED: usize = 8;

/// The sending side of a running WebSocket answer's connection (a response extension).
#[derive(Clone, Debug)]
pub struct Steering(mpsc::Sender<Message>);

/// The message could not be handed to the connection: the answer ended (or failed), or too
/// many messages wait already.
#[derive(Debug)]
pub struct SteeringClosed(pub Message);

impl fmt::Display for SteeringClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the websocket answer no longer runs, or too many messages wait for it")
    }
}

impl std::error::Error for SteeringClosed {}

impl Steering {
    /// A handle and the receiver its body reads.
    pub(crate) fn channel() -> (Self, mpsc::Receiver<Message>) {
        let (sender, receiver) = mpsc::channel(QUEUED);
        (Self(sender), receiver)
    }

    /// Hands `message` to the connection running the answer.
    pub fn send(&self, message: Message) -> Result<(), SteeringClosed> {
        self.0.try_send(message).map_err(|error| match error {
            mpsc::error::TrySendError::Full(message)
            | mpsc::error::TrySendError::Closed(message) => SteeringClosed(message),
        })
    }

    /// Whether the answer still runs (its body holds the receiver).
    pub fn is_open(&self) -> bool {
        !self.0.is_closed()
    }
}
