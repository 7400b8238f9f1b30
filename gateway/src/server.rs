//! Serving a [`Config`]: the public listener, the admin listener, metrics, and the shutdown on
//! SIGINT or SIGTERM.

use std::{io::Write, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, routing::get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use wsfirst::{core::BoxError, serve::ServerConfig};
use wsfirst_websocket::testing::TestUpstream;

use crate::{Configured, access_log::AccessLog, config::Config, offline};

/// Where the gateway listens when the configuration has no `listen` key.
const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);
/// How long the pooled WebSockets' close frames (each bounded by one second) and the last tasks
/// may take once the server stopped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How often the Prometheus recorder drains its histograms.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Serves `config` until SIGINT or SIGTERM, then drains for a bounded time. `origin` names the
/// configuration in errors (the file's path); `local` is the offline mode's upstream, whose
/// demo endpoints are mounted too.
pub async fn run(
    config: Config,
    origin: &str,
    local: Option<Arc<TestUpstream>>,
) -> Result<(), BoxError> {
    let in_origin = |error: &dyn std::fmt::Display| format!("{origin}: {error}");
    // Metrics first, so the stack's first metrics are recorded.
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|error| format!("cannot install the metrics recorder: {error}"))?;
    let upkeep = tokio::spawn(metrics_upkeep(metrics.clone()));

    let configured = Configured::from_config(&config).map_err(|error| in_origin(&error))?;
    let limits = config
        .server
        .to_server_config()
        .map_err(|error| in_origin(&error))?;
    // Every listener stops when this turns true.
    let (stop, stopped) = watch::channel(false);
    let admin = admin(&config, &configured, metrics, limits, stopped.clone())
        .await
        .map_err(|error| in_origin(&*error))?;
    let mut app = configured.router();
    if let Some(upstream) = &local {
        app = app.merge(offline::demo_router(Arc::clone(upstream)));
    }
    let app = AccessLog::new(&config).layer(app);

    let addr = config.listen.unwrap_or(DEFAULT_LISTEN);
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

    // TCP_NODELAY on every accepted socket (SSE writes must not wait for delayed ACKs), and the
    // `[server]` limits: header and body read timeouts, connections, header size.
    let mut server = tokio::spawn(wsfirst::serve::serve(
        listener,
        app,
        limits,
        stopped_signal(stopped),
    ));
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
    let _ = stop.send(true);
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
        // It got the same stop and grace as the public listener.
        if tokio::time::timeout(CLOSE_GRACE, admin).await.is_err() {
            tracing::warn!("the admin listener did not stop in time");
        }
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

/// Starts the admin listener (breakers and metrics), never the public one, with the public
/// listener's limits (`[server]`); `None` without an `[admin]` table.
async fn admin(
    config: &Config,
    configured: &Configured,
    metrics: PrometheusHandle,
    limits: ServerConfig,
    stopped: watch::Receiver<bool>,
) -> Result<Option<JoinHandle<std::io::Result<()>>>, BoxError> {
    let Some(admin) = &config.admin else {
        tracing::info!("no [admin] table: no admin endpoints and no /metrics");
        return Ok(None);
    };
    let token = admin.token()?;
    let mut router = Router::new()
        .nest("/admin", configured.wsfirst.admin_router())
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        );
    if let Some(token) = token {
        router = router.layer(wsfirst::admin::require_token(token));
    }
    let listener = TcpListener::bind(admin.listen)
        .await
        .map_err(|error| format!("cannot listen on {} (admin.listen): {error}", admin.listen))?;
    println!("admin listening on http://{}", listener.local_addr()?);
    Ok(Some(tokio::spawn(wsfirst::serve::serve(
        listener,
        router,
        limits,
        stopped_signal(stopped),
    ))))
}

/// Resolves once `stopped` turns true (or its sender is gone).
async fn stopped_signal(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stopped| *stopped).await;
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
