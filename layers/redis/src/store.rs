//! [`RedisStore`]: the [`BreakerStore`] that a registry reports to, with its queue and task.

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError, atomic::Ordering},
};

use tokio::sync::mpsc;
use wsfirst_breaker::{BreakerStore, StoreEvent, StoreLink};

use crate::{
    ConfigError, RedisStoreConfig,
    config::CONFIG,
    worker::{Status, Worker},
};

/// Shares the breakers of a [`BreakerRegistry`](wsfirst_breaker::BreakerRegistry) with every
/// replica that uses the same Redis (or Valkey) and key prefix. See the [crate docs](crate).
///
/// Give it to one registry with
/// [`BreakerRegistryBuilder::store`](wsfirst_breaker::BreakerRegistryBuilder::store); its task
/// starts then and ends when the registry and every clone of the store are dropped. Cloning
/// shares the queue and the task.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: RedisStoreConfig,
    client: redis::Client,
    /// This replica's id in the store (random, per store).
    origin: String,
    tx: mpsc::Sender<StoreEvent>,
    /// Taken by the task when the store is attached.
    rx: Mutex<Option<mpsc::Receiver<StoreEvent>>>,
    status: Arc<Status>,
    runtime: tokio::runtime::Handle,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.inner.config)
            .field("replica", &self.inner.origin)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store with these settings. Connects later, in its task (so a Redis that is down does
    /// not stop a gateway from starting: its breakers are local until Redis is back). Must be
    /// called inside a tokio runtime, where the task will run (the error names `runtime`).
    pub fn new(config: RedisStoreConfig) -> Result<Self, ConfigError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ConfigError::invalid(
                CONFIG,
                "runtime",
                "a breaker store must be made inside a tokio runtime",
            )
        })?;
        // The URL was checked by the config's builder.
        let client = redis::Client::open(config.url.as_str()).map_err(|error| {
            ConfigError::invalid(CONFIG, "redis_url", format!("is not a redis url: {error}"))
        })?;
        let (tx, rx) = mpsc::channel(config.queue);
        Ok(RedisStore {
            inner: Arc::new(Inner {
                config,
                client,
                origin: format!("{:016x}", fastrand::u64(..)),
                tx,
                rx: Mutex::new(Some(rx)),
                status: Arc::default(),
                runtime,
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &RedisStoreConfig {
        &self.inner.config
    }

    /// Whether the store's task is connected to Redis and caught up.
    pub fn is_connected(&self) -> bool {
        self.inner.status.connected.load(Ordering::Relaxed)
    }

    /// How many events are waiting for the store's task or being handled (an event that failed
    /// because Redis went away is kept to tell later, and counts as handled). Tests wait for 0.
    pub fn pending_events(&self) -> u64 {
        let status = &self.inner.status;
        let done = status.done.load(Ordering::Acquire);
        status.queued.load(Ordering::Acquire).saturating_sub(done)
    }
}

impl BreakerStore for RedisStore {
    fn attach(&self, link: StoreLink) {
        let rx = self
            .inner
            .rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(rx) = rx else {
            tracing::error!("a breaker store serves one registry: this one is attached already");
            return;
        };
        let worker = Worker::new(
            self.inner.config.clone(),
            self.inner.client.clone(),
            link,
            self.inner.origin.clone(),
            rx,
            self.inner.status.clone(),
        );
        self.inner.runtime.spawn(worker.run());
    }

    fn report(&self, event: StoreEvent) -> bool {
        // Counted before it is sent, so that `pending_events` never misses one in flight.
        self.inner.status.queued.fetch_add(1, Ordering::AcqRel);
        match self.inner.tx.try_send(event) {
            Ok(()) => true,
            Err(_) => {
                self.inner.status.done.fetch_add(1, Ordering::AcqRel);
                metrics::counter!("wsfirst_breaker_store_dropped_total").increment(1);
                false
            }
        }
    }
}
