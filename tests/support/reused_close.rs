//! A WebSocket upstream on 127.0.0.1 whose connections answer their first request in full and
//! close when the second one arrives, after receiving it and before any event: the close of a
//! reused connection *after our write*, which the test kit's per-connection scripts cannot
//! express. It counts handshakes and the requests it received (each one executed).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::{
    Router,
    extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    routing::any,
    serve::ListenerExt,
};
use tokio::{net::TcpListener, task::JoinHandle};
use wsfirst::websocket::testing::Answer;

/// The upstream; dropping it stops the server.
pub(crate) struct ReusedClose {
    addr: SocketAddr,
    counts: Arc<Counts>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Counts {
    handshakes: AtomicUsize,
    requests: AtomicUsize,
}

impl ReusedClose {
    /// Starts the upstream: first requests get `answer`, second ones a close with `code`
    /// (`None`: the TCP connection is dropped without a close frame).
    pub(crate) async fn start(answer: Answer, code: Option<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let shared = Arc::clone(&counts);
        let app = Router::new().fallback(any(move |upgrade: WebSocketUpgrade| {
            let counts = Arc::clone(&shared);
            let answer = answer.clone();
            async move {
                counts.handshakes.fetch_add(1, Ordering::SeqCst);
                upgrade.on_upgrade(move |socket| serve(socket, counts, answer, code))
            }
        }));
        let task = tokio::spawn(async move {
            // No Nagle delay: under paused time the clock must not run ahead of the bytes.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, counts, task }
    }

    /// `ws://127.0.0.1:<port>/v1/responses`.
    pub(crate) fn ws_url(&self) -> String {
        format!("ws://{}/v1/responses", self.addr)
    }

    /// Upgrade requests received.
    pub(crate) fn handshakes(&self) -> usize {
        self.counts.handshakes.load(Ordering::SeqCst)
    }

    /// Requests received (executed), over every connection.
    pub(crate) fn requests(&self) -> usize {
        self.counts.requests.load(Ordering::SeqCst)
    }
}

impl Drop for ReusedClose {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut socket: WebSocket, counts: Arc<Counts>, answer: Answer, code: Option<u16>) {
    let mut served = 0;
    while let Some(Ok(message)) = socket.recv().await {
        if !matches!(message, Message::Text(_)) {
            continue;
        }
        counts.requests.fetch_add(1, Ordering::SeqCst);
        served += 1;
        if served == 1 {
            for event in answer.messages() {
                if socket.send(Message::text(event.clone())).await.is_err() {
                    return;
                }
            }
            continue;
        }
        if let Some(code) = code {
            let frame = CloseFrame {
                code,
                reason: "".into(),
            };
            let _ = socket.send(Message::Close(Some(frame))).await;
        }
        return;
    }
}
