//! The one reading path of an answer: what one incoming WebSocket message means (an event, the
//! end, an upstream error, nothing, or a failure), shared by the attempt (up to the first event)
//! and the body (after it).

use tokio_tungstenite::tungstenite::{self, Message};
use wsfirst_core::{FailureKind, Phase, WsFailure};

use crate::{Codec, Decoded, Exchange, connector::map_error};

/// What the socket yielded: a message, a transport error, or its end (`None`).
pub(crate) type Incoming = Option<Result<Message, tungstenite::Error>>;

/// Reads one item of the socket in `phase`.
///
/// - Pings, pongs and raw frames are [`Decoded::Ignore`] (tungstenite answers pings itself).
/// - A normal close (no code or code 1000), or the end of the stream, is [`Decoded::End`] when
///   the codec [ends on close](Codec::ends_on_close), else a `Closed` failure, as is any other
///   close.
/// - A transport error is its typed failure; a codec error a `Protocol` failure.
/// - Every other message is what the codec decodes it to.
pub(crate) fn read(
    incoming: Incoming,
    codec: &dyn Codec,
    exchange: &Exchange,
    phase: Phase,
) -> Result<Decoded, WsFailure> {
    let closed = |code: Option<u16>, reason: String| {
        if codec.ends_on_close() && matches!(code, None | Some(1000)) {
            Ok(Decoded::End { frame: None })
        } else {
            Err(WsFailure::new(phase, FailureKind::Closed { code, reason }))
        }
    };
    match incoming {
        None | Some(Ok(Message::Close(None))) => closed(None, String::new()),
        Some(Ok(Message::Close(Some(frame)))) => {
            closed(Some(u16::from(frame.code)), frame.reason.to_string())
        }
        Some(Err(error)) => Err(map_error(phase, error)),
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Ok(Decoded::Ignore),
        Some(Ok(message)) => codec.decode(message, exchange).map_err(|error| {
            WsFailure::new(phase, FailureKind::Protocol(error.to_string())).with_source(error)
        }),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};

    use super::*;
    use crate::{RawCodec, ResponsesCodec};

    fn close(code: u16, reason: &str) -> Incoming {
        Some(Ok(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        }))))
    }

    #[test]
    fn a_close_ends_the_answer_only_for_a_codec_that_ends_on_close() {
        let exchange = Exchange::new(true);
        for incoming in [None, Some(Ok(Message::Close(None))), close(1000, "")] {
            assert_eq!(
                read(incoming, &RawCodec::new(), &exchange, Phase::MidStream),
                Ok(Decoded::End { frame: None })
            );
        }
        for incoming in [None, Some(Ok(Message::Close(None)))] {
            let failure = read(
                incoming,
                &ResponsesCodec::new(),
                &exchange,
                Phase::MidStream,
            )
            .unwrap_err();
            assert_eq!(
                failure.kind(),
                &FailureKind::Closed {
                    code: None,
                    reason: String::new()
                }
            );
        }
        // Any other close code is a failure that keeps its code and reason, whatever the codec.
        let codecs: [&dyn Codec; 2] = [&RawCodec::new(), &ResponsesCodec::new()];
        for codec in codecs {
            let failure = read(
                close(1011, "overloaded"),
                codec,
                &exchange,
                Phase::BeforeFirstEvent,
            )
            .unwrap_err();
            assert_eq!(failure.phase(), Phase::BeforeFirstEvent);
            assert_eq!(
                failure.kind(),
                &FailureKind::Closed {
                    code: Some(1011),
                    reason: "overloaded".into()
                }
            );
        }
    }

    #[test]
    fn control_frames_are_ignored_and_codec_errors_are_protocol_failures() {
        let exchange = Exchange::new(true);
        let codec = ResponsesCodec::new();
        for message in [Message::Ping(Bytes::new()), Message::Pong(Bytes::new())] {
            assert_eq!(
                read(Some(Ok(message)), &codec, &exchange, Phase::MidStream),
                Ok(Decoded::Ignore)
            );
        }
        let failure = read(
            Some(Ok(Message::text("not json"))),
            &codec,
            &exchange,
            Phase::MidStream,
        )
        .unwrap_err();
        assert!(
            matches!(failure.kind(), FailureKind::Protocol(_)),
            "{failure}"
        );
        assert!(std::error::Error::source(&failure).is_some());
        let failure = read(
            Some(Err(tungstenite::Error::ConnectionClosed)),
            &codec,
            &exchange,
            Phase::Send,
        )
        .unwrap_err();
        assert_eq!(failure.phase(), Phase::Send);
    }
}
