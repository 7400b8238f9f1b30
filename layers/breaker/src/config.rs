//! Breaker configuration: thresholds, backoff, probes and the classifier.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wsfirst_breaker::BreakerConfig;
//!
//! let config = BreakerConfig::builder()
//!     .consecutive_failures(5)
//!     .failure_rate(0.5, 50, 20)
//!     .open_duration(Duration::from_secs(10))
//!     .max_open_duration(Duration::from_secs(300))
//!     .half_open_probes(2)
//!     .build()?;
//! assert_eq!(config.consecutive_failures(), Some(5));
//!
//! // A bad value names its field.
//! let error = BreakerConfig::builder().failure_rate(1.5, 20, 10).build().unwrap_err();
//! assert_eq!(error.field(), "failure_rate");
//! # Ok::<(), wsfirst_breaker::ConfigError>(())
//! ```

use std::{
    any::TypeId,
    sync::{Arc, LazyLock},
    time::Duration,
};

use wsfirst_core::{ConfigError, ConfigErrorKind};

use crate::{Classify, DefaultClassifier};

/// The largest number of half-open probes (the probe counter has 16 bits).
pub const MAX_PROBES: u32 = u16::MAX as u32;

/// The largest sliding window, in calls.
pub const MAX_WINDOW: u32 = 1 << 16;

/// How a breaker key trips, how long it stays open and how it comes back.
///
/// Cheap to clone (one reference count). Defaults:
///
/// | Knob | Default |
/// |---|---|
/// | [`consecutive_failures`](BreakerConfigBuilder::consecutive_failures) | 3 |
/// | [`failure_rate`](BreakerConfigBuilder::failure_rate) | 0.5 over the last 20 attempts, at least 10 attempts |
/// | [`open_duration`](BreakerConfigBuilder::open_duration) | 30 s, doubling with each consecutive trip |
/// | [`max_open_duration`](BreakerConfigBuilder::max_open_duration) | 10 min |
/// | [`jitter`](BreakerConfigBuilder::jitter) | 0.2 (the open duration is shortened by up to 20 %) |
/// | [`decay_after`](BreakerConfigBuilder::decay_after) | 10 min closed forgets earlier trips |
/// | [`half_open_probes`](BreakerConfigBuilder::half_open_probes) | 1 |
/// | [`classifier`](BreakerConfigBuilder::classifier) | [`DefaultClassifier`] |
/// | [`seed`](BreakerConfigBuilder::seed) | random |
#[derive(Clone, Debug)]
pub struct BreakerConfig {
    pub(crate) inner: Arc<ConfigInner>,
}

#[derive(Debug)]
pub(crate) struct ConfigInner {
    pub(crate) consecutive: Option<u32>,
    pub(crate) rate: Option<RateRule>,
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
    pub(crate) jitter: f64,
    pub(crate) decay_after: Duration,
    pub(crate) probes: u32,
    pub(crate) seed: Option<u64>,
    pub(crate) classifier: Arc<dyn Classify>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RateRule {
    pub(crate) rate: f64,
    pub(crate) window: u32,
    pub(crate) min_calls: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        // The builder's defaults are valid, so they are assembled without the checks.
        BreakerConfigBuilder::default().assemble()
    }
}

impl BreakerConfig {
    /// Starts from the defaults (see the table above).
    pub fn builder() -> BreakerConfigBuilder {
        BreakerConfigBuilder::default()
    }

    /// The consecutive-failure threshold, if that rule is on.
    pub fn consecutive_failures(&self) -> Option<u32> {
        self.inner.consecutive
    }

    /// The failure-rate rule as `(rate, window, min_calls)`, if it is on.
    pub fn failure_rate(&self) -> Option<(f64, u32, u32)> {
        self.inner.rate.map(|r| (r.rate, r.window, r.min_calls))
    }

    /// The first open duration.
    pub fn open_duration(&self) -> Duration {
        self.inner.base
    }

    /// The longest open duration.
    pub fn max_open_duration(&self) -> Duration {
        self.inner.cap
    }

    /// The largest fraction by which an open duration is shortened.
    pub fn jitter(&self) -> f64 {
        self.inner.jitter
    }

    /// How long a key stays closed before its next trip starts again from the base duration.
    pub fn decay_after(&self) -> Duration {
        self.inner.decay_after
    }

    /// The number of probes admitted in half-open.
    pub fn half_open_probes(&self) -> u32 {
        self.inner.probes
    }

    /// The seed of the jitter, if one was given.
    pub fn seed(&self) -> Option<u64> {
        self.inner.seed
    }

    /// How failures count.
    pub fn classifier(&self) -> &dyn Classify {
        &*self.inner.classifier
    }

    /// The first setting in which `self` and `other` differ, named as the builder method that
    /// sets it, or `None` when they are the same. Classifiers are the same when they are the
    /// same object (every configuration left at, or given, the [`DefaultClassifier`] shares one).
    ///
    /// Routes that share a breaker key share its settings (see
    /// [`BreakerRegistryBuilder::config_for`](crate::BreakerRegistryBuilder::config_for)): a
    /// caller building several routes can reject two that reach one key with different settings,
    /// naming this field.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wsfirst_breaker::BreakerConfig;
    ///
    /// let chat = BreakerConfig::builder().open_duration(Duration::from_secs(10)).build()?;
    /// let batch = BreakerConfig::builder()
    ///     .open_duration(Duration::from_secs(10))
    ///     .half_open_probes(2)
    ///     .build()?;
    /// assert_eq!(chat.differing_field(&batch), Some("half_open_probes"));
    /// assert_eq!(chat.differing_field(&chat.clone()), None);
    /// assert_eq!(BreakerConfig::default().differing_field(&BreakerConfig::default()), None);
    /// # Ok::<(), wsfirst_breaker::ConfigError>(())
    /// ```
    pub fn differing_field(&self, other: &BreakerConfig) -> Option<&'static str> {
        let (a, b) = (&*self.inner, &*other.inner);
        [
            ("consecutive_failures", a.consecutive == b.consecutive),
            ("failure_rate", a.rate == b.rate),
            ("open_duration", a.base == b.base),
            ("max_open_duration", a.cap == b.cap),
            ("jitter", a.jitter == b.jitter),
            ("decay_after", a.decay_after == b.decay_after),
            ("half_open_probes", a.probes == b.probes),
            ("seed", a.seed == b.seed),
            ("classifier", Arc::ptr_eq(&a.classifier, &b.classifier)),
        ]
        .into_iter()
        .find_map(|(field, same)| (!same).then_some(field))
    }

    /// The open duration after `trips` consecutive trips, before jitter.
    pub fn backoff(&self, trips: u32) -> Duration {
        let doublings = trips.saturating_sub(1).min(31);
        self.inner
            .base
            .checked_mul(1 << doublings)
            .map_or(self.inner.cap, |d| d.min(self.inner.cap))
    }
}

/// Builds a [`BreakerConfig`]; see [`BreakerConfig::builder`].
#[derive(Clone, Debug)]
pub struct BreakerConfigBuilder {
    consecutive: Option<u32>,
    rate: Option<(f64, u32, u32)>,
    base: Duration,
    cap: Duration,
    /// Whether `cap` was set; if not, a base above the default cap lifts the cap with it.
    cap_set: bool,
    jitter: f64,
    decay_after: Duration,
    probes: u32,
    seed: Option<u64>,
    classifier: Arc<dyn Classify>,
}

impl Default for BreakerConfigBuilder {
    fn default() -> Self {
        Self {
            consecutive: Some(3),
            rate: Some(DEFAULT_FAILURE_RATE),
            base: Duration::from_secs(30),
            cap: Duration::from_secs(600),
            cap_set: false,
            jitter: 0.2,
            decay_after: Duration::from_secs(600),
            probes: 1,
            seed: None,
            classifier: default_classifier(),
        }
    }
}

/// The default failure-rate rule: `(rate, window, min_calls)`.
const DEFAULT_FAILURE_RATE: (f64, u32, u32) = (0.5, 20, 10);

/// The [`DefaultClassifier`] every configuration shares, so that configurations left at the
/// default classifier are the same (classifiers compare by pointer).
fn default_classifier() -> Arc<dyn Classify> {
    static DEFAULT: LazyLock<Arc<dyn Classify>> = LazyLock::new(|| Arc::new(DefaultClassifier));
    DEFAULT.clone()
}

impl BreakerConfigBuilder {
    /// Trips after `n` counted failures in a row (default 3; must not be zero).
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive = Some(n);
        self
    }

    /// Turns the consecutive-failure rule off.
    pub fn no_consecutive_failures(mut self) -> Self {
        self.consecutive = None;
        self
    }

    /// Trips when at least `rate` (`0.0..=1.0`) of the last `window` WebSocket attempts failed,
    /// once the window holds at least `min_calls` attempts (default 0.5, 20, 10). The window
    /// slides one attempt at a time.
    pub fn failure_rate(mut self, rate: f64, window: u32, min_calls: u32) -> Self {
        self.rate = Some((rate, window, min_calls));
        self
    }

    /// Sets the failure-rate rule's threshold (`0.0..=1.0`), keeping its window and minimum
    /// (the defaults if the rule was off, which this turns on).
    ///
    /// ```
    /// use wsfirst_breaker::BreakerConfig;
    ///
    /// let config = BreakerConfig::builder()
    ///     .failure_rate_threshold(0.8)
    ///     .failure_rate_window(50)
    ///     .build()?;
    /// assert_eq!(config.failure_rate(), Some((0.8, 50, 10)));
    /// # Ok::<(), wsfirst_breaker::ConfigError>(())
    /// ```
    pub fn failure_rate_threshold(mut self, rate: f64) -> Self {
        let (_, window, min_calls) = self.rate.unwrap_or(DEFAULT_FAILURE_RATE);
        self.rate = Some((rate, window, min_calls));
        self
    }

    /// Sets the failure-rate rule's window (in attempts), keeping its threshold and minimum
    /// (the defaults if the rule was off, which this turns on).
    pub fn failure_rate_window(mut self, window: u32) -> Self {
        let (rate, _, min_calls) = self.rate.unwrap_or(DEFAULT_FAILURE_RATE);
        self.rate = Some((rate, window, min_calls));
        self
    }

    /// Sets how many attempts the window must hold before the failure rate counts, keeping the
    /// rule's threshold and window (the defaults if the rule was off, which this turns on).
    pub fn failure_rate_min_calls(mut self, min_calls: u32) -> Self {
        let (rate, window, _) = self.rate.unwrap_or(DEFAULT_FAILURE_RATE);
        self.rate = Some((rate, window, min_calls));
        self
    }

    /// Turns the failure-rate rule off.
    pub fn no_failure_rate(mut self) -> Self {
        self.rate = None;
        self
    }

    /// How long the first trip pins the key (default 30 s); each consecutive trip doubles it.
    /// A base above the default cap (10 min) lifts the cap with it unless
    /// [`max_open_duration`](Self::max_open_duration) is set.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wsfirst_breaker::BreakerConfig;
    ///
    /// let hour = Duration::from_secs(3600);
    /// let config = BreakerConfig::builder().open_duration(hour).build()?;
    /// assert_eq!(config.max_open_duration(), hour);
    /// # Ok::<(), wsfirst_breaker::ConfigError>(())
    /// ```
    pub fn open_duration(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// The longest a trip pins the key (default 10 min).
    pub fn max_open_duration(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self.cap_set = true;
        self
    }

    /// Shortens each open duration by a random fraction up to `jitter` (`0.0..=1.0`, default
    /// 0.2), so that keys tripped together do not probe together.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// After this long closed, the next trip starts again from the base duration (default 10 min).
    pub fn decay_after(mut self, period: Duration) -> Self {
        self.decay_after = period;
        self
    }

    /// How many requests may probe the WebSocket at once in half-open (default 1, at most
    /// [`MAX_PROBES`]).
    pub fn half_open_probes(mut self, probes: u32) -> Self {
        self.probes = probes;
        self
    }

    /// Seeds the jitter, so that open durations are reproducible (tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How failures count; see [`DefaultClassifier`] for the defaults.
    ///
    /// Classifiers compare by pointer ([`BreakerConfig::differing_field`]): configurations built
    /// apart with classifiers of their own differ, while every [`DefaultClassifier`] is the same
    /// one.
    pub fn classifier<C: Classify>(mut self, classifier: C) -> Self {
        self.classifier = if TypeId::of::<C>() == TypeId::of::<DefaultClassifier>() {
            default_classifier()
        } else {
            Arc::new(classifier)
        };
        self
    }

    /// Checks the values and builds the configuration.
    pub fn build(mut self) -> Result<BreakerConfig, ConfigError> {
        if !self.cap_set {
            self.cap = self.cap.max(self.base);
        }
        self.check()?;
        Ok(self.assemble())
    }

    fn check(&self) -> Result<(), ConfigError> {
        if let Some(consecutive) = self.consecutive {
            ConfigError::check_not_zero(CONFIG, "consecutive_failures", consecutive.into())?;
        }
        if let Some((rate, window, min_calls)) = self.rate {
            check_fraction("failure_rate", rate)?;
            ConfigError::check_not_zero(CONFIG, "window", window.into())?;
            check_at_most("window", window, MAX_WINDOW)?;
            ConfigError::check_not_zero(CONFIG, "min_calls", min_calls.into())?;
            if window < min_calls {
                return Err(ConfigError::invalid(
                    CONFIG,
                    "window",
                    format!("{window} calls must not be fewer than min_calls ({min_calls})"),
                ));
            }
        }
        ConfigError::check_duration(CONFIG, "open_duration", self.base)?;
        ConfigError::check_max_duration(CONFIG, "max_open_duration", self.cap)?;
        if self.cap < self.base {
            return Err(ConfigError::invalid(
                CONFIG,
                "max_open_duration",
                format!(
                    "{:?} must not be shorter than open_duration ({:?})",
                    self.cap, self.base
                ),
            ));
        }
        check_fraction("jitter", self.jitter)?;
        ConfigError::check_not_zero(CONFIG, "half_open_probes", self.probes.into())?;
        check_at_most("half_open_probes", self.probes, MAX_PROBES)
    }

    fn assemble(self) -> BreakerConfig {
        BreakerConfig {
            inner: Arc::new(ConfigInner {
                consecutive: self.consecutive,
                rate: self.rate.map(|(rate, window, min_calls)| RateRule {
                    rate,
                    window,
                    min_calls,
                }),
                base: self.base,
                cap: self.cap,
                jitter: self.jitter,
                decay_after: self.decay_after,
                probes: self.probes,
                seed: self.seed,
                classifier: self.classifier,
            }),
        }
    }
}

/// What [`ConfigError`]s of this builder call the configuration.
const CONFIG: &str = "breaker config";

fn check_fraction(field: &'static str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&value) {
        return Ok(());
    }
    Err(ConfigError::new(
        CONFIG,
        field,
        ConfigErrorKind::OutOfRange {
            value,
            min: 0.0,
            max: 1.0,
        },
    ))
}

fn check_at_most(field: &'static str, value: u32, max: u32) -> Result<(), ConfigError> {
    if value <= max {
        return Ok(());
    }
    Err(ConfigError::new(
        CONFIG,
        field,
        ConfigErrorKind::TooLarge {
            value: value.into(),
            max: max.into(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(builder: BreakerConfigBuilder) -> &'static str {
        builder.build().unwrap_err().field()
    }

    #[test]
    fn errors_name_the_field() {
        let b = BreakerConfig::builder;
        assert_eq!(field(b().consecutive_failures(0)), "consecutive_failures");
        assert_eq!(field(b().failure_rate(-0.1, 10, 5)), "failure_rate");
        assert_eq!(field(b().failure_rate(1.01, 10, 5)), "failure_rate");
        assert_eq!(field(b().failure_rate(f64::NAN, 10, 5)), "failure_rate");
        assert_eq!(field(b().failure_rate(0.5, 0, 5)), "window");
        assert_eq!(field(b().failure_rate(0.5, 10, 0)), "min_calls");
        assert_eq!(field(b().failure_rate(0.5, 4, 5)), "window");
        assert_eq!(field(b().failure_rate(0.5, MAX_WINDOW + 1, 5)), "window");
        assert_eq!(field(b().open_duration(Duration::ZERO)), "open_duration");
        assert_eq!(
            field(
                b().open_duration(Duration::from_secs(60))
                    .max_open_duration(Duration::from_secs(59))
            ),
            "max_open_duration"
        );
        assert_eq!(
            field(b().max_open_duration(Duration::MAX)),
            "max_open_duration"
        );
        assert_eq!(
            field(
                b().open_duration(Duration::MAX)
                    .max_open_duration(Duration::MAX)
            ),
            "open_duration"
        );
        assert_eq!(field(b().jitter(1.5)), "jitter");
        assert_eq!(field(b().half_open_probes(0)), "half_open_probes");
        assert_eq!(
            field(b().half_open_probes(MAX_PROBES + 1)),
            "half_open_probes"
        );
        let message = b().failure_rate(0.5, 4, 5).build().unwrap_err().to_string();
        assert_eq!(
            message,
            "invalid breaker config: window: 4 calls must not be fewer than min_calls (5)"
        );
    }

    #[test]
    fn edges_are_accepted() {
        let config = BreakerConfig::builder()
            .failure_rate(1.0, 5, 5)
            .jitter(0.0)
            .open_duration(Duration::from_secs(1))
            .max_open_duration(Duration::from_secs(1))
            .no_consecutive_failures()
            .build()
            .unwrap();
        assert_eq!(config.consecutive_failures(), None);
        assert_eq!(config.failure_rate(), Some((1.0, 5, 5)));
        assert!(
            BreakerConfig::builder()
                .failure_rate(0.0, 1, 1)
                .build()
                .is_ok()
        );
    }

    #[test]
    fn accessors_read_back_every_knob() {
        let config = BreakerConfig::builder()
            .consecutive_failures(4)
            .failure_rate(0.25, 8, 4)
            .open_duration(Duration::from_secs(2))
            .max_open_duration(Duration::from_secs(20))
            .jitter(0.1)
            .decay_after(Duration::from_secs(90))
            .half_open_probes(3)
            .seed(11)
            .build()
            .unwrap();
        assert_eq!(config.consecutive_failures(), Some(4));
        assert_eq!(config.failure_rate(), Some((0.25, 8, 4)));
        assert_eq!(config.open_duration(), Duration::from_secs(2));
        assert_eq!(config.max_open_duration(), Duration::from_secs(20));
        assert_eq!(config.jitter(), 0.1);
        assert_eq!(config.decay_after(), Duration::from_secs(90));
        assert_eq!(config.half_open_probes(), 3);
        assert_eq!(config.seed(), Some(11));
        assert_eq!(format!("{:?}", config.classifier()), "DefaultClassifier");
    }

    #[test]
    fn differing_field_names_the_builder_method() {
        #[derive(Debug)]
        struct Never;
        impl Classify for Never {
            fn classify(&self, _: &wsfirst_core::WsFailure) -> crate::Verdict {
                crate::Verdict::Ignore
            }
        }
        let base = BreakerConfig::default();
        let b = BreakerConfig::builder;
        let cases: [(BreakerConfigBuilder, &str); 10] = [
            (b().consecutive_failures(4), "consecutive_failures"),
            (b().no_consecutive_failures(), "consecutive_failures"),
            (b().failure_rate(0.5, 20, 11), "failure_rate"),
            (b().open_duration(Duration::from_secs(31)), "open_duration"),
            (
                b().max_open_duration(Duration::from_secs(601)),
                "max_open_duration",
            ),
            (b().jitter(0.3), "jitter"),
            (b().decay_after(Duration::from_secs(1)), "decay_after"),
            (b().half_open_probes(2), "half_open_probes"),
            (b().seed(1), "seed"),
            (b().classifier(Never), "classifier"),
        ];
        for (builder, field) in cases {
            let other = builder.build().unwrap();
            assert_eq!(base.differing_field(&other), Some(field));
            assert_eq!(other.differing_field(&base), Some(field));
        }
        // The first difference, in the order of the table above.
        let two = b().jitter(0.3).half_open_probes(2).build().unwrap();
        assert_eq!(base.differing_field(&two), Some("jitter"));
        // Every DefaultClassifier is the same one; other classifiers differ from each other.
        let explicit = b().classifier(DefaultClassifier).build().unwrap();
        assert_eq!(base.differing_field(&explicit), None);
        let (never, again) = (
            b().classifier(Never).build().unwrap(),
            b().classifier(Never).build().unwrap(),
        );
        assert_eq!(never.differing_field(&again), Some("classifier"));
        assert_eq!(never.differing_field(&never.clone()), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = BreakerConfig::default();
        let secs: Vec<u64> = (1..=7).map(|t| config.backoff(t).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(config.backoff(u32::MAX), Duration::from_secs(600));
        assert_eq!(config.backoff(0), Duration::from_secs(30));
    }
}
