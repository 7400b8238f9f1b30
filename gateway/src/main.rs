//! An axum gateway in front of LLM providers, configured by a TOML file.
//!
//! ```text
//! cargo run --release --example gateway -- gateway.toml   # OpenAI's public endpoints
//! cargo run --release --example gateway                   # offline, its own upstream
//! ```
//!
//! With a file, the routes, eligibility table and breaker settings come from it (the reference is
//! in the `wsfirst::config` docs; `examples/gateway.toml` is a starting point for OpenAI, and a
//! relative name that does not exist is also looked for in `examples/`, so `gateway.toml` finds
//! it). With
//! no argument it runs on an embedded configuration whose upstream is a fake Responses API on
//! `127.0.0.1` started in-process (no network, no key needed), plus two extra endpoints to play
//! with: `POST /demo/websocket/break` makes the upstream refuse WebSocket upgrades with `500`
//! (and drops its open WebSockets), `POST /demo/websocket/heal` accepts them again.
//!
//! Endpoints:
//!
//! - `POST <route path>` (such as `/v1/responses`): a Responses API request. Server-sent events
//!   back when the body has `"stream": true`, JSON otherwise, the same bytes whichever transport
//!   served upstream; headers `x-wsfirst-transport` and `x-wsfirst-reason` say which and why. The
//!   client's `Authorization` header is forwarded upstream on both transports and never logged.
//!
//! On the admin listener only (`[admin] listen`, such as `127.0.0.1:9091`; none without an
//! `[admin]` table; with `token_env`, every request needs `Authorization: Bearer <token>` or gets
//! `401`):
//!
//! - `GET /admin/transport`: every breaker key as JSON; `POST /admin/transport/pin` with
//!   `{"key": "...", "for": "10m"}` (`for` optional: until unpinned); `POST
//!   /admin/transport/unpin` with `{"key": "..."}`.
//! - `GET /metrics`: Prometheus text (`wsfirst_*` metrics).
//!
//! Point an OpenAI SDK at it with `base_url = "http://127.0.0.1:8080/v1"`. The log level comes
//! from `RUST_LOG` (default `info`: one WARN when a provider is pinned, one INFO when it
//! recovers); `RUST_LOG=info,gateway=debug` adds one line per request and a `request` span
//! (method, path) around what the layers log while serving it; `gateway=trace` also logs each
//! request's headers, with credentials (`authorization`, `cookie`, `x-api-key`...) shown as
//! `Sensitive`. Both come from tower-http's `TraceLayer`. On SIGINT or SIGTERM it
//! stops accepting connections, lets requests in flight (streams included) finish for up to the
//! grace period (`[server] shutdown_grace`, 10 s by default), closes the connections still open
//! after it, sends a close frame (1001) on every client WebSocket and every pooled WebSocket,
//! and logs how many of its tasks were left when it stopped (none, when
//! all went well). A bad file or an unusable address exits with status 1 and a message
//! naming what is wrong.

use std::{
    ffi::OsString,
    io::{IsTerminal, Write},
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use axum::{
    Router,
    extract::Request,
    http::{HeaderName, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::{net::TcpListener, sync::oneshot};
use tower_http::{sensitive_headers::SetSensitiveRequestHeadersLayer, trace::TraceLayer};
use tracing::Span;
use tracing_subscriber::{
    EnvFilter,
    filter::{LevelFilter, filter_fn},
    prelude::*,
};
use wsfirst::{
    Configured, REASON_HEADER, TRANSPORT_HEADER,
    config::{Config, ConfigError},
    core::BoxError,
};
use wsfirst_websocket::testing::{TestUpstream, WsScript};

/// Where the gateway listens when the configuration has no `listen` key.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// How long the pooled WebSockets' close frames (each bounded by one second) and the last tasks
/// may take once the server stopped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How often the Prometheus recorder drains its histograms.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

const USAGE: &str = "usage: gateway [CONFIG.toml]

With a file, serves the routes it describes (see examples/gateway.toml).
Without one, serves an embedded configuration over a fake upstream on 127.0.0.1.";

/// The embedded configuration: `{http}` and `{ws}` become the loopback upstream's URLs.
const EMBEDDED: &str = r#"
listen = "127.0.0.1:8080"

# Breakers and metrics, on loopback only, never on the public listener.
[admin]
listen = "127.0.0.1:9091"

[eligibility]
websocket_pairs = [["openai", "openai-responses"]]

# Tries the WebSocket first, falls back to HTTP, pins to HTTP after 3 failures in a row.
[[routes]]
path = "/v1/responses"
provider = "openai"
api = "openai-responses"
http_url = "{http}"
ws_url = "{ws}"
mode = "auto"

[routes.breaker]
consecutive_failures = 3
open_for = "30s"

# Not in websocket_pairs: always HTTP (reason `unknown_provider`).
[[routes]]
path = "/codex/v1/responses"
provider = "openai-codex"
api = "openai-codex-responses"
http_url = "{http}"
"#;

#[tokio::main]
async fn main() -> ExitCode {
    // `RUST_LOG` chooses the level, but no value of it can print a credential: the events that may
    // carry one are dropped by a filter of their own (see `wsfirst::logging`).
    let levels = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The credential filter passes on the level filter's most verbose level: without that hint
    // the process-wide maximum would be TRACE, and every `log` record of the libraries (a few
    // per WebSocket frame at trace level) would be built and filtered one by one.
    let most_verbose = levels.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(levels)
        .with_filter(
            filter_fn(|event| {
                !wsfirst::logging::may_carry_credentials(event.target(), *event.level())
            })
            .with_max_level_hint(most_verbose),
        );
    tracing_subscriber::registry().with(logs).init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gateway: {error}");
            ExitCode::from(1)
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let mut args = std::env::args_os().skip(1);
    let path = args.next().map(PathBuf::from);
    if let Some(extra) = args.next() {
        return Err(format!("unexpected argument {extra:?}\n{USAGE}").into());
    }
    if path
        .as_deref()
        .is_some_and(|path| path.as_os_str() == "-h" || path.as_os_str() == "--help")
    {
        println!("{USAGE}");
        return Ok(());
    }

    // The configuration: the file, or the embedded one over a loopback upstream.
    let path = path.map(shipped_example);
    let (config, local) = match &path {
        Some(path) => (
            Config::from_path(path).map_err(|error| in_file(path, error))?,
            None,
        ),
        None => {
            let upstream = Arc::new(TestUpstream::try_start().await?);
            let text = EMBEDDED
                .replace("{http}", &upstream.http_url())
                .replace("{ws}", &upstream.ws_url());
            tracing::info!(upstream = %upstream.addr(), "no config file: using the embedded configuration and a fake upstream on loopback");
            (Config::from_toml_str(&text)?, Some(upstream))
        }
    };
    let origin = path.map_or_else(|| OsString::from("embedded configuration"), PathBuf::into);

    // Metrics first, so the stack's first metrics are recorded.
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|error| format!("cannot install the metrics recorder: {error}"))?;
    let upkeep = tokio::spawn(metrics_upkeep(metrics.clone()));

    let configured = Configured::from_config(&config)
        .map_err(|error| format!("{}: {error}", origin.to_string_lossy()))?;
    let limits = config
        .server
        .to_server_config()
        .map_err(|error| format!("{}: {error}", origin.to_string_lossy()))?;
    // The admin surface (breakers, metrics) never shares the public listener.
    let admin = match &config.admin {
        Some(admin) => {
            let token = admin
                .token()
                .map_err(|error| format!("{}: {error}", origin.to_string_lossy()))?;
            let mut router = Router::new()
                .nest("/admin", configured.wsfirst.admin_router())
                .route(
                    "/metrics",
                    get(move || std::future::ready(metrics.render())),
                );
            if let Some(token) = token {
                router = router.layer(wsfirst::admin::require_token(token));
            }
            let listener = TcpListener::bind(admin.listen).await.map_err(|error| {
                format!("cannot listen on {} (admin.listen): {error}", admin.listen)
            })?;
            println!("admin listening on http://{}", listener.local_addr()?);
            Some(tokio::spawn(
                axum::serve(wsfirst::serve::nodelay(listener), router).into_future(),
            ))
        }
        None => {
            tracing::info!("no [admin] table: no admin endpoints and no /metrics");
            None
        }
    };
    let mut app = configured.router();
    if let Some(upstream) = &local {
        app = app.merge(demo_router(Arc::clone(upstream)));
    }
    let app = access_log(app);

    let addr = config.listen.unwrap_or_else(|| {
        DEFAULT_LISTEN
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)))
    });
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| format!("cannot listen on {addr}: {error} (set `listen` in the config file, such as listen = \"127.0.0.1:0\" for any free port)"))?;
    let addr = listener.local_addr()?;
    for (path, service) in &configured.routes {
        let route = service.route();
        tracing::info!(
            path = %path,
            provider = route.provider(),
            api = route.api(),
            mode = %route.mode(),
            // Shown without userinfo or query string: either may hold a secret.
            http_url = %wsfirst::core::redact::uri(route.http_url()),
            ws_url = route.ws_url().map(wsfirst::core::redact::uri).unwrap_or_default(),
            "route"
        );
    }
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();

    // Serve until SIGINT / SIGTERM, then drain for a bounded time.
    let (stop, stopped) = oneshot::channel::<()>();
    // TCP_NODELAY on every accepted socket (SSE writes must not wait for delayed ACKs), and the
    // `[server]` limits: header and body read timeouts, connections, header size.
    let mut server = tokio::spawn(wsfirst::serve::serve(listener, app, limits, async move {
        let _ = stopped.await;
    }));
    let grace = limits.shutdown_grace();
    tokio::select! {
        signal = shutdown_signal() => {
            tracing::info!(signal, "shutting down: no new connections, waiting up to {:?} for requests in flight", grace);
        }
        result = &mut server => {
            upkeep.abort();
            if let Some(admin) = &admin {
                admin.abort();
            }
            return match result {
                Ok(Ok(())) => Err("the server stopped unexpectedly".into()),
                Ok(Err(error)) => Err(format!("the server failed: {error}").into()),
                Err(error) => Err(format!("the server task failed: {error}").into()),
            };
        }
    }
    let _ = stop.send(());
    // `serve` itself closes what is still open past the grace period; the timeout only guards
    // against a server that does not return.
    match tokio::time::timeout(grace + CLOSE_GRACE, &mut server).await {
        Ok(Ok(Ok(()))) => tracing::info!("requests in flight finished"),
        Ok(Ok(Err(error))) => tracing::error!(%error, "the server failed while shutting down"),
        Ok(Err(error)) => tracing::error!(%error, "the server task failed while shutting down"),
        Err(_) => {
            tracing::warn!(
                "the server did not stop within {:?}: aborting it",
                grace + CLOSE_GRACE
            );
            server.abort();
        }
    }
    upkeep.abort();
    if let Some(admin) = admin {
        admin.abort();
    }
    // A close frame (1001) on every client WebSocket, after its running response (the server
    // does not track upgraded connections), then on every pooled WebSocket.
    let left = configured.wsfirst.shutdown_within(CLOSE_GRACE).await;
    if let Some(upstream) = local {
        if let Ok(upstream) = Arc::try_unwrap(upstream) {
            upstream.shutdown().await;
        }
    }
    drop(configured);
    let tasks = tasks_left(CLOSE_GRACE).await;
    tracing::info!(
        websockets_left = left,
        tasks_left = tasks,
        "pooled websockets closed, stopped"
    );
    Ok(())
}

/// Waits, at most `grace`, until no spawned task is alive (the closes of the last pooled
/// WebSockets, the client connections' tasks); how many are left.
async fn tasks_left(grace: Duration) -> usize {
    let metrics = tokio::runtime::Handle::current().metrics();
    let deadline = tokio::time::Instant::now() + grace;
    while metrics.num_alive_tasks() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    metrics.num_alive_tasks()
}

/// `gateway.toml` given from the repository root means the shipped `examples/gateway.toml`
/// (when no such file exists where it was looked for).
fn shipped_example(path: PathBuf) -> PathBuf {
    if path.is_relative() && !path.exists() {
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(&path);
        if shipped.is_file() {
            tracing::info!(file = %shipped.display(), "using the shipped example configuration");
            return shipped;
        }
    }
    path
}

/// A configuration error with the file name in front (a read error already names it).
fn in_file(path: &std::path::Path, error: ConfigError) -> String {
    match error {
        ConfigError::Read { .. } => error.to_string(),
        error => format!("{}: {error}", path.display()),
    }
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM, naming it.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            },
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the gateway");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Drains the recorder's histograms now and then, as the exporter's docs ask.
async fn metrics_upkeep(handle: PrometheusHandle) {
    let mut interval = tokio::time::interval(METRICS_UPKEEP);
    loop {
        interval.tick().await;
        handle.run_upkeep();
    }
}

/// Request headers whose values are credentials: never shown in a log line.
const CREDENTIAL_HEADERS: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
    HeaderName::from_static("x-api-key"),
];

/// A `request` span per request (method, path) and one DEBUG line when its response head is
/// ready (status, transport, reason, time to the head), target `gateway`; the headers at TRACE.
/// Credentials are marked sensitive first, so the headers' `Debug` shows `Sensitive` instead.
fn access_log(app: Router) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            tracing::debug_span!("request", method = %request.method(), path = request.uri().path())
        })
        .on_request(|request: &Request, _: &Span| {
            tracing::trace!(headers = ?request.headers(), "request headers");
        })
        .on_response(|response: &Response, latency: Duration, _: &Span| {
            // A header the response does not have leaves its field out.
            let header = |name: &str| response.headers().get(name)?.to_str().ok();
            tracing::debug!(
                status = response.status().as_u16(),
                transport = header(TRANSPORT_HEADER),
                reason = header(REASON_HEADER),
                head_ms = latency.as_millis() as u64,
                "request"
            );
        })
        // A 5xx answer is already in the line above; the layers log why.
        .on_failure(())
        .on_eos(());
    app.layer(trace)
        .layer(SetSensitiveRequestHeadersLayer::new(CREDENTIAL_HEADERS))
}

/// `POST /demo/websocket/break` and `/heal`: steer the embedded upstream's WebSocket endpoint.
fn demo_router(upstream: Arc<TestUpstream>) -> Router {
    let broken = Arc::clone(&upstream);
    Router::new()
        .route(
            "/demo/websocket/break",
            post(move || async move {
                broken.set_default_ws_script(WsScript::refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "wrong websocket endpoint",
                ));
                broken.close_ws_connections();
                tracing::info!("demo: the upstream now refuses websocket upgrades with 500");
                (
                    StatusCode::OK,
                    "the upstream now refuses websocket upgrades with 500\n",
                )
                    .into_response()
            }),
        )
        .route(
            "/demo/websocket/heal",
            post(move || async move {
                upstream.set_default_ws_script(WsScript::Accept);
                tracing::info!("demo: the upstream accepts websocket upgrades again");
                (
                    StatusCode::OK,
                    "the upstream accepts websocket upgrades again\n",
                )
                    .into_response()
            }),
        )
}
