//! How long a tripped key stays open: backoff, its cap, decay and jitter.

use super::*;

#[tokio::test(start_paused = true)]
async fn probe_failure_reopens_with_the_next_backoff_up_to_the_cap() {
    let config = config()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(30))
        .max_open_duration(Duration::from_secs(100))
        .build()
        .unwrap();
    let mut h = Harness::new(config);
    let route = route(TransportMode::Auto);
    h.ws(&route, Outcome::Fail(refused())).await;
    let mut expected = Vec::new();
    for _ in 0..4 {
        let snapshot = h.only();
        assert_eq!(snapshot.state, BreakerState::Open);
        let open_for = snapshot.until.unwrap() - snapshot.since;
        expected.push(open_for.as_secs());
        advance(open_for).await;
        assert_eq!(
            h.ws(&route, Outcome::Fail(refused())).await,
            Intent::WebSocket
        );
    }
    assert_eq!(expected, [30, 60, 100, 100]);
}

#[tokio::test(start_paused = true)]
async fn trips_decay_after_a_stable_closed_period() {
    let config = config()
        .consecutive_failures(1)
        .decay_after(Duration::from_secs(300))
        .build()
        .unwrap();
    let mut h = Harness::new(config);
    let route = route(TransportMode::Auto);
    h.ws(&route, Outcome::Fail(refused())).await; // trip 1: 30 s
    advance(Duration::from_secs(30)).await;
    h.ws(&route, Outcome::Ws).await; // closed
    advance(Duration::from_secs(299)).await;
    h.ws(&route, Outcome::Fail(refused())).await; // trip 2: 60 s
    let snapshot = h.only();
    assert_eq!(snapshot.trips, 2);
    assert_eq!(
        snapshot.until.unwrap() - snapshot.since,
        Duration::from_secs(60)
    );
    advance(Duration::from_secs(60)).await;
    h.ws(&route, Outcome::Ws).await; // closed
    advance(Duration::from_secs(300)).await;
    assert_eq!(h.only().trips, 0, "decayed");
    h.ws(&route, Outcome::Fail(refused())).await; // back to 30 s
    let snapshot = h.only();
    assert_eq!(snapshot.trips, 1);
    assert_eq!(
        snapshot.until.unwrap() - snapshot.since,
        Duration::from_secs(30)
    );
}

#[tokio::test(start_paused = true)]
async fn jitter_shortens_the_open_duration_reproducibly() {
    let durations = |seed| async move {
        let config = BreakerConfig::builder()
            .consecutive_failures(1)
            .jitter(0.5)
            .seed(seed)
            .build()
            .unwrap();
        let mut h = Harness::new(config);
        let route = route(TransportMode::Auto);
        let mut out = Vec::new();
        h.ws(&route, Outcome::Fail(refused())).await;
        for _ in 0..5 {
            let s = h.only();
            let d = s.until.unwrap() - s.since;
            out.push(d);
            advance(d).await;
            h.ws(&route, Outcome::Fail(refused())).await;
        }
        out
    };
    let a = durations(1).await;
    assert_eq!(a, durations(1).await);
    assert_ne!(a, durations(2).await);
    let base = BreakerConfig::default();
    for (trip, d) in a.iter().enumerate() {
        let full = base.backoff(trip as u32 + 1);
        assert!(*d <= full && *d >= full / 2, "{d:?} vs {full:?}");
    }
}
