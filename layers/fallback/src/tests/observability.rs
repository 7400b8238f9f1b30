//! The fallback counter and the rate-limited WARN.

use super::*;

#[tokio::test]
async fn fallbacks_are_counted_by_provider_cause_and_phase() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let (mut service, mut handle) = spawn(FallbackConfig::default());
    for _ in 0..2 {
        let response = send(&mut service, candidate());
        let (_, reply) = handle.next_request().await.unwrap();
        reply.send_error(failure(Phase::Handshake));
        let (_, reply) = handle.next_request().await.unwrap();
        reply.send_response(Response::new("http"));
        response.await.unwrap().unwrap();
    }
    // Not a fallback: not counted.
    let response = send(&mut service, candidate());
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(failure(Phase::MidStream));
    response.await.unwrap().unwrap_err();

    let counters: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "wsfirst_fallbacks_total")
        .collect();
    assert_eq!(counters.len(), 1, "{counters:?}");
    let (key, _, _, value) = &counters[0];
    let mut labels: Vec<(String, String)> = key
        .key()
        .labels()
        .map(|label| (label.key().to_owned(), label.value().to_owned()))
        .collect();
    labels.sort();
    assert_eq!(
        labels,
        [
            ("cause".to_owned(), "upgrade_status".to_owned()),
            ("phase".to_owned(), "handshake".to_owned()),
            ("provider".to_owned(), "openai".to_owned()),
        ]
    );
    assert_eq!(value, &DebugValue::Counter(2));
}

/// Counts WARN events.
struct CountWarnings(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountWarnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn fall_back_once(service: &mut Svc, handle: &mut Handle<Req, Res>, target: Route) {
    let mut request = candidate();
    request.extensions_mut().insert(target);
    let response = send(service, request);
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_error(failure(Phase::Handshake));
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_response(Response::new("http"));
    response.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn warns_at_most_once_per_key_per_interval() {
    use tracing_subscriber::layer::SubscriberExt;

    let warnings = Arc::new(AtomicUsize::new(0));
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(CountWarnings(warnings.clone())),
    );
    let other = Route::builder("other", "other-api")
        .ws_url("wss://other.example/ws")
        .http_url("https://other.example/http")
        .build()
        .unwrap();

    let (mut service, mut handle) = spawn(
        FallbackConfig::builder()
            .warn_interval(Some(Duration::from_secs(60)))
            .build()
            .unwrap(),
    );
    for _ in 0..3 {
        fall_back_once(&mut service, &mut handle, route(TransportMode::Auto)).await;
    }
    assert_eq!(warnings.load(Ordering::SeqCst), 1);
    fall_back_once(&mut service, &mut handle, other).await;
    assert_eq!(warnings.load(Ordering::SeqCst), 2);

    tokio::time::advance(Duration::from_secs(59)).await;
    fall_back_once(&mut service, &mut handle, route(TransportMode::Auto)).await;
    assert_eq!(warnings.load(Ordering::SeqCst), 2);
    tokio::time::advance(Duration::from_secs(1)).await;
    fall_back_once(&mut service, &mut handle, route(TransportMode::Auto)).await;
    assert_eq!(warnings.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn never_warns_without_an_interval() {
    use tracing_subscriber::layer::SubscriberExt;

    let warnings = Arc::new(AtomicUsize::new(0));
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(CountWarnings(warnings.clone())),
    );
    let (mut service, mut handle) = spawn(
        FallbackConfig::builder()
            .warn_interval(None)
            .build()
            .unwrap(),
    );
    for _ in 0..3 {
        fall_back_once(&mut service, &mut handle, route(TransportMode::Auto)).await;
        tokio::time::advance(Duration::from_secs(120)).await;
    }
    assert_eq!(warnings.load(Ordering::SeqCst), 0);
}
