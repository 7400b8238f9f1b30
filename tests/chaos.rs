//! Chaos under load: 10,000 requests at concurrency 256 through the composed stack against a
//! loopback upstream whose WebSocket handshakes fail at random (30 %), whose WebSocket answers
//! are sometimes closed mid-stream or slow, and which now and then closes the connections the
//! pool holds. Every request is answered in full or gets a clear error, none is executed twice
//! (counted upstream per request id), the breaker's transitions are legal, and the pool's
//! connections, the registry's keys and the runtime's tasks return to their baseline.
//!
//! The figures go to stderr (`cargo test --test chaos -- --nocapture`); the longer soak is the
//! ignored test at the end (`cargo test --release --test chaos -- --ignored --nocapture`).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

mod support;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use support::{alive_tasks, error_chain, local_table, transport_headers};
use tokio::{sync::Semaphore, task::JoinSet};
use tower::ServiceExt;
use wsfirst::{
    RouteOptions, RouteService, Wsfirst,
    breaker::{BreakerConfig, BreakerRegistry, BreakerState},
    core::{Route, TransportMode},
    upstream::HttpUpstream,
    websocket::{
        Pool, WebSocketConfig,
        testing::{Answer, TestUpstream, WsScript},
    },
};

/// How long the test waits for anything to settle before failing with a message.
const SETTLE: Duration = Duration::from_secs(20);

/// The shape of one chaos run.
#[derive(Clone, Copy, Debug)]
struct Plan {
    requests: usize,
    concurrency: usize,
    /// Distinct credentials: one breaker key and one set of pooled connections each.
    credentials: usize,
    /// Share of WebSocket handshakes refused (500, 502, 503 or 429).
    refused: f64,
    /// Share of connections whose first answer is closed mid-stream (which also ends the
    /// connection).
    cut: f64,
    /// Share of connections whose answers are slow.
    slow: f64,
    /// How often the upstream closes every connection waiting for a request.
    close_every: Duration,
}

const CI: Plan = Plan {
    requests: 10_000,
    concurrency: 256,
    credentials: 32,
    refused: 0.30,
    cut: 0.07,
    slow: 0.10,
    close_every: Duration::from_millis(200),
};

/// A small deterministic generator (xorshift64*), so that a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// The scripts of the next `count` WebSocket connections, drawn from `plan`.
fn scripts(plan: &Plan, rng: &mut Rng, count: usize) -> Vec<WsScript> {
    (0..count)
        .map(|_| {
            if rng.chance(plan.refused) {
                let status = [500, 502, 503, 429][(rng.next() % 4) as usize];
                return WsScript::refuse(StatusCode::from_u16(status).unwrap(), "chaos");
            }
            if rng.chance(plan.cut) {
                return WsScript::CloseAfterEvents {
                    events: 1 + (rng.next() % 3) as usize,
                    code: 1011,
                };
            }
            if rng.chance(plan.slow) {
                return WsScript::SlowEvents {
                    delay: Duration::from_millis(1 + rng.next() % 5),
                };
            }
            WsScript::Accept
        })
        .collect()
}

/// The answer the upstream serves: a short stream (created, two deltas, completed), so that the
/// test's time goes to the failures rather than to JSON.
fn answer() -> Answer {
    let response =
        |status: &str| json!({"id": "resp_chaos", "object": "response", "status": status});
    Answer::events(vec![
        json!({"type": "response.created", "response": response("in_progress"), "sequence_number": 0}),
        json!({"type": "response.output_text.delta", "delta": "hello", "sequence_number": 1}),
        json!({"type": "response.output_text.delta", "delta": " world", "sequence_number": 2}),
        json!({"type": "response.completed", "response": response("completed"), "sequence_number": 3}),
    ])
}

/// What the breaker reported, in order.
type Transitions = Arc<Mutex<Vec<(String, BreakerState, BreakerState, Option<String>)>>>;

fn wsfirst(transitions: Transitions) -> Wsfirst {
    let registry = BreakerRegistry::builder()
        .config(
            BreakerConfig::builder()
                .consecutive_failures(10)
                .open_duration(Duration::from_millis(50))
                .max_open_duration(Duration::from_millis(400))
                .jitter(0.2)
                .build()
                .unwrap(),
        )
        .idle_timeout(Duration::from_millis(200))
        .on_transition(move |transition| {
            transitions.lock().unwrap().push((
                transition.key.to_string(),
                transition.from,
                transition.to,
                transition.cause.as_ref().map(ToString::to_string),
            ));
        })
        .build();
    Wsfirst::builder()
        .eligibility(local_table())
        .registry(registry)
        .pool(
            Pool::builder()
                .idle_timeout(Duration::from_millis(300))
                .max_connections_per_key(48)
                .build()
                .unwrap(),
        )
        .http_upstream(
            HttpUpstream::builder()
                .pool_idle_timeout(Duration::from_millis(300))
                .build()
                .unwrap(),
        )
        .build()
}

fn service(wsfirst: &Wsfirst, upstream: &TestUpstream) -> RouteService {
    let route = Route::builder("local", "responses")
        .ws_url(upstream.ws_url())
        .http_url(upstream.http_url())
        .mode(TransportMode::Auto)
        .build()
        .unwrap();
    let websocket = WebSocketConfig::builder()
        .handshake_timeout(Duration::from_secs(2))
        .first_event_timeout(Duration::from_secs(10))
        .idle_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wsfirst.route_with(route, RouteOptions::new().websocket(websocket))
}

/// How one request ended.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// The whole answer, over this transport, for this reason.
    Answered { transport: String, reason: String },
    /// The head, then the body failed with a clear mid-stream error of this kind.
    CutMidStream { kind: String },
    /// An error response with this status and code.
    Error { status: u16, code: String },
}

/// Sends request `id` and classifies what came back; a wrong answer panics.
async fn one(service: RouteService, id: usize, credential: usize, stream: bool) -> Outcome {
    let body = format!(r#"{{"model":"gpt-test","input":"chaos-{id}","stream":{stream}}}"#);
    let request = Request::post("/v1/responses")
        .header("authorization", format!("Bearer sk-chaos-{credential}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = tokio::time::timeout(SETTLE, service.oneshot(request))
        .await
        .unwrap_or_else(|_| panic!("request {id}: no answer within {SETTLE:?}"))
        .unwrap();
    let status = response.status();
    let (transport, reason) = transport_headers(&response);
    let read = tokio::time::timeout(SETTLE, response.into_body().collect())
        .await
        .unwrap_or_else(|_| panic!("request {id}: the body did not end within {SETTLE:?}"));
    match (status, read) {
        (StatusCode::OK, Ok(collected)) => {
            let bytes = collected.to_bytes();
            let answer = answer();
            let whole: Bytes = if stream {
                answer.sse().into()
            } else {
                answer.final_json().unwrap().to_owned().into()
            };
            assert_eq!(bytes, whole, "request {id}: a 200 answer must be whole");
            Outcome::Answered { transport, reason }
        }
        (StatusCode::OK, Err(error)) => {
            let text = error_chain(&error);
            assert!(
                text.contains("mid-stream"),
                "request {id}: a cut answer must say why: {text}"
            );
            let kind = ["closed", "timed out", "i/o", "protocol"]
                .into_iter()
                .find(|kind| text.contains(kind))
                .unwrap_or("other");
            Outcome::CutMidStream {
                kind: kind.to_owned(),
            }
        }
        (status, Ok(collected)) => {
            let json: serde_json::Value = serde_json::from_slice(&collected.to_bytes())
                .unwrap_or_else(|error| panic!("request {id}: error body not JSON: {error}"));
            let code = json["error"]["code"]
                .as_str()
                .unwrap_or_else(|| panic!("request {id}: error without a code: {json}"))
                .to_owned();
            Outcome::Error {
                status: status.as_u16(),
                code,
            }
        }
        (status, Err(error)) => panic!("request {id}: {status} whose body failed: {error}"),
    }
}

/// Waits (bounded) until `done` holds, naming `what` on failure.
async fn settle(what: &str, mut done: impl FnMut() -> bool) {
    let wait = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(SETTLE, wait).await.is_err() {
        panic!("{what} did not settle within {SETTLE:?}");
    }
}

/// Legal edges of the breaker's state machine (no manual pins here).
fn legal(from: BreakerState, to: BreakerState) -> bool {
    use BreakerState::*;
    matches!(
        (from, to),
        (Closed, Open) | (Open, HalfOpen) | (HalfOpen, Closed) | (HalfOpen, Open)
    )
}

/// The figures of one run.
#[derive(Debug, Default)]
struct Figures {
    outcomes: BTreeMap<Outcome, usize>,
    executions: BTreeMap<usize, usize>,
    handshakes: usize,
    ws_executions: usize,
    http_executions: usize,
    transitions: BTreeMap<(&'static str, &'static str), usize>,
    /// What opened a key, grouped.
    trip_causes: BTreeMap<String, usize>,
    tasks: (usize, usize, usize),
    pool: (usize, usize),
    keys: (usize, usize),
    elapsed: Duration,
}

/// The stack under test and what its breakers reported.
struct Stack {
    wsfirst: Wsfirst,
    transitions: Transitions,
}

impl Stack {
    fn new() -> Self {
        let transitions = Transitions::default();
        Self {
            wsfirst: wsfirst(Arc::clone(&transitions)),
            transitions,
        }
    }
}

/// Runs `plan` on a fresh stack, checks every promise, and checks that with the stack gone the
/// runtime is back to its tasks of before; returns the figures.
async fn run(plan: Plan, seed: u64) -> Figures {
    let (figures, stack) = run_on(plan, seed, Stack::new()).await;
    drop(stack);
    let before = figures.tasks.0;
    settle("the runtime's tasks", || alive_tasks() <= before).await;
    Figures {
        tasks: (before, figures.tasks.1, alive_tasks()),
        ..figures
    }
}

/// Runs `plan` on `stack` (against an upstream of its own) and checks every promise but the
/// tasks' return; gives the stack back.
async fn run_on(plan: Plan, seed: u64, stack: Stack) -> (Figures, Stack) {
    let started = std::time::Instant::now();
    let upstream = Arc::new(TestUpstream::start().await);
    upstream.set_answer(answer());
    let mut rng = Rng(seed);
    for script in scripts(&plan, &mut rng, plan.requests * 4) {
        upstream.push_ws_script(script);
    }
    stack.transitions.lock().unwrap().clear();
    let (wsfirst, transitions) = (&stack.wsfirst, &stack.transitions);
    let service = service(wsfirst, &upstream);

    let tasks_before = alive_tasks();
    let (pool_before, keys_before) = (wsfirst.pool().connections(), wsfirst.registry().len());

    // The upstream closes the connections the pool holds, now and then.
    let stop = Arc::new(AtomicBool::new(false));
    let closer = {
        let (upstream, stop) = (Arc::clone(&upstream), Arc::clone(&stop));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(plan.close_every).await;
                upstream.close_ws_connections();
            }
        })
    };

    let permits = Arc::new(Semaphore::new(plan.concurrency));
    let mut requests = JoinSet::new();
    // Each request's outcome, by id.
    let mut ended: Vec<Option<Outcome>> = vec![None; plan.requests];
    for id in 0..plan.requests {
        let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
        let service = service.clone();
        let credential = id % plan.credentials;
        let stream = id % 10 != 0;
        requests.spawn(async move {
            let outcome = one(service, id, credential, stream).await;
            drop(permit);
            (id, outcome)
        });
        while let Some(done) = requests.try_join_next() {
            let (id, outcome) = done.unwrap();
            ended[id] = Some(outcome);
        }
    }
    let rest = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(done) = requests.join_next().await {
            let (id, outcome) = done.unwrap();
            ended[id] = Some(outcome);
        }
    });
    rest.await.expect("every request ends");
    stop.store(true, Ordering::Relaxed);
    closer.await.unwrap();
    let ended: Vec<Outcome> = ended
        .into_iter()
        .map(|outcome| outcome.expect("every request has an outcome"))
        .collect();
    let mut outcomes: BTreeMap<Outcome, usize> = BTreeMap::new();
    for outcome in &ended {
        *outcomes.entry(outcome.clone()).or_default() += 1;
    }

    // No request executed twice: the upstream's count per request id.
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for captured in upstream.captured() {
        let id = captured.json().unwrap()["input"]
            .as_str()
            .unwrap()
            .to_owned();
        *per_id.entry(id).or_default() += 1;
    }
    let mut executions: BTreeMap<usize, usize> = BTreeMap::new();
    for (id, outcome) in ended.iter().enumerate() {
        let count = per_id.get(&format!("chaos-{id}")).copied().unwrap_or(0);
        *executions.entry(count).or_default() += 1;
        // Whoever got an answer, whole or cut, was executed exactly once.
        if matches!(
            outcome,
            Outcome::Answered { .. } | Outcome::CutMidStream { .. }
        ) {
            assert_eq!(count, 1, "request {id}: {outcome:?}");
        }
    }
    let twice: Vec<_> = per_id.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        twice.is_empty(),
        "{} requests executed more than once, such as {:?}",
        twice.len(),
        twice.iter().take(5).collect::<Vec<_>>()
    );

    // The breaker's transitions are legal and chain per key; nothing is left probing.
    let transitions = transitions.lock().unwrap().clone();
    let mut last: HashMap<&str, BreakerState> = HashMap::new();
    let mut edges: BTreeMap<(&'static str, &'static str), usize> = BTreeMap::new();
    let mut causes: BTreeMap<String, usize> = BTreeMap::new();
    for (key, from, to, cause) in &transitions {
        if let Some(cause) = cause {
            // "websocket handshake failed: upgrade answered with status 503: chaos" -> up to
            // the status, so that causes group.
            let cause = cause.split(':').take(2).collect::<Vec<_>>().join(":");
            let cause = cause
                .trim_end_matches(|c: char| c.is_ascii_digit())
                .to_owned();
            *causes.entry(cause).or_default() += 1;
        }
        assert!(
            legal(*from, *to),
            "{key}: illegal transition {from} -> {to}"
        );
        let previous = last.insert(key, *to).unwrap_or(BreakerState::Closed);
        assert_eq!(
            previous, *from,
            "{key}: transition from {from} after {previous}"
        );
        *edges.entry((from.as_str(), to.as_str())).or_default() += 1;
    }
    for key in wsfirst.breakers().snapshot() {
        assert_eq!(
            key.probes_in_flight, 0,
            "{}: a probe left in flight",
            key.key
        );
        let expected = last
            .get(key.key.to_string().as_str())
            .copied()
            .unwrap_or(BreakerState::Closed);
        assert_eq!(
            key.state, expected,
            "{}: state and transitions disagree",
            key.key
        );
    }

    // Back to baseline: the pool's connections (idle ones expire), the registry's keys (idle
    // ones are evicted), then, with the stack gone, the runtime's tasks.
    let pool_peak = wsfirst.pool().connections();
    settle("the pool's connections", || {
        wsfirst.pool().connections() == pool_before
    })
    .await;
    let keys_peak = wsfirst.registry().len();
    settle("the registry's keys", || {
        wsfirst.breakers().evict_idle();
        wsfirst.registry().len() == keys_before
    })
    .await;
    let tasks_peak = alive_tasks();
    let figures = Figures {
        outcomes,
        executions,
        handshakes: upstream.handshakes(),
        ws_executions: upstream.ws_requests(),
        http_executions: upstream.http_requests(),
        transitions: edges,
        trip_causes: causes,
        tasks: (tasks_before, tasks_peak, 0),
        pool: (pool_before, pool_peak),
        keys: (keys_before, keys_peak),
        elapsed: started.elapsed(),
    };
    drop(service);
    (figures, stack)
}

fn report(plan: &Plan, figures: &Figures) {
    eprintln!("chaos: {plan:?}");
    eprintln!("  elapsed {:?}", figures.elapsed);
    for (outcome, count) in &figures.outcomes {
        eprintln!("  {count:>6}  {outcome:?}");
    }
    eprintln!(
        "  upstream: {} handshakes, {} websocket executions, {} http executions",
        figures.handshakes, figures.ws_executions, figures.http_executions
    );
    eprintln!("  executions per request: {:?}", figures.executions);
    eprintln!("  breaker transitions: {:?}", figures.transitions);
    eprintln!("  what opened a key: {:?}", figures.trip_causes);
    eprintln!(
        "  pool connections before/after load/settled: {}/{}/{}",
        figures.pool.0, figures.pool.1, figures.pool.0
    );
    eprintln!(
        "  registry keys before/after load/settled: {}/{}/{}",
        figures.keys.0, figures.keys.1, figures.keys.0
    );
    eprintln!(
        "  alive tasks before/after load/after the stack was dropped: {}/{}/{}",
        figures.tasks.0, figures.tasks.1, figures.tasks.2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_through_chaos() {
    let figures = run(CI, 0x5eed_cafe).await;
    report(&CI, &figures);
    // The chaos happened: handshakes failed, answers were cut, the breaker moved.
    let cut: usize = figures
        .outcomes
        .iter()
        .filter(|(outcome, _)| matches!(outcome, Outcome::CutMidStream { .. }))
        .map(|(_, count)| count)
        .sum();
    assert!(cut > 0, "no answer was cut mid-stream");
    assert!(figures.http_executions > 0 && figures.ws_executions > 0);
    assert!(!figures.transitions.is_empty(), "the breaker never moved");
    // Every request was executed at most once; those that got a whole answer exactly once.
    assert!(figures.executions.keys().all(|count| *count <= 1));
}

/// The resident set size of this process, from `/proc/self/statm` (Linux), in KiB.
fn rss_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4)
}

/// The soak: the chaos plan again and again for `SOAK_SECS` seconds (default 180), memory
/// measured after the first round (warm) and after the last. Not in CI; its figures are in
/// BENCHMARKS.md (`cargo test --release --test chaos -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: run by hand for BENCHMARKS.md"]
async fn soak() {
    let seconds: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(180);
    let started = std::time::Instant::now();
    let mut rounds = 0;
    let mut requests = 0;
    let mut warm = None;
    let mut outcomes: BTreeMap<Outcome, usize> = BTreeMap::new();
    // One stack for the whole soak, as a gateway keeps it; each round has an upstream (so keys
    // and connections of finished rounds must go).
    let mut stack = Stack::new();
    while rounds == 0 || started.elapsed() < Duration::from_secs(seconds) {
        let (figures, kept) = run_on(CI, 0x5eed_cafe + rounds, stack).await;
        stack = kept;
        rounds += 1;
        requests += CI.requests;
        for (outcome, count) in figures.outcomes {
            *outcomes.entry(outcome).or_default() += count;
        }
        assert!(figures.executions.keys().all(|count| *count <= 1));
        if warm.is_none() {
            warm = rss_kib();
        }
        eprintln!(
            "soak: round {rounds}, {requests} requests, {:?}, rss {:?} KiB, alive tasks {}, pool connections {}, registry keys {}",
            started.elapsed(),
            rss_kib(),
            alive_tasks(),
            stack.wsfirst.pool().connections(),
            stack.wsfirst.registry().len(),
        );
    }
    eprintln!(
        "soak: {rounds} rounds, {requests} requests in {:?}; rss after the first round {:?} KiB, at the end {:?} KiB",
        started.elapsed(),
        warm,
        rss_kib()
    );
    for (outcome, count) in &outcomes {
        eprintln!("  {count:>8}  {outcome:?}");
    }
}
