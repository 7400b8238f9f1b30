//! The hooks of a shared store: what the registry tells it, what it does not (the closed-state
//! success path), probes that wait for the store's grant, and the fleet's state applied.

use std::sync::{Arc, Mutex};

use super::*;
use crate::{BreakerStore, Shared, StoreEvent, StoreLink};

/// A store that records what it hears and lets the test steer the registry.
#[derive(Debug, Default)]
struct Recording {
    link: Mutex<Option<StoreLink>>,
    heard: Mutex<Vec<StoreEvent>>,
    /// Refuses every event (a full queue).
    refuse: bool,
}

impl BreakerStore for Recording {
    fn attach(&self, link: StoreLink) {
        *self.link.lock().unwrap() = Some(link);
    }

    fn report(&self, event: StoreEvent) -> bool {
        if self.refuse {
            return false;
        }
        self.heard.lock().unwrap().push(event);
        true
    }
}

impl Recording {
    fn link(&self) -> StoreLink {
        self.link.lock().unwrap().clone().unwrap()
    }

    /// What it heard since the last call, in short.
    fn take(&self) -> Vec<String> {
        self.heard
            .lock()
            .unwrap()
            .drain(..)
            .map(|event| match event {
                StoreEvent::Created(_) => "created".to_owned(),
                StoreEvent::Failure { .. } => "failure".to_owned(),
                StoreEvent::Transition(t) => format!("{}->{}", t.from, t.to),
                StoreEvent::ProbesWanted { probes, .. } => format!("probes wanted {probes}"),
                StoreEvent::Pinned { until, .. } => format!("pinned {}", until.is_some()),
                StoreEvent::Unpinned(_) => "unpinned".to_owned(),
                StoreEvent::Reset(_) => "reset".to_owned(),
            })
            .collect()
    }
}

fn harness(store: Arc<Recording>, config: BreakerConfig) -> Harness {
    let registry = BreakerRegistry::builder()
        .config(config)
        .store(store)
        .build();
    Harness::with_layer(CircuitBreakerLayer::from_registry(registry))
}

#[tokio::test(start_paused = true)]
async fn the_store_hears_failures_and_transitions_but_never_successes() {
    let store = Arc::new(Recording::default());
    let mut h = harness(
        store.clone(),
        config().consecutive_failures(2).build().unwrap(),
    );
    let route = route(TransportMode::Auto);
    for _ in 0..3 {
        h.ws(&route, Outcome::Ws).await;
    }
    assert_eq!(store.take(), ["created"], "successes are not told");
    h.ws(&route, Outcome::Fallback(upgrade(500))).await;
    h.ws(&route, Outcome::Ws).await;
    assert_eq!(store.take(), ["failure"]);
    h.ws(&route, Outcome::Fallback(upgrade(500))).await;
    h.ws(&route, Outcome::Fallback(upgrade(500))).await;
    assert_eq!(store.take(), ["failure", "closed->open"]);
}

#[tokio::test(start_paused = true)]
async fn half_open_probes_wait_for_the_store_to_grant_them() {
    let (store, mut h, route, _) = half_open().await;
    let generation = current_generation(&store);
    assert_eq!(store.take(), ["created", "closed->open", "probes wanted 1"]);
    assert_eq!(h.state(), BreakerState::HalfOpen);
    assert!(pinned(&h.ws(&route, Outcome::Http).await));
    // The grant is for the half-open state the key asked in; a stale one changes nothing.
    let key = h.only().key;
    let link = store.link();
    assert!(!link.grant_probes(&key, generation.wrapping_add(1), 1));
    assert!(pinned(&h.ws(&route, Outcome::Http).await));
    assert!(link.grant_probes(&key, generation, 1));
    let intent = h.ws(&route, Outcome::Ws).await;
    assert_eq!(
        intent,
        Intent::WebSocket,
        "the granted probe tries the websocket"
    );
    assert_eq!(h.state(), BreakerState::Closed);
    assert_eq!(store.take(), ["half_open->closed"]);
}

/// A key tripped by one failure whose pin ended: its next request finds it due, so it goes
/// half-open, asks the store for probes and is pinned meanwhile. Also returns the deadline
/// that ended the pin.
async fn half_open() -> (Arc<Recording>, Harness, Route, Instant) {
    let store = Arc::new(Recording::default());
    let mut h = harness(
        store.clone(),
        config().consecutive_failures(1).build().unwrap(),
    );
    let route = route(TransportMode::Auto);
    h.ws(&route, Outcome::Fail(refused())).await;
    let ended = h.only().until.unwrap();
    advance(Duration::from_secs(30)).await;
    assert!(pinned(&h.ws(&route, Outcome::Http).await));
    (store, h, route, ended)
}

/// The generation the last `ProbesWanted` was asked with (peeked before `take`).
fn current_generation(store: &Recording) -> u32 {
    let heard = store.heard.lock().unwrap();
    heard
        .iter()
        .rev()
        .find_map(|event| match event {
            StoreEvent::ProbesWanted { generation, .. } => Some(*generation),
            _ => None,
        })
        .unwrap_or_else(|| {
            drop(heard);
            panic!("no probes were asked for")
        })
}

#[tokio::test(start_paused = true)]
async fn a_store_that_cannot_take_the_request_leaves_the_probes_local() {
    let store = Arc::new(Recording {
        refuse: true,
        ..Recording::default()
    });
    let mut h = harness(store, config().consecutive_failures(1).build().unwrap());
    let route = route(TransportMode::Auto);
    h.ws(&route, Outcome::Fail(refused())).await;
    advance(Duration::from_secs(30)).await;
    assert_eq!(h.ws(&route, Outcome::Ws).await, Intent::WebSocket);
    assert_eq!(h.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn the_fleet_state_is_applied_without_being_told_back() {
    let store = Arc::new(Recording::default());
    let mut h = harness(store.clone(), config().build().unwrap());
    let route = route(TransportMode::Auto);
    h.ws(&route, Outcome::Ws).await;
    store.take();
    let key = h.only().key;
    let link = store.link();
    let until = Instant::now() + Duration::from_secs(45);
    let open = Shared::Open {
        until: Some(until),
        manual: false,
        trips: 2,
        cause: Some("upgrade answered with status 500".into()),
    };
    assert!(link.apply(&key, &open));
    let snapshot = h.only();
    assert_eq!(snapshot.state, BreakerState::Open);
    assert_eq!(snapshot.until, Some(until));
    assert_eq!(snapshot.trips, 2);
    assert!(pinned(&h.ws(&route, Outcome::Http).await));
    // Applied again: nothing changes.
    assert!(link.apply(&key, &open));
    assert!(link.apply(
        &key,
        &Shared::Closed {
            trips: 2,
            reset: false
        }
    ));
    assert_eq!(h.state(), BreakerState::Closed);
    assert_eq!(store.take(), Vec::<String>::new(), "nothing told back");
    // A key the registry does not have is left alone.
    let other = BreakerKey::new("other", "wss://other.example", None);
    assert!(!link.apply(&other, &open));
    assert!(!link.contains(&other));
}

#[tokio::test(start_paused = true)]
async fn pins_unpins_and_resets_by_hand_are_told_once() {
    let store = Arc::new(Recording::default());
    let h = harness(store.clone(), config().build().unwrap());
    let key = BreakerKey::new("openai", "wss://api.openai.com/v1/responses", None);
    h.handle.pin(&key, Some(Duration::from_secs(60)));
    h.handle.pin(&key, None);
    assert!(h.handle.unpin(&key));
    assert!(!h.handle.unpin(&key));
    assert!(h.handle.reset(&key));
    assert_eq!(
        store.take(),
        [
            "created",
            "pinned true",
            "pinned false",
            "unpinned",
            "unpinned",
            "reset"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_probing_key_stays_half_open_for_the_pin_that_ended_and_a_reset_forgets() {
    let (store, h, _, ended) = half_open().await;
    assert_eq!(h.state(), BreakerState::HalfOpen);
    let key = h.only().key;
    let link = store.link();
    // The fleet's record of the same pin, already over: the key keeps probing.
    let same = Shared::Open {
        until: Some(ended),
        manual: false,
        trips: 1,
        cause: None,
    };
    link.apply(&key, &same);
    assert_eq!(h.state(), BreakerState::HalfOpen);
    // A reset elsewhere closes it and forgets its trips and last failure.
    link.apply(
        &key,
        &Shared::Closed {
            trips: 0,
            reset: true,
        },
    );
    let snapshot = h.only();
    assert_eq!(snapshot.state, BreakerState::Closed);
    assert_eq!(snapshot.trips, 0);
    assert!(snapshot.last_failure.is_none());
}

#[tokio::test(start_paused = true)]
async fn failures_the_classifier_ignores_are_not_told() {
    let store = Arc::new(Recording::default());
    let mut h = harness(store.clone(), config().build().unwrap());
    let route = route(TransportMode::Auto);
    h.ws(&route, Outcome::Ws).await;
    store.take();
    // A refused credential (401) is the client's, not the path's.
    h.ws(&route, Outcome::Fallback(upgrade(401))).await;
    assert_eq!(store.take(), Vec::<String>::new());
}
