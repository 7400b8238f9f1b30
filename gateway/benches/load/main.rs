//! The gateway the way users run it: the optimised `wsfirst-gateway` binary as its own process on
//! 127.0.0.1, driven by a load generator over real sockets (`concurrency` clients, each on its
//! own keep-alive connection), against the test kit's upstream on 127.0.0.1 answering a
//! 20-event stream (or, without `"stream": true`, the JSON answer).
//!
//! Cases, each at concurrency 1, 64 and 256:
//!
//! - `direct_http`, `direct_websocket`: the upstream without anything in between, over HTTP and
//!   over its WebSocket mode (one `response.create` after another on one socket per client);
//! - `minimal_proxy`: a minimal hyper reverse proxy (this binary again, as a child process):
//!   the floor of any proxy;
//! - `gateway_http_only`: a route in mode `http`;
//! - `gateway_websocket`: a healthy `auto` route (pooled WebSockets upstream);
//! - `gateway_pinned`: an `auto` route whose upstream refuses every upgrade with `500`, pinned
//!   to HTTP by its breaker;
//! - `gateway_refused_no_breaker`: the same upstream without a breaker: every request tries the
//!   upgrade, is refused and is replayed over HTTP (the incident's behaviour);
//! - `gateway_client_ws_websocket`, `gateway_client_ws_http_only`: a client in WebSocket mode
//!   (one `response.create` after another on one socket to the gateway, as
//!   `client.responses.connect()` does), served upstream over the pooled WebSocket or over HTTP.
//!
//! Figures: median and p99 latency, requests per second, and for the proxies (gateway and
//! minimal proxy, separate processes) their CPU time per request from `/proc/<pid>/stat` (10 ms
//! ticks over the window). The load generator and the upstream share this process's 2-worker
//! runtime, so on a 2-core machine every party competes for the same cores, as it does in a
//! sidecar deployment; compare figures side by side within one run.
//!
//! Then memory: the gateway's resident set fresh, with its pool holding idle WebSockets, and with
//! 1,000 streams in flight (the upstream slowed to 50 ms per event) and after they end.
//!
//! `cargo bench -p wsfirst-gateway --bench load` (all cases, about 90 s), or
//! `cargo bench -p wsfirst-gateway --bench load -- gateway`
//! for the cases whose name contains `gateway` (several, comma-separated: `-- minimal,http_only`); `WSFIRST_LOAD_WINDOW_MS=20000` holds each case
//! for 20 s (to profile the gateway: `perf record -g -p $(pgrep -f release/wsfirst-gateway)`);
//! `WSFIRST_LOAD_GATEWAY=<path>` measures another gateway binary (an older build) instead. Cargo builds the
//! gateway binary with the benchmark (the `bench` profile, optimised as `release`). Nothing is asserted on time; each case is checked
//! once (status, `x-wsfirst-reason`, bytes) before it is measured.

mod callgrind;
mod child;
mod drive;
mod proxy;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};
use wsfirst::websocket::testing::{Answer, TestUpstream, WsScript};

use crate::{
    child::{Server, TICK_MICROS, cpu_ticks, resident_kib},
    drive::{Figures, Target},
};

const WARM_UP: Duration = Duration::from_millis(300);
const WINDOW: Duration = Duration::from_millis(1500);
/// Overrides [`WINDOW`] (in milliseconds), to hold a case under load long enough to profile it.
const WINDOW_ENV: &str = "WSFIRST_LOAD_WINDOW_MS";
const CONCURRENCY: [usize; 3] = [1, 64, 256];
/// Output text deltas of the answer: with the other events, a 20-event stream.
const DELTAS: usize = 12;
const IN_FLIGHT: usize = 1000;
/// Idle WebSockets put in the gateway's pool to weigh them (the pool's default idle cap).
const POOLED: usize = 256;

const STREAM_BODY: &str = r#"{"model":"gpt-kit","input":"hi","stream":true}"#;
const JSON_BODY: &str = r#"{"model":"gpt-kit","input":"hi"}"#;
const WS_BODY: &str = r#"{"type":"response.create","model":"gpt-kit","input":"hi"}"#;

fn main() {
    if let Ok(upstream) = std::env::var(proxy::ROLE_ENV) {
        return proxy::run(upstream);
    }
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with("--"));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run(filter));
}

/// One row of the matrix.
struct Case {
    name: &'static str,
    target: Target,
    body: &'static str,
    /// The `x-wsfirst-reason` the gateway must answer with; `None` for the others.
    reason: Option<&'static str>,
    /// The process whose CPU time is charged to the requests.
    server: Option<u32>,
}

async fn run(filter: Option<String>) {
    let healthy = TestUpstream::start().await;
    let refusing = TestUpstream::start().await;
    let answer = twenty_events();
    healthy.set_answer(answer.clone());
    refusing.set_answer(answer.clone());
    refusing.set_default_ws_script(WsScript::refuse(StatusCode::INTERNAL_SERVER_ERROR, "down"));

    let count = std::env::var(callgrind::COUNT_ENV)
        .ok()
        .and_then(|count| count.parse::<usize>().ok());
    let callgrind = callgrind::directory();
    let config = std::env::temp_dir().join(format!("wsfirst-load-{}.toml", std::process::id()));
    let mut text = gateway_config(&healthy, &refusing);
    if count.is_some() {
        text = for_any_gateway(&text);
    }
    std::fs::write(&config, text).expect("write the config");
    let start = |binary: &std::path::Path| match &callgrind {
        Some(directory) => callgrind::wrap(binary, directory),
        None => Command::new(binary),
    };
    let mut command = start(&child::gateway_binary());
    command.arg(&config);
    let gateway = Server::start(command);
    let mut command = start(&std::env::current_exe().expect("this binary"));
    command.env(proxy::ROLE_ENV, healthy.addr().to_string());
    let minimal = Server::start(command);

    if let Some(count) = count {
        count_instructions(&filter, &healthy, &gateway, &minimal, count, &answer).await;
        let _ = std::fs::remove_file(&config);
        return;
    }

    // One request first, so that the fresh figure includes what the first request sets up.
    fill_one(&gateway).await;
    let fresh = resident_kib(gateway.pid());
    let pooled = fill_the_pool(&gateway, &healthy).await;
    let with_pool = resident_kib(gateway.pid());

    let window = std::env::var(WINDOW_ENV)
        .ok()
        .and_then(|millis| millis.parse().ok())
        .map_or(WINDOW, Duration::from_millis);
    let cases = cases(&healthy, &gateway, &minimal);
    println!(
        "| case | answer | concurrency | median | p99 | requests/s | CPU/request | errors |\n|---|---|---|---|---|---|---|---|"
    );
    for case in cases.iter().filter(|case| {
        filter
            .as_deref()
            .is_none_or(|filter| filter.split(',').any(|part| case.name.contains(part)))
    }) {
        check(case, &answer).await;
        for concurrency in CONCURRENCY {
            let before = case.server.map(cpu_ticks);
            let figures = drive::run(
                &case.target,
                &Bytes::from_static(case.body.as_bytes()),
                concurrency,
                WARM_UP,
                window,
            )
            .await;
            let cpu = case.server.zip(before).map(|(pid, before)| {
                // The ticks of the warm-up are charged pro rata: the counter is read around the
                // whole run.
                let ticks = (cpu_ticks(pid) - before) as f64;
                let share =
                    figures.elapsed.as_secs_f64() / (figures.elapsed + WARM_UP).as_secs_f64();
                ticks * share * TICK_MICROS / figures.requests.max(1) as f64
            });
            print_row(case, concurrency, &figures, cpu);
            if let Some(error) = &figures.first_error {
                eprintln!("{} at {concurrency}: first error: {error}", case.name);
            }
        }
    }

    let after_load = resident_kib(gateway.pid());
    healthy.set_default_ws_script(WsScript::SlowEvents {
        delay: Duration::from_millis(50),
    });
    let (in_flight, after) = streams_in_flight(&gateway, &healthy).await;
    println!(
        "\ngateway resident memory: after one request {fresh} KiB; with {pooled} idle \
         pooled WebSockets {with_pool} KiB (about {} bytes each); after the matrix {after_load} KiB; with \
         {IN_FLIGHT} streams in flight {in_flight} KiB; after they ended {after} KiB",
        (with_pool.saturating_sub(fresh) * 1024) / pooled.max(1) as u64,
    );
    let _ = std::fs::remove_file(&config);
}

/// The answer of every case: `response.created`, `response.in_progress`, the item and part
/// openings, [`DELTAS`] text deltas, the closings and `response.completed`.
fn twenty_events() -> Answer {
    let text: String = (0..DELTAS).map(|n| format!("word{n} ")).collect();
    let events: Vec<Value> = Answer::text(&text)
        .messages()
        .iter()
        .map(|message| serde_json::from_str(message).expect("kit events are JSON"))
        .collect();
    let delta = events
        .iter()
        .find(|event| event["type"] == "response.output_text.delta")
        .expect("a delta event")
        .clone();
    let mut rebuilt: Vec<Value> = Vec::new();
    for event in events {
        if event["type"] == "response.output_text.delta" {
            if rebuilt.last().map(|last| &last["type"])
                != Some(&json!("response.output_text.delta"))
            {
                rebuilt.extend((0..DELTAS).map(|n| {
                    let mut delta = delta.clone();
                    delta["delta"] = json!(format!("word{n} "));
                    delta
                }));
            }
        } else {
            rebuilt.push(event);
        }
    }
    for (number, event) in rebuilt.iter_mut().enumerate() {
        event["sequence_number"] = json!(number);
    }
    assert_eq!(rebuilt.len(), 20, "a 20-event answer");
    Answer::events(rebuilt)
}

/// The configuration without the pool's per-key cap (count mode stays under the default) and
/// with the breaker's first name for `open_duration`, so that gateway binaries of any age take it.
fn for_any_gateway(config: &str) -> String {
    config
        .lines()
        .filter(|line| !line.starts_with("max_connections_per_key"))
        .map(|line| line.replace("open_duration", "open_for"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Count mode: each selected case sends a warm-up and then exactly `count` requests from
/// [`callgrind::COUNT_CONCURRENCY`] clients; under callgrind, the server's instructions per
/// counted request.
async fn count_instructions(
    filter: &Option<String>,
    healthy: &TestUpstream,
    gateway: &Server,
    minimal: &Server,
    count: usize,
    answer: &Answer,
) {
    let concurrency = std::env::var(callgrind::COUNT_CONCURRENCY_ENV)
        .ok()
        .and_then(|clients| clients.parse().ok())
        .unwrap_or(callgrind::COUNT_CONCURRENCY);
    let per_client = count.div_ceil(concurrency);
    let directory = callgrind::directory();
    println!(
        "| case | answer | clients | requests | instructions/request |\n|---|---|---|---|---|"
    );
    for case in cases(healthy, gateway, minimal).iter().filter(|case| {
        filter
            .as_deref()
            .is_none_or(|filter| filter.split(',').any(|part| case.name.contains(part)))
    }) {
        check(case, answer).await;
        let body = Bytes::from_static(case.body.as_bytes());
        drive::count(&case.target, &body, concurrency, per_client.min(50)).await;
        if let (Some(pid), Some(_)) = (case.server, &directory) {
            callgrind::zero(pid);
        }
        let figures = drive::count(&case.target, &body, concurrency, per_client).await;
        let instructions = case
            .server
            .zip(directory.as_deref())
            .map(|(pid, directory)| callgrind::dump(pid, directory));
        let per_request = instructions.map_or("-".to_owned(), |total| {
            format!("{:.0}", total as f64 / figures.requests.max(1) as f64)
        });
        let kind = if case.body == JSON_BODY {
            "json"
        } else {
            "stream"
        };
        println!(
            "| {} | {kind} | {concurrency} | {} ({} errors) | {per_request} |",
            case.name, figures.requests, figures.errors
        );
    }
}

fn gateway_config(healthy: &TestUpstream, refusing: &TestUpstream) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"

[eligibility]
websocket_pairs = [["local", "responses"]]

[[routes]]
path = "/ws/v1/responses"
provider = "local"
api = "responses"
http_url = "{http}"
ws_url = "{ws}"

# Room for every client of the largest run on its own WebSocket (the default is 32 per key);
# the affinity header gives the pool-weighing requests a connection each.
[routes.pool]
max_connections_per_key = 1024
affinity_header = "x-bench-session"

[[routes]]
path = "/http/v1/responses"
provider = "local"
api = "responses"
http_url = "{http}"
mode = "http"

# Pinned by its first failure, for longer than the run.
[[routes]]
path = "/pinned/v1/responses"
provider = "local"
api = "responses"
http_url = "{refusing_http}"
ws_url = "{refusing_ws_by_name}"

[routes.breaker]
consecutive_failures = 1
open_duration = "30m"

[[routes]]
path = "/refused/v1/responses"
provider = "local"
api = "responses"
http_url = "{refusing_http}"
ws_url = "{refusing_ws}"

[routes.breaker]
enabled = false
"#,
        http = healthy.http_url(),
        ws = healthy.ws_url(),
        refusing_http = refusing.http_url(),
        refusing_ws = refusing.ws_url(),
        refusing_ws_by_name = refusing.ws_url().replace("127.0.0.1", "localhost"),
    )
}

fn cases(healthy: &TestUpstream, gateway: &Server, minimal: &Server) -> Vec<Case> {
    let http = |addr, path: &str| Target::Http {
        addr,
        path: path.to_owned(),
    };
    let upstream_path = healthy
        .http_url()
        .parse::<http::Uri>()
        .expect("the upstream's url")
        .path()
        .to_owned();
    let direct = http(healthy.addr(), &upstream_path);
    let proxied = http(minimal.addr, &upstream_path);
    let routes = [
        ("gateway_http_only", "/http/v1/responses", "mode_http"),
        ("gateway_websocket", "/ws/v1/responses", "websocket"),
        ("gateway_pinned", "/pinned/v1/responses", "pinned"),
        (
            "gateway_refused_no_breaker",
            "/refused/v1/responses",
            "fallback",
        ),
    ];
    let mut cases = Vec::new();
    for (body, kind) in [(STREAM_BODY, "stream"), (JSON_BODY, "json")] {
        cases.push(Case {
            name: "direct_http",
            target: direct.clone(),
            body,
            reason: None,
            server: None,
        });
        if kind == "stream" {
            cases.push(Case {
                name: "direct_websocket",
                target: Target::WebSocket {
                    url: healthy.ws_url(),
                },
                body: WS_BODY,
                reason: None,
                server: None,
            });
            // Clients in WebSocket mode: `response.create` messages on a WebSocket to the
            // gateway (what `client.responses.connect()` opens), served upstream over the pooled
            // WebSocket or over HTTP.
            for (name, path) in [
                ("gateway_client_ws_websocket", "/ws/v1/responses"),
                ("gateway_client_ws_http_only", "/http/v1/responses"),
            ] {
                cases.push(Case {
                    name,
                    target: Target::WebSocket {
                        url: format!("ws://{}{path}", gateway.addr),
                    },
                    body: WS_BODY,
                    reason: None,
                    server: Some(gateway.pid()),
                });
            }
        }
        cases.push(Case {
            name: "minimal_proxy",
            target: proxied.clone(),
            body,
            reason: None,
            server: Some(minimal.pid()),
        });
        for (name, path, reason) in routes {
            cases.push(Case {
                name,
                target: http(gateway.addr, path),
                body,
                reason: Some(reason),
                server: Some(gateway.pid()),
            });
        }
    }
    cases
}

/// Checks one request of `case` (and, for the pinned route, pins it): the status, the reason
/// header, and the bytes of the answer.
async fn check(case: &Case, answer: &Answer) {
    let Target::Http { addr, path } = &case.target else {
        return;
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let stream = case.body.contains("\"stream\":true");
    let expected = if stream {
        answer.sse()
    } else {
        answer.final_json().expect("a terminal event").to_owned()
    };
    // The pinned route needs its first failure before it answers "pinned".
    for attempt in 0..3 {
        let request = Request::post(format!("http://{addr}{path}"))
            .header("authorization", "Bearer sk-bench")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(case.body.as_bytes())))
            .expect("a request");
        let response = client.request(request).await.expect("an answer");
        let status = response.status();
        let reason = response
            .headers()
            .get("x-wsfirst-reason")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.into_body().collect().await.expect("the body");
        if reason.as_deref() != case.reason && attempt < 2 {
            continue;
        }
        assert_eq!(status, StatusCode::OK, "{}", case.name);
        assert_eq!(reason.as_deref(), case.reason, "{}", case.name);
        if stream {
            assert_eq!(body.to_bytes(), expected.as_bytes(), "{}", case.name);
        } else {
            let got: Value = serde_json::from_slice(&body.to_bytes()).expect("a JSON answer");
            let want: Value = serde_json::from_str(&expected).expect("the kit's JSON");
            assert_eq!(got, want, "{}", case.name);
        }
        return;
    }
}

fn print_row(case: &Case, concurrency: usize, figures: &Figures, cpu: Option<f64>) {
    let kind = if case.body == JSON_BODY {
        "json"
    } else {
        "stream"
    };
    let cpu = cpu.map_or("-".to_owned(), |micros| format!("{micros:.0} µs"));
    println!(
        "| {} | {kind} | {concurrency} | {:.0} µs | {:.0} µs | {:.0} | {cpu} | {} |",
        case.name,
        figures.median.as_secs_f64() * 1e6,
        figures.p99.as_secs_f64() * 1e6,
        figures.per_second,
        figures.errors,
    );
}

/// [`POOLED`] streaming requests one after another on the WebSocket route, each with its own
/// affinity header value, so that each leaves its own upstream WebSocket idle in the pool (one
/// at a time: the allocator's high-water mark stays that of one request). Returns how many the
/// upstream sees open.
async fn fill_one(gateway: &Server) {
    let target = Target::Http {
        addr: gateway.addr,
        path: "/ws/v1/responses".to_owned(),
    };
    drive::one_each(&target, &Bytes::from_static(STREAM_BODY.as_bytes()), 1).await;
}

async fn fill_the_pool(gateway: &Server, upstream: &TestUpstream) -> usize {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    for session in 0..POOLED {
        let request = Request::post(format!("http://{}/ws/v1/responses", gateway.addr))
            .header("authorization", "Bearer sk-bench")
            .header("content-type", "application/json")
            .header("x-bench-session", session.to_string())
            .body(Full::new(Bytes::from_static(STREAM_BODY.as_bytes())))
            .expect("a request");
        let response = client.request(request).await.expect("an answer");
        assert_eq!(response.status(), StatusCode::OK, "pool filling");
        response.into_body().collect().await.expect("the body");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    upstream.open_ws_connections()
}

/// [`IN_FLIGHT`] streaming requests at once on the WebSocket route, against the slowed upstream:
/// the gateway's resident memory once the upstream has received all of them, and after they end.
async fn streams_in_flight(gateway: &Server, upstream: &TestUpstream) -> (u64, u64) {
    let before = upstream.ws_requests();
    let target = Target::Http {
        addr: gateway.addr,
        path: "/ws/v1/responses".to_owned(),
    };
    let load = tokio::spawn(async move {
        drive::one_each(
            &target,
            &Bytes::from_static(STREAM_BODY.as_bytes()),
            IN_FLIGHT,
        )
        .await
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while upstream.ws_requests() - before < IN_FLIGHT && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let in_flight = resident_kib(gateway.pid());
    let figures = load.await.expect("the load ran");
    assert_eq!(figures.errors, 0, "every stream in flight was served");
    tokio::time::sleep(Duration::from_millis(500)).await;
    (in_flight, resident_kib(gateway.pid()))
}
