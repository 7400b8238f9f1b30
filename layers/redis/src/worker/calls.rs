//! The commands the store's task sends: one call per script, reading a record and the stream,
//! each within the store's timeout.

use std::{collections::HashMap, sync::atomic::Ordering, time::Duration};

use redis::{aio::MultiplexedConnection, streams::StreamReadReply};
use tokio::time::timeout;
use wsfirst_core::BreakerKey;

use super::{BLOCK, STREAM_LENGTH, Stop, Worker};
use crate::{
    record::{Keys, Record, bounded_cause, id_of, is_id},
    scripts::{FAILURE_SCRIPT, READ_SCRIPT, SET_SCRIPT, TRIP_SCRIPT},
};

impl Worker {
    /// The stored record of the key named `id`, if there is one this crate can read.
    pub(super) async fn read_record(
        &self,
        writer: &mut MultiplexedConnection,
        id: &str,
    ) -> Result<Option<Record>, Stop> {
        let fields: Vec<String> = self
            .deadline(
                READ_SCRIPT
                    .key(Keys::new(&self.config.prefix, id).state)
                    .invoke_async(writer),
            )
            .await?;
        Ok(self.checked(id, &pairs(fields)))
    }

    /// The record these fields hold; a malformed one is skipped, with one WARN per replica (then
    /// DEBUG): someone wrote it by hand, and the next change of the key replaces it.
    pub(super) fn checked(&self, id: &str, fields: &HashMap<String, String>) -> Option<Record> {
        match Record::parse(fields) {
            Ok(record) => record,
            Err(malformed) => {
                metrics::counter!("wsfirst_breaker_store_malformed_total").increment(1);
                if self.status.malformed_warned.swap(true, Ordering::Relaxed) {
                    tracing::debug!(id, error = %malformed, "skipping a malformed breaker record");
                } else {
                    tracing::warn!(
                        store = %self.config.shown_url(),
                        id,
                        error = %malformed,
                        "skipping a malformed breaker record in the store (written by something \
                         else than wsfirst?); further ones are logged at DEBUG"
                    );
                }
                None
            }
        }
    }

    /// Runs `command` within the store's timeout.
    pub(super) async fn deadline<T>(
        &self,
        command: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Stop> {
        match timeout(self.config.timeout, command).await {
            Ok(result) => result.map_err(Stop::from),
            Err(_) => Err(Stop::TimedOut),
        }
    }

    pub(super) async fn failure(
        &self,
        writer: &mut MultiplexedConnection,
        key: &BreakerKey,
        cause: &str,
    ) -> Result<Option<Record>, Stop> {
        let Some(config) = self.link.config_for(key) else {
            return Ok(None);
        };
        // The fleet counts against the consecutive-failure threshold; the failure-rate rule
        // stays each replica's own.
        let Some(threshold) = config.consecutive_failures() else {
            return Ok(None);
        };
        let fields: Vec<String> = self
            .deadline(
                self.invocation(&FAILURE_SCRIPT, key)
                    .arg(threshold)
                    .arg(millis(self.config.failure_window))
                    .arg(millis(config.open_duration()))
                    .arg(millis(config.max_open_duration()))
                    .arg(config.jitter() * fastrand::f64())
                    .arg(millis(config.decay_after()))
                    .arg(bounded_cause(cause))
                    .invoke_async(writer),
            )
            .await?;
        Ok(self.checked(&id_of(key), &pairs(fields)))
    }

    pub(super) async fn trip(
        &self,
        writer: &mut MultiplexedConnection,
        key: &BreakerKey,
        cause: Option<&str>,
    ) -> Result<Option<Record>, Stop> {
        let Some(config) = self.link.config_for(key) else {
            return Ok(None);
        };
        let fields: Vec<String> = self
            .deadline(
                self.invocation(&TRIP_SCRIPT, key)
                    .arg(millis(config.open_duration()))
                    .arg(millis(config.max_open_duration()))
                    .arg(config.jitter() * fastrand::f64())
                    .arg(millis(config.decay_after()))
                    .arg(bounded_cause(cause.unwrap_or("")))
                    .invoke_async(writer),
            )
            .await?;
        Ok(self.checked(&id_of(key), &pairs(fields)))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn set(
        &self,
        writer: &mut MultiplexedConnection,
        key: &BreakerKey,
        mode: &str,
        until: u64,
        manual: bool,
        trips: u32,
        cause: Option<&str>,
    ) -> Result<Option<Record>, Stop> {
        let fields: Vec<String> = self
            .deadline(
                self.invocation(&SET_SCRIPT, key)
                    .arg(mode)
                    .arg(until)
                    .arg(u8::from(manual))
                    .arg(trips)
                    .arg(bounded_cause(cause.unwrap_or("")))
                    .invoke_async(writer),
            )
            .await?;
        Ok(self.checked(&id_of(key), &pairs(fields)))
    }

    /// A script's invocation with the keys and arguments every script takes.
    pub(super) fn invocation<'a>(
        &self,
        script: &'a redis::Script,
        key: &BreakerKey,
    ) -> redis::ScriptInvocation<'a> {
        let id = id_of(key);
        let keys = Keys::new(&self.config.prefix, &id);
        let mut invocation = script.key(keys.state);
        invocation
            .key(keys.count)
            .key(keys.probes)
            .key(&self.stream)
            .arg(&id)
            .arg(&self.origin)
            .arg(millis(self.config.key_ttl))
            .arg(STREAM_LENGTH)
            .arg(key.provider())
            .arg(key.endpoint())
            .arg(key.credential().map(|c| c.to_string()).unwrap_or_default());
        invocation
    }
}

/// Waits for changes after `cursor` on the stream (up to [`BLOCK`]); each as its entry id and
/// the key id it names, if it names one (the entry's other fields are not trusted: the record
/// itself is read).
pub(super) async fn read_stream(
    mut reader: MultiplexedConnection,
    stream: String,
    cursor: String,
) -> redis::RedisResult<Vec<(String, Option<String>)>> {
    let reply: Option<StreamReadReply> = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(256)
        .arg("BLOCK")
        .arg(millis(BLOCK))
        .arg("STREAMS")
        .arg(&stream)
        .arg(&cursor)
        .query_async(&mut reader)
        .await?;
    let mut entries = Vec::new();
    for key in reply.map(|reply| reply.keys).unwrap_or_default() {
        for entry in key.ids {
            let id = entry
                .map
                .get("id")
                .and_then(|value| redis::from_redis_value_ref::<String>(value).ok())
                .filter(|id| is_id(id));
            entries.push((entry.id, id));
        }
    }
    Ok(entries)
}

/// `HGETALL`'s flat answer as a map.
fn pairs(flat: Vec<String>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let mut items = flat.into_iter();
    while let (Some(name), Some(value)) = (items.next(), items.next()) {
        map.insert(name, value);
    }
    map
}

pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
