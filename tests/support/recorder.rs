//! A WebSocket upstream on 127.0.0.1 that records how each of its connections ended: with a
//! close frame from the client (and its code) or dropped without one. It answers every
//! `response.create` with an [`Answer`]: at once, slowly (input `"slow"`: a pause before each
//! event), or not past its first three events (input `"stall"`).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    extract::ws::{Message, WebSocket, WebSocketUpgrade},
    routing::any,
    serve::ListenerExt,
};
use tokio::{net::TcpListener, task::JoinHandle};
use wsfirst::websocket::testing::Answer;

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The client sent a close frame with this code (`None`: a close frame without a code).
    Close(Option<u16>),
    /// The connection went away without a close frame.
    Dropped,
}

/// The upstream; dropping it stops the server.
pub(crate) struct Recorder {
    addr: SocketAddr,
    ended: Arc<Mutex<Vec<Ended>>>,
    open: Arc<Mutex<usize>>,
    task: JoinHandle<()>,
}

impl Recorder {
    /// Starts the upstream; slow answers wait `pause` before each event.
    pub(crate) async fn start(answer: Answer, pause: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ended = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(Mutex::new(0));
        let (ended_, open_) = (Arc::clone(&ended), Arc::clone(&open));
        let app = Router::new().fallback(any(move |upgrade: WebSocketUpgrade| {
            let (ended, open, answer) = (Arc::clone(&ended_), Arc::clone(&open_), answer.clone());
            async move {
                upgrade.on_upgrade(move |socket| async move {
                    *open.lock().unwrap() += 1;
                    let how = serve(socket, answer, pause).await;
                    ended.lock().unwrap().push(how);
                    *open.lock().unwrap() -= 1;
                })
            }
        }));
        let task = tokio::spawn(async move {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            ended,
            open,
            task,
        }
    }

    /// `ws://127.0.0.1:<port>/v1/responses`.
    pub(crate) fn ws_url(&self) -> String {
        format!("ws://{}/v1/responses", self.addr)
    }

    /// How the connections that ended did, in order.
    pub(crate) fn ended(&self) -> Vec<Ended> {
        self.ended.lock().unwrap().clone()
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        *self.open.lock().unwrap()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut socket: WebSocket, answer: Answer, pause: Duration) -> Ended {
    loop {
        let request = match socket.recv().await {
            Some(Ok(Message::Text(text))) => text.as_str().to_owned(),
            Some(Ok(Message::Close(frame))) => return Ended::Close(frame.map(|frame| frame.code)),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return Ended::Dropped,
        };
        let (slow, stall) = (request.contains("\"slow\""), request.contains("\"stall\""));
        let events = if stall { 3 } else { answer.len() };
        for event in answer.messages().iter().take(events) {
            if slow {
                tokio::time::sleep(pause).await;
            }
            if socket.send(Message::text(event.clone())).await.is_err() {
                return Ended::Dropped;
            }
        }
    }
}
