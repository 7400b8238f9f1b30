//! The store's background task: it takes the registry's events from the queue, runs the scripts,
//! follows the stream of the fleet's changes and applies them, and when Redis is away keeps the
//! replica on its own breakers, reconnects with backoff and catches up.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::{AsyncConnectionConfig, RedisError, aio::MultiplexedConnection};
use tokio::{sync::mpsc, time::timeout};
use wsfirst_breaker::{BreakerState, StoreEvent, StoreLink};
use wsfirst_core::BreakerKey;

mod calls;

use self::calls::{millis, read_stream};

use crate::{
    RedisStoreConfig,
    record::{Keys, Record, id_of, stream, unix_of},
    scripts::LEASE_SCRIPT,
};

/// How long one `XREAD` waits for changes on the server; a change arrives as soon as it is
/// written, this only bounds how long a read is outstanding.
const BLOCK: Duration = Duration::from_secs(1);
/// How often probe slots still wanted are asked for again and known keys pruned.
const TICK: Duration = Duration::from_millis(250);
/// The first wait before reconnecting (doubling up to the configured maximum).
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The stream keeps about this many changes (older ones are only needed by a replica that was
/// away, which reads the records instead).
const STREAM_LENGTH: u32 = 10_000;

/// What the store and its task share: whether Redis is reachable, events queued and done.
#[derive(Debug, Default)]
pub(crate) struct Status {
    pub(crate) connected: AtomicBool,
    /// Events taken into the queue, and events the task finished with.
    pub(crate) queued: AtomicU64,
    pub(crate) done: AtomicU64,
    /// Whether a malformed record was logged at WARN (once per replica).
    pub(crate) malformed_warned: AtomicBool,
}

/// The two connections: one for scripts and reads, one that waits on the stream.
struct Conns {
    writer: MultiplexedConnection,
    reader: MultiplexedConnection,
}

/// A half-open key of this replica that wants probe slots from the fleet.
#[derive(Debug)]
struct Waiting {
    key: BreakerKey,
    generation: u32,
    wanted: u32,
    granted: u32,
}

/// Why the task stops serving: Redis failed (reconnect), or the registry or store is gone.
enum Stop {
    Redis(RedisError),
    TimedOut,
    Gone,
}

impl From<RedisError> for Stop {
    fn from(error: RedisError) -> Self {
        Stop::Redis(error)
    }
}

pub(crate) struct Worker {
    pub(crate) config: RedisStoreConfig,
    pub(crate) client: redis::Client,
    pub(crate) link: StoreLink,
    pub(crate) origin: String,
    pub(crate) rx: mpsc::Receiver<StoreEvent>,
    pub(crate) status: Arc<Status>,
    stream: String,
    /// The keys of this replica by id (the registry's, as it reported them).
    keys: HashMap<String, BreakerKey>,
    /// The last revision applied (or written) per id.
    applied: HashMap<String, u64>,
    waiting: HashMap<String, Waiting>,
    /// Changes made here while Redis was away, told when it is back.
    pending: VecDeque<StoreEvent>,
    /// Whether the WARN of an outage was logged (and not yet followed by "back").
    warned: bool,
    ticks: u64,
}

impl Worker {
    pub(crate) fn new(
        config: RedisStoreConfig,
        client: redis::Client,
        link: StoreLink,
        origin: String,
        rx: mpsc::Receiver<StoreEvent>,
        status: Arc<Status>,
    ) -> Self {
        Worker {
            stream: stream(&config.prefix),
            config,
            client,
            link,
            origin,
            rx,
            status,
            keys: HashMap::new(),
            applied: HashMap::new(),
            waiting: HashMap::new(),
            pending: VecDeque::new(),
            warned: false,
            ticks: 0,
        }
    }

    /// Serves until the registry and the store are gone.
    pub(crate) async fn run(mut self) {
        let mut backoff = FIRST_BACKOFF;
        while self.link.is_live() {
            let stop = match self.connect().await {
                Ok(conns) => {
                    backoff = FIRST_BACKOFF;
                    self.serve(conns).await
                }
                Err(stop) => stop,
            };
            match stop {
                Stop::Gone => break,
                Stop::Redis(error) => self.down(&error.to_string()),
                Stop::TimedOut => self.down("no answer within the timeout"),
            }
            if !self.offline_for(backoff).await {
                break;
            }
            backoff = (backoff * 2).min(self.config.reconnect_max);
        }
        self.status.connected.store(false, Ordering::Relaxed);
    }

    async fn connect(&self) -> Result<Conns, Stop> {
        let writer = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.connect_timeout))
            .set_response_timeout(Some(self.config.timeout));
        // The reader's `XREAD` waits on the server for up to `BLOCK`.
        let reader = writer
            .clone()
            .set_response_timeout(Some(BLOCK + self.config.timeout));
        let deadline = self.config.connect_timeout + self.config.timeout;
        let connect = |config: AsyncConnectionConfig| async move {
            match timeout(
                deadline,
                self.client
                    .get_multiplexed_async_connection_with_config(&config),
            )
            .await
            {
                Ok(result) => result.map_err(Stop::from),
                Err(_) => Err(Stop::TimedOut),
            }
        };
        Ok(Conns {
            writer: connect(writer).await?,
            reader: connect(reader).await?,
        })
    }

    /// The store is away: one WARN per outage, and the probe slots wanted here are granted here.
    fn down(&mut self, why: &str) {
        self.status.connected.store(false, Ordering::Relaxed);
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                store = %self.config.shown_url(),
                error = %why,
                "breaker store unreachable: this replica's breakers decide alone until it is back"
            );
        } else {
            tracing::debug!(store = %self.config.shown_url(), error = %why, "breaker store still unreachable");
        }
        for (_, waiting) in self.waiting.drain() {
            self.link.grant_probes(
                &waiting.key,
                waiting.generation,
                waiting.wanted.saturating_sub(waiting.granted),
            );
        }
    }

    /// Waits `backoff` before the next attempt, taking events meanwhile. `false`: the store is
    /// gone.
    async fn offline_for(&mut self, backoff: Duration) -> bool {
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                event = self.rx.recv() => match event {
                    Some(event) => {
                        self.offline(event);
                        self.status.done.fetch_add(1, Ordering::Release);
                    }
                    None => return false,
                },
            }
        }
    }

    /// An event while Redis is away: keys are remembered, probe slots granted here, failures
    /// dropped (their count would be stale), changes kept to tell later.
    fn offline(&mut self, event: StoreEvent) {
        match event {
            StoreEvent::Created(key) => {
                self.keys.insert(id_of(&key), key);
            }
            StoreEvent::Failure { .. } => {}
            StoreEvent::ProbesWanted {
                key,
                generation,
                probes,
            } => {
                self.link.grant_probes(&key, generation, probes);
            }
            event => {
                if self.pending.len() >= self.config.queue {
                    self.pending.pop_front();
                }
                self.pending.push_back(event);
            }
        }
    }

    /// Catches up, then takes events and follows the stream until Redis fails.
    async fn serve(&mut self, mut conns: Conns) -> Stop {
        let cursor = match self.catch_up(&mut conns.writer).await {
            Ok(cursor) => cursor,
            Err(stop) => return stop,
        };
        self.status.connected.store(true, Ordering::Relaxed);
        if std::mem::take(&mut self.warned) {
            tracing::info!(store = %self.config.shown_url(), "breaker store reachable again, caught up");
        } else {
            tracing::debug!(store = %self.config.shown_url(), "breaker store connected");
        }
        let mut cursor = cursor;
        let mut read = Box::pin(read_stream(
            conns.reader.clone(),
            self.stream.clone(),
            cursor.clone(),
        ));
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let result = tokio::select! {
                event = self.rx.recv() => match event {
                    Some(event) => {
                        let result = self.handle(&mut conns.writer, event.clone()).await;
                        if result.is_err() {
                            // Told when Redis is back (or, for probes, granted here).
                            self.offline(event);
                        }
                        self.status.done.fetch_add(1, Ordering::Release);
                        result
                    }
                    None => return Stop::Gone,
                },
                entries = &mut read => match entries {
                    Ok(entries) => {
                        let result = self.follow(&mut conns.writer, &mut cursor, entries).await;
                        read = Box::pin(read_stream(conns.reader.clone(), self.stream.clone(), cursor.clone()));
                        result
                    }
                    Err(error) => Err(Stop::Redis(error)),
                },
                _ = tick.tick() => {
                    if !self.link.is_live() {
                        return Stop::Gone;
                    }
                    self.on_tick(&mut conns.writer).await
                }
            };
            if let Err(stop) = result {
                return stop;
            }
        }
    }

    /// Tells what happened here while away, restores pins the store lost, reads the fleet's
    /// records of this replica's keys; returns the stream position to follow from.
    async fn catch_up(&mut self, writer: &mut MultiplexedConnection) -> Result<String, Stop> {
        // Revisions start again when Redis lost its data.
        self.applied.clear();
        let last: Vec<(String, Vec<(String, String)>)> = self
            .deadline(
                redis::cmd("XREVRANGE")
                    .arg(&self.stream)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(writer),
            )
            .await?;
        let cursor = last
            .into_iter()
            .next()
            .map_or_else(|| "0-0".to_owned(), |(id, _)| id);
        while let Some(event) = self.pending.pop_front() {
            if let Err(stop) = self.handle(writer, event.clone()).await {
                self.pending.push_front(event);
                return Err(stop);
            }
        }
        for snapshot in self.link.snapshot() {
            let id = id_of(&snapshot.key);
            let stored = self.read_record(writer, &id).await?;
            self.keys.insert(id.clone(), snapshot.key.clone());
            if let Some(record) = stored {
                self.apply(&id, &record);
            } else if snapshot.state == BreakerState::Open {
                // Redis lost it (restarted empty): this replica's pin is the fleet's again.
                let record = self
                    .set(
                        writer,
                        &snapshot.key,
                        "restore",
                        snapshot.until.map_or(0, unix_of),
                        snapshot.pinned_by_hand,
                        snapshot.trips,
                        snapshot.last_failure.as_ref().map(|f| f.message.as_str()),
                    )
                    .await?;
                if let Some(record) = record {
                    self.apply(&id, &record);
                }
            }
        }
        Ok(cursor)
    }

    /// Follows the stream's entries: each names a key that changed, whose record is read and
    /// applied if this replica has the key. An entry's own fields are not applied: a forged
    /// entry (a huge `rev`, an oversized `cause`) costs one read, and cannot freeze a key.
    async fn follow(
        &mut self,
        writer: &mut MultiplexedConnection,
        cursor: &mut String,
        entries: Vec<(String, Option<String>)>,
    ) -> Result<(), Stop> {
        let mut changed: Vec<String> = Vec::new();
        for (entry, id) in entries {
            *cursor = entry;
            match id {
                Some(id) if self.keys.contains_key(&id) && !changed.contains(&id) => {
                    changed.push(id);
                }
                _ => {}
            }
        }
        for id in changed {
            if let Some(record) = self.read_record(writer, &id).await? {
                self.apply(&id, &record);
            }
        }
        Ok(())
    }

    /// Applies a record of the fleet to the key it names, unless it is the revision applied
    /// last. Every record is read on the one writer connection, in order, so a record read
    /// later is the later state even when its revision is lower (the store started it again).
    fn apply(&mut self, id: &str, record: &Record) {
        let last = self.applied.entry(id.to_owned()).or_default();
        if record.rev == *last {
            return;
        }
        *last = record.rev;
        if let Some(key) = self.keys.get(id) {
            self.link.apply(key, &record.to_shared());
        }
    }

    async fn handle(
        &mut self,
        writer: &mut MultiplexedConnection,
        event: StoreEvent,
    ) -> Result<(), Stop> {
        let (key, record) = match event {
            StoreEvent::Created(key) => {
                let id = id_of(&key);
                let record = self.read_record(writer, &id).await?;
                self.keys.insert(id, key.clone());
                (key, record)
            }
            StoreEvent::Failure { key, cause } => {
                let record = self.failure(writer, &key, &cause).await?;
                (key, record)
            }
            StoreEvent::Transition(transition) => {
                let cause = transition.cause.as_ref().map(ToString::to_string);
                let record = match transition.to {
                    BreakerState::Open => {
                        self.trip(writer, &transition.key, cause.as_deref()).await?
                    }
                    BreakerState::Closed => {
                        self.set(writer, &transition.key, "close", 0, false, 0, None)
                            .await?
                    }
                    BreakerState::HalfOpen => None,
                };
                (transition.key, record)
            }
            StoreEvent::ProbesWanted {
                key,
                generation,
                probes,
            } => {
                let id = id_of(&key);
                self.waiting.insert(
                    id.clone(),
                    Waiting {
                        key,
                        generation,
                        wanted: probes,
                        granted: 0,
                    },
                );
                return self.lease(writer, &id).await;
            }
            StoreEvent::Pinned { key, until } => {
                // 0 is "until unpinned"; a deadline is never 0 (`unix_of` gives at least 1).
                let until = until.map_or(0, unix_of);
                let record = self.set(writer, &key, "pin", until, true, 0, None).await?;
                (key, record)
            }
            StoreEvent::Unpinned(key) => {
                let record = self.set(writer, &key, "close", 0, false, 0, None).await?;
                (key, record)
            }
            StoreEvent::Reset(key) => {
                let record = self.set(writer, &key, "reset", 0, false, 0, None).await?;
                (key, record)
            }
            _ => return Ok(()),
        };
        if let Some(record) = record {
            let id = id_of(&key);
            self.keys.entry(id.clone()).or_insert(key);
            self.apply(&id, &record);
        }
        Ok(())
    }

    async fn on_tick(&mut self, writer: &mut MultiplexedConnection) -> Result<(), Stop> {
        let ids: Vec<String> = self.waiting.keys().cloned().collect();
        for id in ids {
            self.lease(writer, &id).await?;
        }
        self.ticks += 1;
        // About every 30 s: forget keys the registry evicted, and keep the records of pins
        // until unpinned alive while this replica holds them (every other record ends with its
        // pin, plus `key_ttl`).
        if self.ticks % 120 == 0 {
            let link = &self.link;
            self.keys.retain(|_, key| link.contains(key));
            let keys = &self.keys;
            self.applied.retain(|id, _| keys.contains_key(id));
            self.renew_pins(writer).await?;
        }
        Ok(())
    }

    async fn renew_pins(&self, writer: &mut MultiplexedConnection) -> Result<(), Stop> {
        for snapshot in self.link.snapshot() {
            if snapshot.state == BreakerState::Open && snapshot.until.is_none() {
                let state = Keys::new(&self.config.prefix, &id_of(&snapshot.key)).state;
                let _: i64 = self
                    .deadline(
                        redis::cmd("PEXPIRE")
                            .arg(state)
                            .arg(millis(self.config.key_ttl))
                            .query_async(writer),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Asks for the probe slots `id` still wants and grants this replica's new ones.
    async fn lease(&mut self, writer: &mut MultiplexedConnection, id: &str) -> Result<(), Stop> {
        let Some(waiting) = self.waiting.get(id) else {
            return Ok(());
        };
        let key = waiting.key.clone();
        let wanted = waiting.wanted;
        let held: u32 = self
            .deadline(
                self.invocation(&LEASE_SCRIPT, &key)
                    .arg(wanted)
                    .arg(wanted)
                    .arg(millis(self.config.probe_lease))
                    .invoke_async(writer),
            )
            .await?;
        let Some(waiting) = self.waiting.get_mut(id) else {
            return Ok(());
        };
        let more = held.saturating_sub(waiting.granted);
        let still = self
            .link
            .grant_probes(&waiting.key, waiting.generation, more);
        waiting.granted += more;
        if !still || waiting.granted >= waiting.wanted {
            self.waiting.remove(id);
        }
        Ok(())
    }
}
