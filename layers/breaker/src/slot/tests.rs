//! The slot against a small reference model of the state machine (proptest).

use std::collections::VecDeque;

use http::StatusCode;
use proptest::prelude::*;
use wsfirst_core::{FailureKind, Phase};

use super::*;
use crate::BreakerRegistry;

const BASE: u64 = 10;
const CAP: u64 = 40;
const DECAY: u64 = 100;

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Success,
    Count,
    Trip,
    Ignore,
    NoVerdict,
}

#[derive(Clone, Debug)]
enum Op {
    Admit { strict: bool },
    Resolve { index: usize, outcome: Outcome },
    Advance { secs: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop_oneof![
        4 => Just(Outcome::Success),
        4 => Just(Outcome::Count),
        1 => Just(Outcome::Trip),
        1 => Just(Outcome::Ignore),
        1 => Just(Outcome::NoVerdict),
    ];
    prop_oneof![
        4 => Just(Op::Admit { strict: false }),
        1 => Just(Op::Admit { strict: true }),
        5 => (any::<prop::sample::Index>(), outcome)
            .prop_map(|(i, outcome)| Op::Resolve { index: i.index(usize::MAX), outcome }),
        2 => (1u64..60).prop_map(|secs| Op::Advance { secs }),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Closed,
    Probe,
    Observe,
    Pinned,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ModelState {
    Closed,
    Open { until: u64 },
    HalfOpen { free: u32 },
}

struct Model {
    state: ModelState,
    epoch: u64,
    since: u64,
    trips: u32,
    consecutive: u32,
    window: VecDeque<bool>,
    streak: u32,
    size: usize,
    min_calls: usize,
    probes: u32,
}

impl Model {
    fn clear(&mut self, now: u64) {
        self.epoch += 1;
        self.since = now;
        self.consecutive = 0;
        self.window.clear();
    }

    fn trip(&mut self, now: u64) {
        if self.state == ModelState::Closed && now - self.since >= DECAY {
            self.trips = 0;
        }
        self.trips += 1;
        let backoff = (BASE << (self.trips - 1).min(20)).min(CAP);
        self.state = ModelState::Open {
            until: now + backoff,
        };
        self.clear(now);
    }

    fn close(&mut self, now: u64) {
        self.state = ModelState::Closed;
        self.clear(now);
    }

    fn admit(&mut self, strict: bool, now: u64) -> Kind {
        if let ModelState::Open { until } = self.state {
            if now >= until {
                self.state = ModelState::HalfOpen { free: self.probes };
                self.epoch += 1;
                self.since = now;
            }
        }
        match &mut self.state {
            ModelState::Closed => Kind::Closed,
            _ if strict => Kind::Observe,
            ModelState::Open { .. } => Kind::Pinned,
            ModelState::HalfOpen { free: 0 } => Kind::Pinned,
            ModelState::HalfOpen { free } => {
                *free -= 1;
                Kind::Probe
            }
        }
    }

    fn resolve(&mut self, kind: Kind, epoch: u64, outcome: Outcome, now: u64) {
        let current = epoch == self.epoch;
        match (kind, outcome) {
            (Kind::Closed, _) if !current || self.state != ModelState::Closed => {}
            (Kind::Closed, Outcome::Success) => {
                self.consecutive = 0;
                self.push(false);
            }
            (Kind::Closed, Outcome::Trip) => self.trip(now),
            (Kind::Closed, Outcome::Count) => {
                self.consecutive += 1;
                self.push(true);
                let failures = self.window.iter().filter(|f| **f).count();
                let by_rate = self.window.len() >= self.min_calls
                    && failures as f64 >= 0.5 * self.window.len() as f64;
                if self.consecutive >= self.streak || by_rate {
                    self.trip(now);
                }
            }
            (Kind::Closed, _) => {}
            (Kind::Probe, _) if !current => {}
            (Kind::Probe, Outcome::Success) => self.close(now),
            (Kind::Probe, Outcome::Count | Outcome::Trip) => self.trip(now),
            (Kind::Probe, Outcome::Ignore | Outcome::NoVerdict) => {
                if let ModelState::HalfOpen { free } = &mut self.state {
                    *free += 1;
                }
            }
            (Kind::Observe, Outcome::Success) => {
                if current && self.state != ModelState::Closed {
                    self.close(now);
                }
            }
            (Kind::Observe | Kind::Pinned, _) => {}
        }
    }

    fn push(&mut self, failed: bool) {
        if self.window.len() == self.size {
            self.window.pop_front();
        }
        self.window.push_back(failed);
    }
}

fn failure(outcome: Outcome) -> WsFailure {
    let status = match outcome {
        Outcome::Trip => StatusCode::NOT_FOUND,
        Outcome::Ignore => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_GATEWAY,
    };
    WsFailure::new(
        Phase::Handshake,
        FailureKind::UpgradeStatus {
            status,
            body: Default::default(),
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn slot_matches_the_model(
        streak in 1u32..5,
        (size, min_calls) in (1u32..8).prop_flat_map(|size| (Just(size), 1..=size)),
        probes in 1u32..4,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let config = BreakerConfig::builder()
            .consecutive_failures(streak)
            .failure_rate(0.5, size, min_calls)
            .open_duration(Duration::from_secs(BASE))
            .max_open_duration(Duration::from_secs(CAP))
            .decay_after(Duration::from_secs(DECAY))
            .half_open_probes(probes)
            .jitter(0.0)
            .build()
            .unwrap();
        let registry = BreakerRegistry::builder().config(config).build();
        let key = BreakerKey::new("p", "wss://p", None);
        let slot = registry.slot_for(&key);
        let start = Instant::now();
        let mut model = Model {
            state: ModelState::Closed,
            epoch: 0,
            since: 0,
            trips: 0,
            consecutive: 0,
            window: VecDeque::new(),
            streak,
            size: size as usize,
            min_calls: min_calls as usize,
            probes,
        };
        let mut now = 0u64;
        // (real admission, model kind, model epoch)
        let mut pending: Vec<(Admission, Kind, u64)> = Vec::new();
        for op in ops {
            let at = start + Duration::from_secs(now);
            match op {
                Op::Advance { secs } => now += secs,
                Op::Admit { strict } => {
                    let word = slot.hot.word.load(Ordering::Acquire);
                    let real = slot.admit_slow(word, strict, at);
                    let kind = model.admit(strict, now);
                    let real_kind = match real {
                        Admission::Closed { .. } => Kind::Closed,
                        Admission::Probe { .. } => Kind::Probe,
                        Admission::Observe { .. } => Kind::Observe,
                        Admission::Pinned { until } => {
                            if let ModelState::Open { until: u } = model.state {
                                prop_assert_eq!(until, Some(start + Duration::from_secs(u)));
                            }
                            Kind::Pinned
                        }
                    };
                    prop_assert_eq!(real_kind, kind);
                    if kind != Kind::Pinned {
                        pending.push((real, kind, model.epoch));
                    }
                }
                Op::Resolve { index, outcome } => {
                    if pending.is_empty() {
                        continue;
                    }
                    let (real, kind, model_epoch) = pending.swap_remove(index % pending.len());
                    model.resolve(kind, model_epoch, outcome, now);
                    let fail = failure(outcome);
                    match (real, outcome) {
                        (Admission::Closed { generation }, Outcome::Success) => {
                            slot.closed_success(generation)
                        }
                        (Admission::Closed { .. }, Outcome::NoVerdict) => {}
                        (Admission::Closed { generation }, _) => {
                            slot.closed_failure(generation, &fail, at)
                        }
                        (Admission::Probe { generation }, Outcome::Success) => {
                            slot.healthy(generation, at, false);
                        }
                        (Admission::Probe { generation }, Outcome::NoVerdict) => {
                            slot.release_probe(generation)
                        }
                        (Admission::Probe { generation }, _) => {
                            slot.probe_failure(generation, &fail, at)
                        }
                        (Admission::Observe { generation }, Outcome::Success) => {
                            slot.healthy(generation, at, true);
                        }
                        (Admission::Observe { .. }, Outcome::NoVerdict) => {}
                        (Admission::Observe { generation }, _) => {
                            slot.observe_failure(generation, &fail, at)
                        }
                        (Admission::Pinned { .. }, _) => {}
                    }
                }
            }
            let at = start + Duration::from_secs(now);
            let snapshot = slot.snapshot(at);
            let (state, until, in_flight) = match model.state {
                ModelState::Closed => (BreakerState::Closed, None, 0),
                ModelState::Open { until } => (BreakerState::Open, Some(until), 0),
                ModelState::HalfOpen { free } => (BreakerState::HalfOpen, None, probes - free),
            };
            prop_assert_eq!(snapshot.state, state);
            if let Some(until) = until {
                prop_assert_eq!(snapshot.until, Some(start + Duration::from_secs(until)));
            }
            prop_assert_eq!(snapshot.probes_in_flight, in_flight);
            prop_assert_eq!(snapshot.consecutive_failures, model.consecutive);
            prop_assert_eq!(snapshot.window_calls as usize, model.window.len());
            prop_assert_eq!(
                snapshot.window_failures as usize,
                model.window.iter().filter(|f| **f).count()
            );
            let model_trips = if model.state == ModelState::Closed && now - model.since >= DECAY {
                0
            } else {
                model.trips
            };
            prop_assert_eq!(snapshot.trips, model_trips);
        }
    }
}

#[test]
fn a_slot_takes_three_cache_lines_and_its_hot_fields_start_one() {
    use std::mem::{offset_of, size_of};
    assert_eq!(size_of::<Slot>(), 192);
    let hot = offset_of!(Slot, hot);
    assert_eq!(
        hot % 64,
        0,
        "the fields read on every request start a cache line"
    );
    assert!(offset_of!(Slot, machine) + size_of::<Mutex<Machine>>() <= hot);
    assert!(offset_of!(Slot, epoch) > hot && offset_of!(Slot, home) < hot + 64);
}
