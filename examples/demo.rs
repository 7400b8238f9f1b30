//! wsfirst in 15 seconds: a provider whose WebSocket upgrade fails, then heals.
//!
//! Run with `cargo run --example demo`. No arguments, no network, no set-up: it starts its own
//! fake Responses API upstream on `127.0.0.1` (both transports on one port), whose WebSocket
//! upgrade answers `500` for the first few seconds (the incident in the design notes) and then
//! starts accepting. It sends one streaming request every 250 ms through the full stack
//! (eligibility -> circuit breaker -> fallback -> WebSocket -> HTTP) and prints, for each one, the
//! transport and reason the stack reports (`x-wsfirst-transport` / `x-wsfirst-reason`), what the
//! upstream saw (a refused handshake, an accepted one, none) and the breaker's state. Breaker
//! durations are shortened (pinned for 2 s, then 4 s) so the whole story fits in about 12 s; it
//! finishes on its own with a summary.
//!
//! Part 2 then shows a client in the Responses API's WebSocket mode (what the official SDK's
//! `client.responses.connect()` does): one client socket to the gateway, three responses on it,
//! and the upstream's WebSocket cut under the second (see `wsfirst::client_ws`). It prints what
//! the client got and what the upstream executed for each response.
//!
//! Set `RUST_LOG=debug` to see every decision the layers log (default: `info`, which shows the
//! one WARN when the provider is pinned and the one INFO when it recovers).

use std::{
    io::{IsTerminal, Write},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::time::{Instant, MissedTickBehavior};
use tower::ServiceExt;
use tracing_subscriber::EnvFilter;
use wsfirst::{
    REASON_HEADER, RouteOptions, TRANSPORT_HEADER, Wsfirst,
    breaker::{BreakerConfig, BreakerRegistry, BreakerState, KeySnapshot, Transition},
    core::{BoxError, Route},
    eligibility::EligibilityTable,
    websocket::WebSocketConfig,
};
use wsfirst_websocket::testing::{Answer, TestUpstream, WsScript};

/// Requests sent, one every [`TICK`].
const REQUESTS: u32 = 48;
/// The pause between two requests.
const TICK: Duration = Duration::from_millis(250);
/// When the upstream's WebSocket endpoint heals.
const HEALS_AFTER: Duration = Duration::from_secs(6);
/// How long the first trip pins the provider to HTTP (the second one doubles it).
const OPEN_FOR: Duration = Duration::from_secs(2);
/// Failures in a row that pin the provider.
const FAILURES: u32 = 3;

/// One state change of the breaker, as the registry's callback saw it.
struct Seen {
    at: Instant,
    transition: Transition,
}

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("demo failed: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        .without_time()
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(std::io::stdout)
        .init();

    // 1. A fake provider on loopback whose WebSocket upgrade answers 500 (the endpoint is wrong).
    let upstream = Arc::new(TestUpstream::try_start().await?);
    upstream.set_answer(Answer::text("Hello from the upstream!"));
    upstream.set_default_ws_script(WsScript::refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "wrong websocket endpoint",
    ));

    // 2. The stack. The registry owns the breaker settings: shortened durations for this route's
    //    key. Its callback narrates each state change and keeps it for the summary; the library
    //    itself logs one WARN on pin and one INFO on recovery.
    let route = Route::builder("openai", "openai-responses")
        .ws_url(upstream.ws_url())
        .http_url(upstream.http_url())
        .build()?;
    let breaker = BreakerConfig::builder()
        .consecutive_failures(FAILURES)
        .open_duration(OPEN_FOR)
        .max_open_duration(OPEN_FOR * 4)
        .jitter(0.0)
        .build()?;
    let start = Instant::now();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let registry = {
        let seen = Arc::clone(&seen);
        BreakerRegistry::builder()
            .config_for(route.breaker_key(), breaker)
            .on_transition(move |transition| {
                narrate(transition, start);
                let mut seen = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                seen.push(Seen {
                    at: Instant::now(),
                    transition: transition.clone(),
                });
            })
            .build()
    };
    let wsfirst = Wsfirst::builder()
        .eligibility(
            EligibilityTable::builder()
                .allow("openai", "openai-responses")
                .build()?,
        )
        .registry(registry)
        .build();
    let websocket = WebSocketConfig::builder()
        .handshake_timeout(Duration::from_secs(2))
        .build()?;
    let service = wsfirst.route_with(route, RouteOptions::new().websocket(websocket));
    let handle = wsfirst.breakers();

    println!();
    println!("wsfirst demo: a provider whose WebSocket endpoint is broken, then fixed");
    println!("=======================================================================");
    println!("A fake OpenAI-style upstream runs on {}.", upstream.addr());
    println!("Its WebSocket upgrade answers HTTP 500 (a wrong endpoint); plain HTTP works.");
    println!(
        "It gets fixed after {}s. One streaming request every {}ms goes through the stack:",
        HEALS_AFTER.as_secs(),
        TICK.as_millis()
    );
    println!("  eligibility -> circuit breaker -> fallback -> websocket -> http");
    println!();
    println!("What to watch:");
    println!("  - each failed upgrade is replayed over HTTP at once: the caller never notices;");
    println!(
        "  - after {FAILURES} failures in a row the breaker pins the provider to HTTP: no more"
    );
    println!("    handshakes, one WARN instead of one per request;");
    println!("  - when the pin ends, one request probes the WebSocket; once it works, the");
    println!("    provider is unpinned and requests reuse one pooled connection.");
    println!();
    println!("Columns: the transport and reason the stack reports in the response headers");
    println!("(fallback = the upgrade failed and the request was replayed over HTTP; pinned =");
    println!("sent straight to HTTP by the breaker; websocket = served over the WebSocket), the");
    println!("handshake the upstream saw (500 refused, 101 accepted, - none: pinned or pooled).");
    println!();
    println!(
        "{:>3} {:>6}  {:<9} {:<9} {:<10} breaker after the request",
        "#", "time", "transport", "reason", "handshake"
    );

    // 3. Heal the upstream after a while, as the provider's operators would.
    let healer = {
        let upstream = Arc::clone(&upstream);
        tokio::spawn(async move {
            tokio::time::sleep(HEALS_AFTER).await;
            upstream.set_default_ws_script(WsScript::Accept);
            println!(
                "    ~~ {:>5.2}s  the provider fixes its WebSocket endpoint: upgrades now answer 101 ~~",
                start.elapsed().as_secs_f64()
            );
        })
    };

    // 4. Drive requests, one at a time.
    let mut per_transport = [0_u32; 2];
    let mut per_reason: Vec<(String, u32)> = Vec::new();
    let mut failed = 0_u32;
    let mut while_broken = 0_u32;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for number in 1..=REQUESTS {
        ticker.tick().await;
        let handshakes = upstream.handshakes();
        let accepted = upstream.ws_connections();
        let sent_at = start.elapsed();
        if sent_at < HEALS_AFTER {
            while_broken += 1;
        }

        let request = Request::post("/v1/responses")
            .header("authorization", "Bearer sk-demo")
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"model":"gpt-demo","input":"Say hello","stream":true}"#,
            ))?;
        let response = service.clone().oneshot(request).await?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        let (transport, reason) = (header(TRANSPORT_HEADER), header(REASON_HEADER));
        let body = response.into_body().collect().await?.to_bytes();
        let complete = body
            .windows(b"event: response.completed".len())
            .any(|window| window == b"event: response.completed");

        let handshake = match (
            upstream.handshakes() - handshakes,
            upstream.ws_connections() - accepted,
        ) {
            (0, _) => "-",
            (_, 0) => "500",
            _ => "101",
        };
        let breaker = handle
            .snapshot()
            .first()
            .map_or_else(|| "-".to_owned(), describe);
        println!(
            "{number:>3} {:>5.2}s  {transport:<9} {reason:<9} {handshake:<10} {breaker}",
            sent_at.as_secs_f64()
        );
        if !status.is_success() || !complete {
            failed += 1;
            println!("    !! status {status}, complete answer: {complete}");
        }
        match transport.as_str() {
            "websocket" => per_transport[0] += 1,
            _ => per_transport[1] += 1,
        }
        match per_reason.iter_mut().find(|(known, _)| *known == reason) {
            Some((_, count)) => *count += 1,
            None => per_reason.push((reason, 1)),
        }
        let _ = std::io::stdout().flush();
    }
    healer.await?;
    let elapsed = start.elapsed();

    // 5. The summary.
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    let pins = pins(&seen, Instant::now());
    let warnings = seen
        .iter()
        .filter(|seen| {
            seen.transition.from == BreakerState::Closed && seen.transition.to == BreakerState::Open
        })
        .count();
    let recovered = seen
        .iter()
        .rev()
        .find(|seen| {
            seen.transition.from == BreakerState::HalfOpen
                && seen.transition.to == BreakerState::Closed
        })
        .map(|seen| seen.at.duration_since(start));
    println!();
    println!("Summary after {:.1}s", elapsed.as_secs_f64());
    println!("---------------------");
    println!(
        "requests:            {REQUESTS} sent, {} answered in full, {failed} failed",
        REQUESTS - failed
    );
    println!(
        "served by:           websocket {}, http {}",
        per_transport[0], per_transport[1]
    );
    let reasons: Vec<String> = per_reason
        .iter()
        .map(|(reason, count)| format!("{reason} {count}"))
        .collect();
    println!("reasons:             {}", reasons.join(", "));
    println!(
        "upstream saw:        {} websocket handshakes ({} refused, {} accepted), {} websocket requests, {} http requests",
        upstream.handshakes(),
        upstream.handshakes() - upstream.ws_connections(),
        upstream.ws_connections(),
        upstream.ws_requests(),
        upstream.http_requests()
    );
    let lengths: Vec<String> = pins
        .iter()
        .map(|pin| format!("{:.1}s", pin.as_secs_f64()))
        .collect();
    println!(
        "time pinned to http: {:.1}s over {} pin(s): {}",
        pins.iter().sum::<Duration>().as_secs_f64(),
        pins.len(),
        lengths.join(", ")
    );
    match recovered {
        Some(at) => println!(
            "recovered:           yes, at {:.2}s ({:.2}s after the endpoint was fixed)",
            at.as_secs_f64(),
            at.saturating_sub(HEALS_AFTER).as_secs_f64()
        ),
        None => println!("recovered:           no"),
    }
    println!();
    println!(
        "Without the breaker, each of the {while_broken} requests sent while the endpoint was broken would have"
    );
    println!(
        "paid a failed handshake and logged a warning; with it: {} refused handshake{} and {warnings} WARN{}.",
        upstream.handshakes() - upstream.ws_connections(),
        plural(upstream.handshakes() - upstream.ws_connections()),
        plural(warnings)
    );
    if let Some(snapshot) = handle.snapshot().first() {
        println!();
        println!("The breaker key (the gateway's GET /admin/transport lists every key as JSON):");
        println!("  key:          {}", snapshot.key);
        println!(
            "  state:        {} (trips so far: {})",
            snapshot.state, snapshot.trips
        );
        if let Some(last) = &snapshot.last_failure {
            println!("  last failure: {}", last.message);
        }
    }
    client_session(&wsfirst, &service, &upstream).await?;
    wsfirst.shutdown().await;
    Ok(())
}

/// Part 2: a client in the Responses API's WebSocket mode keeps one socket to the gateway
/// while the upstream's WebSocket breaks under it. Every sentence it prints is read from what
/// happened: the events the client got and the upstream's counters around each response.
async fn client_session(
    wsfirst: &Wsfirst,
    service: &wsfirst::RouteService,
    upstream: &TestUpstream,
) -> Result<(), BoxError> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let clients = wsfirst.client_websocket(service, Default::default());
    let app = axum::Router::new().route(
        "/v1/responses",
        axum::routing::post_service(service.clone()).get_service(clients),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(wsfirst::serve::serve(
        listener,
        app,
        Default::default(),
        std::future::pending(),
    ));
    println!();
    println!("Part 2: a client in WebSocket mode (what `client.responses.connect()` does)");
    println!("=========================================================================");
    println!("The client opens ws://{addr}/v1/responses once and sends {TURNS} response.create");
    println!(
        "messages on it. Before response {CUT_TURN}, the upstream closes its WebSockets and its"
    );
    println!("next WebSocket connection is scripted to be cut after {CUT_AFTER} events.");
    println!();
    let (mut client, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/v1/responses")).await?;
    let mut turns = Vec::new();
    for turn in 1..=TURNS {
        if turn == CUT_TURN {
            upstream.push_ws_script(WsScript::CloseAfterEvents {
                events: CUT_AFTER,
                code: 1011,
            });
            upstream.close_ws_connections();
            // The close has reached the gateway's socket once the upstream's side is gone
            // (loopback): the gateway finds it before it writes the next request there, so the
            // cut falls on the scripted connection, not on the race with the close.
            wait_until(|| upstream.open_ws_connections() == 0).await?;
        }
        let before = Counters::of(upstream);
        let create =
            format!(r#"{{"type":"response.create","model":"gpt-demo","input":"turn {turn}"}}"#);
        client.send(Message::text(create)).await?;
        let mut events = 0;
        let ending = loop {
            let Some(message) =
                tokio::time::timeout(Duration::from_secs(10), client.next()).await?
            else {
                return Err(format!(
                    "the gateway closed the client's socket during response {turn}"
                )
                .into());
            };
            let Message::Text(text) = message? else {
                continue;
            };
            events += 1;
            let event: serde_json::Value = serde_json::from_str(text.as_str())?;
            match event["type"].as_str().unwrap_or_default() {
                "response.completed" => break Ending::Completed,
                "error" => {
                    break Ending::Error {
                        status: event["status"].to_string(),
                        code: event["error"]["code"].as_str().unwrap_or("-").to_owned(),
                    };
                }
                _ => {}
            }
        };
        let seen = Counters::of(upstream).since(before);
        let output = events - 1;
        let ending_text = match &ending {
            Ending::Completed => "response.completed".to_owned(),
            Ending::Error { status, code } => format!("an error event (status {status}, {code})"),
        };
        println!(
            "  response {turn}: {events:>2} messages, ending with {ending_text}; the upstream saw {}",
            seen.describe()
        );
        turns.push((turn, output, ending, seen));
    }
    println!();
    let open = wsfirst.client_connections().open();
    println!(
        "The client's one socket carried all {TURNS} responses (client connections open now: {open})."
    );
    for (index, (turn, output, ending, seen)) in turns.iter().enumerate() {
        if let Ending::Error { code, .. } = ending {
            let executed = match seen.websocket_requests + seen.http_requests {
                1 => "once: not replayed".to_owned(),
                times => format!("{times} times"),
            };
            println!(
                "Response {turn} failed with {code} after {output} events of output; the upstream executed it {executed}."
            );
            if let Some((next, _, Ending::Completed, after)) = turns.get(index + 1) {
                let connection = match after.connections {
                    0 => "the same upstream connection".to_owned(),
                    1 => "a fresh upstream connection".to_owned(),
                    n => format!("{n} fresh upstream connections"),
                };
                println!("Response {next} was served in full over {connection}.");
            }
        }
    }
    if turns
        .iter()
        .all(|(_, _, ending, _)| matches!(ending, Ending::Completed))
    {
        println!("Every response was served in full: the cut did not fall on a response.");
    }
    client.close(None).await?;
    server.abort();
    Ok(())
}

/// Responses the client of part 2 sends.
const TURNS: u32 = 3;
/// The response before which the upstream's WebSocket is cut.
const CUT_TURN: u32 = 2;
/// The events the scripted upstream connection sends before the cut.
const CUT_AFTER: usize = 3;

/// How one client response ended.
enum Ending {
    Completed,
    Error { status: String, code: String },
}

/// The upstream's counters, and their differences around one response.
#[derive(Clone, Copy)]
struct Counters {
    connections: usize,
    websocket_requests: usize,
    http_requests: usize,
}

impl Counters {
    fn of(upstream: &TestUpstream) -> Self {
        Self {
            connections: upstream.ws_connections(),
            websocket_requests: upstream.ws_requests(),
            http_requests: upstream.http_requests(),
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            connections: self.connections - before.connections,
            websocket_requests: self.websocket_requests - before.websocket_requests,
            http_requests: self.http_requests - before.http_requests,
        }
    }

    fn describe(self) -> String {
        format!(
            "{} new websocket connection{}, {} websocket request{}, {} http request{}",
            self.connections,
            plural(self.connections),
            self.websocket_requests,
            plural(self.websocket_requests),
            self.http_requests,
            plural(self.http_requests),
        )
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// Waits (up to 5 s) until `done` holds.
async fn wait_until(done: impl Fn() -> bool) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        if Instant::now() > deadline {
            return Err("the upstream did not close its websocket connections".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// The breaker's state in a few words.
fn describe(snapshot: &KeySnapshot) -> String {
    match snapshot.state {
        BreakerState::Closed if snapshot.consecutive_failures == 0 => "closed".to_owned(),
        BreakerState::Closed => format!(
            "closed, {} failure{} in a row",
            snapshot.consecutive_failures,
            if snapshot.consecutive_failures == 1 {
                ""
            } else {
                "s"
            }
        ),
        BreakerState::Open => match snapshot.until_secs {
            Some(left) => format!("open: pinned to http, {left:.1}s left"),
            None => "open: pinned by hand".to_owned(),
        },
        BreakerState::HalfOpen => "half-open: probing".to_owned(),
    }
}

/// Prints a state change in plain language as it happens.
fn narrate(transition: &Transition, start: Instant) {
    let at = start.elapsed().as_secs_f64();
    let text = match (transition.from, transition.to) {
        (_, BreakerState::Open) => {
            let pinned_for = transition.until.map(|until| {
                until
                    .saturating_duration_since(Instant::now())
                    .as_secs_f64()
            });
            let cause = transition
                .cause
                .as_ref()
                .map_or_else(String::new, |cause| format!(" after \"{cause}\""));
            format!(
                "breaker OPEN{cause}: the provider is pinned to HTTP for {:.1}s, no handshakes meanwhile",
                pinned_for.unwrap_or_default()
            )
        }
        (_, BreakerState::HalfOpen) => {
            "breaker HALF-OPEN: the pin is over, the next request probes the WebSocket".to_owned()
        }
        (_, BreakerState::Closed) => {
            "breaker CLOSED: the probe got its first event over the WebSocket, provider unpinned"
                .to_owned()
        }
    };
    println!("    >> {at:>5.2}s  {text}");
}

/// How long each pin lasted (the last one until `now` if it still runs).
fn pins(seen: &[Seen], now: Instant) -> Vec<Duration> {
    let mut pins = Vec::new();
    let mut opened: Option<Instant> = None;
    for seen in seen {
        if seen.transition.to == BreakerState::Open {
            opened.get_or_insert(seen.at);
        } else if let Some(since) = opened.take() {
            pins.push(seen.at.duration_since(since));
        }
    }
    if let Some(since) = opened {
        pins.push(now.duration_since(since));
    }
    pins
}
