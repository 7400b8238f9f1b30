//! Serving a router the way a gateway should: every accepted socket has `TCP_NODELAY` set.
//!
//! Server-sent events are many small writes. On a socket without `TCP_NODELAY`, Nagle's algorithm
//! holds each small write until the client's delayed ACK arrives, which adds up to about 40 ms to
//! every streamed answer on Linux. `axum::serve` leaves the option as the listener's sockets have
//! it (off), so wrap the listener with [`nodelay`] before serving.
//!
//! # Example
//!
//! ```no_run
//! use axum::{Router, routing::post_service};
//! use wsfirst::{Wsfirst, core::Route};
//!
//! # async fn run() -> Result<(), wsfirst::core::BoxError> {
//! let wsfirst = Wsfirst::builder().build();
//! let route = Route::builder("openai", "openai-responses")
//!     .ws_url("wss://api.openai.com/v1/responses")
//!     .http_url("https://api.openai.com/v1/responses")
//!     .build()?;
//! let app = Router::new().route("/v1/responses", post_service(wsfirst.route(route)));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(wsfirst::serve::nodelay(listener), app).await?;
//! # Ok(())
//! # }
//! ```

use std::{io, net::SocketAddr};

use axum::serve::{Listener, ListenerExt};
use tokio::net::{TcpListener, TcpStream};

/// `listener`, with `TCP_NODELAY` set on every socket it accepts (a socket on which it cannot be
/// set is served as it is, and the failure logged at DEBUG).
pub fn nodelay(listener: TcpListener) -> impl Listener<Io = TcpStream, Addr = SocketAddr> {
    listener.tap_io(set_nodelay)
}

fn set_nodelay(stream: &mut TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        log_failure(&error);
    }
}

fn log_failure(error: &io::Error) {
    tracing::debug!(%error, "cannot set TCP_NODELAY on an accepted connection");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_have_nodelay_set() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = nodelay(listener);
        let client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay().unwrap());
        drop(client);
    }
}
