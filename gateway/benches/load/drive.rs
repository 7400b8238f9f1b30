//! The load generator: `concurrency` clients, each on its own keep-alive connection (HTTP/1.1,
//! or a WebSocket for the upstream's own WebSocket mode), sending one request after another
//! for a warm-up and then a measured window; every latency of the window is kept, so the
//! percentiles are exact.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// How a case reaches its server.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// `POST <path>` over HTTP/1.1 to `addr`.
    Http { addr: SocketAddr, path: String },
    /// `response.create` messages on a WebSocket to `url`.
    WebSocket { url: String },
}

/// What one client saw in the measured window.
#[derive(Default)]
struct Client {
    latencies: Vec<Duration>,
    errors: usize,
    /// What went wrong first, to print.
    first_error: Option<String>,
    last_end: Option<Instant>,
}

impl Client {
    /// Counts the outcome of a request that started at `began` and ended at `ended`, if it
    /// started inside the window.
    fn count(
        &mut self,
        schedule: &Schedule,
        began: Instant,
        ended: Instant,
        outcome: Result<(), String>,
    ) {
        if let Err(error) = &outcome {
            self.first_error.get_or_insert_with(|| error.clone());
        }
        if began < schedule.window_start {
            return;
        }
        self.last_end = Some(ended);
        match outcome {
            Ok(()) => self.latencies.push(ended - began),
            Err(_) => self.errors += 1,
        }
    }
}

/// The figures of one case at one concurrency.
#[derive(Clone, Debug)]
pub(crate) struct Figures {
    pub(crate) requests: usize,
    pub(crate) errors: usize,
    /// The first error any client saw, warm-up included.
    pub(crate) first_error: Option<String>,
    pub(crate) median: Duration,
    pub(crate) p99: Duration,
    pub(crate) per_second: f64,
    /// The measured window, from its start to the end of the last request.
    pub(crate) elapsed: Duration,
}

/// When a client sends and which of its requests count.
#[derive(Clone, Copy, Debug)]
struct Schedule {
    /// Every client sends its first request then (its connection is set up before).
    start: Instant,
    /// Requests that start before this are the warm-up: not counted.
    window_start: Instant,
    /// No request starts at or after this.
    window_end: Instant,
    /// The most requests one client sends.
    max_requests: usize,
}

impl Schedule {
    fn goes_on(&self, sent: usize, now: Instant) -> bool {
        sent < self.max_requests && now < self.window_end
    }
}

/// Runs `concurrency` clients against `target`: requests that start during `warm_up` are not
/// counted, then those that start during `window` are.
pub(crate) async fn run(
    target: &Target,
    body: &Bytes,
    concurrency: usize,
    warm_up: Duration,
    window: Duration,
) -> Figures {
    let start = Instant::now() + Duration::from_millis(50);
    let schedule = Schedule {
        start,
        window_start: start + warm_up,
        window_end: start + warm_up + window,
        max_requests: usize::MAX,
    };
    drive(target, body, concurrency, schedule).await
}

/// `clients` clients against `target`, each sending exactly one request at the same moment
/// (a second after the call, so that every connection is set up by then).
pub(crate) async fn one_each(target: &Target, body: &Bytes, clients: usize) -> Figures {
    let start = Instant::now() + Duration::from_secs(1);
    let schedule = Schedule {
        start,
        window_start: start,
        window_end: start + Duration::from_secs(3600),
        max_requests: 1,
    };
    drive(target, body, clients, schedule).await
}

/// `concurrency` clients against `target`, each sending `per_client` requests one after another
/// as fast as it can; every request counts (its connection is set up before).
pub(crate) async fn count(
    target: &Target,
    body: &Bytes,
    concurrency: usize,
    per_client: usize,
) -> Figures {
    let start = Instant::now() + Duration::from_millis(200);
    let schedule = Schedule {
        start,
        window_start: start,
        window_end: start + Duration::from_secs(24 * 3600),
        max_requests: per_client,
    };
    drive(target, body, concurrency, schedule).await
}

async fn drive(target: &Target, body: &Bytes, concurrency: usize, schedule: Schedule) -> Figures {
    let window_start = schedule.window_start;
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let target = target.clone();
        let body = body.clone();
        clients.spawn(async move {
            match target {
                Target::Http { addr, path } => http_client(addr, &path, body, schedule).await,
                Target::WebSocket { url } => ws_client(&url, body, schedule).await,
            }
        });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut last_end = window_start;
    while let Some(client) = clients.join_next().await {
        let client = client.expect("a load client panicked");
        latencies.extend(client.latencies);
        errors += client.errors;
        first_error = first_error.or(client.first_error);
        last_end = last_end.max(client.last_end.unwrap_or(window_start));
    }
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let elapsed = last_end - window_start;
    Figures {
        requests: latencies.len(),
        errors,
        first_error,
        median: percentile(0.5),
        p99: percentile(0.99),
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        elapsed,
    }
}

async fn http_client(addr: SocketAddr, path: &str, body: Bytes, schedule: Schedule) -> Client {
    let mut client = Client::default();
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the server");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("an HTTP/1.1 connection");
    tokio::spawn(connection);
    tokio::time::sleep_until(schedule.start.into()).await;
    let mut sent = 0;
    loop {
        let began = Instant::now();
        if !schedule.goes_on(sent, began) {
            break;
        }
        sent += 1;
        let request = Request::post(path)
            .header("host", addr.to_string())
            .header("authorization", "Bearer sk-bench")
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .expect("a request");
        // The connection takes the next request only once it has seen the end of the last one.
        let sent = match sender.ready().await {
            Ok(()) => sender.send_request(request).await,
            Err(error) => Err(error),
        };
        let outcome = match sent {
            Ok(response) => {
                let status = response.status();
                match response.into_body().collect().await {
                    Ok(_) if status == StatusCode::OK => Ok(()),
                    Ok(_) => Err(format!("status {status}")),
                    Err(error) => Err(format!("body: {error}")),
                }
            }
            Err(error) => Err(format!("request: {error}")),
        };
        let failed = outcome.is_err();
        client.count(&schedule, began, Instant::now(), outcome);
        if failed {
            break;
        }
    }
    client
}

async fn ws_client(url: &str, body: Bytes, schedule: Schedule) -> Client {
    let mut client = Client::default();
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("a WebSocket to the server");
    let text = std::str::from_utf8(&body)
        .expect("a UTF-8 request")
        .to_owned();
    tokio::time::sleep_until(schedule.start.into()).await;
    let mut sent = 0;
    loop {
        let began = Instant::now();
        if !schedule.goes_on(sent, began) {
            break;
        }
        sent += 1;
        let outcome = async {
            socket
                .send(Message::text(text.clone()))
                .await
                .map_err(|error| format!("send: {error}"))?;
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(event))) if is_terminal(&event) => {
                        return if event.contains("\"type\":\"response.completed\"") {
                            Ok(())
                        } else {
                            Err(format!("terminal event {event}"))
                        };
                    }
                    Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {}
                    other => return Err(format!("read: {other:?}")),
                }
            }
        }
        .await;
        let failed = outcome.is_err();
        client.count(&schedule, began, Instant::now(), outcome);
        if failed {
            break;
        }
    }
    let _ = socket.close(None).await;
    client
}

fn is_terminal(event: &str) -> bool {
    [
        "\"type\":\"response.completed\"",
        "\"type\":\"response.failed\"",
        "\"type\":\"response.incomplete\"",
        "\"type\":\"error\"",
    ]
    .iter()
    .any(|kind| event.contains(kind))
}
