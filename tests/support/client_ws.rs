//! What the client WebSocket tests share: a gateway (the stack of `support::stack` with the
//! route's `POST` and its client WebSocket `GET`, served by `wsfirst::serve::serve` on an
//! ephemeral port) and a plain tokio-tungstenite client.
#![allow(dead_code)]

use std::time::Duration;

use axum::{Router, routing::post_service};
use futures_util::{SinkExt, StreamExt};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest, protocol::CloseFrame},
};
use wsfirst::{
    RouteService, Wsfirst, client_ws::ClientWsConfig, core::TransportMode, serve::ServerConfig,
    websocket::testing::TestUpstream,
};

use crate::support::stack;

/// How long a test waits for anything on a socket.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A client connection.
pub(crate) type Client = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The gateway in front of an upstream.
pub(crate) struct Gateway {
    pub(crate) wsfirst: Wsfirst,
    pub(crate) service: RouteService,
    pub(crate) addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    /// The stack of `support::stack` in `mode` in front of `upstream`, with `config`.
    pub(crate) async fn start(
        upstream: &TestUpstream,
        mode: TransportMode,
        config: ClientWsConfig,
    ) -> Self {
        let (wsfirst, service) = stack(upstream, mode);
        let clients = wsfirst.client_websocket(&service, config);
        let app = Router::new().route(
            "/v1/responses",
            post_service(service.clone()).get_service(clients),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(wsfirst::serve::serve(
            listener,
            app,
            ServerConfig::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            wsfirst,
            service,
            addr,
            stop: Some(stop),
            server,
        }
    }

    /// The URL the SDK's `base_url` points at.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Opens a client connection with `Authorization: Bearer sk-test`.
    pub(crate) async fn connect(&self) -> Client {
        let mut request = format!("ws://{}/v1/responses", self.addr)
            .into_client_request()
            .expect("a client request");
        request
            .headers_mut()
            .insert("authorization", "Bearer sk-test".parse().unwrap());
        let (client, response) = tokio::time::timeout(WAIT, connect_async(request))
            .await
            .expect("the upgrade is answered in time")
            .expect("the upgrade succeeds");
        assert_eq!(response.status(), 101);
        if let MaybeTlsStream::Plain(stream) = client.get_ref() {
            stream.set_nodelay(true).expect("nodelay");
        }
        client
    }

    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(WAIT, &mut self.server).await;
        self.server.abort();
        self.wsfirst.shutdown().await;
    }
}

/// A `response.create` message with this input and extra fields (a JSON object's inside).
pub(crate) fn create(input: &str, extra: &str) -> Message {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(",{extra}")
    };
    Message::text(format!(
        r#"{{"type":"response.create","model":"gpt-kit","input":"{input}"{extra}}}"#
    ))
}

/// Sends a message.
pub(crate) async fn send(client: &mut Client, message: Message) {
    tokio::time::timeout(WAIT, client.send(message))
        .await
        .expect("the message is sent in time")
        .expect("the message is sent");
}

/// The next message of any kind (pings included), or `None` at the end.
pub(crate) async fn next(client: &mut Client) -> Option<Message> {
    match tokio::time::timeout(WAIT, client.next())
        .await
        .expect("a message comes in time")
    {
        Some(Ok(message)) => Some(message),
        Some(Err(_)) | None => None,
    }
}

/// The text messages of one response: up to and including its terminal event
/// (`response.completed` / `failed` / `incomplete`) or an `error` event.
pub(crate) async fn response(client: &mut Client) -> Vec<String> {
    let mut texts = Vec::new();
    loop {
        let message = next(client)
            .await
            .unwrap_or_else(|| panic!("the connection ended after {texts:?}"));
        let Message::Text(text) = message else {
            continue;
        };
        let text = text.as_str().to_owned();
        let kind = event_type(&text);
        texts.push(text);
        if matches!(
            kind.as_str(),
            "response.completed" | "response.failed" | "response.incomplete" | "error"
        ) {
            return texts;
        }
    }
}

/// The `type` of an event.
pub(crate) fn event_type(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|value| value["type"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Reads until the close frame, skipping everything else; `None` when the connection ended
/// without one.
pub(crate) async fn close_frame(client: &mut Client) -> Option<CloseFrame> {
    loop {
        match next(client).await? {
            Message::Close(frame) => {
                // Reading on sends tungstenite's close reply, and sees the end.
                let _ = tokio::time::timeout(WAIT, client.next()).await;
                return frame;
            }
            _ => continue,
        }
    }
}
