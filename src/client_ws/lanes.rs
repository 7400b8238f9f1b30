//! The lanes of one client connection (`stream_id`, OpenAI's WebSocket-mode guide,
//! <https://developers.openai.com/api/docs/guides/websocket-mode>: "Requests with the same
//! `stream_id` are processed FIFO, and events echo it"): a queue per lane, each lane's
//! responses one at a time in order, lanes in parallel, at most
//! [`max_lanes`](super::ClientWsConfigBuilder::max_lanes) lanes with work at once; and the
//! responses running, by id, for steering.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use http::StatusCode;
use serde_json::json;

use wsfirst_websocket::Steering;

use super::convert::{Create, Lane, error_event, with_lane};

/// The lanes' queues and which lanes run a response.
#[derive(Debug)]
pub(crate) struct Lanes {
    max_lanes: usize,
    /// Each lane with work: its queued requests, and whether it runs one.
    lanes: HashMap<Lane, (VecDeque<Create>, bool)>,
    queued: usize,
}

impl Lanes {
    pub(crate) fn new(max_lanes: usize) -> Self {
        Self {
            max_lanes,
            lanes: HashMap::new(),
            queued: 0,
        }
    }

    /// How many requests wait, all lanes together.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Queues a request on its lane; a lane past the maximum is refused with the error event
    /// that answers it.
    pub(crate) fn push(&mut self, create: Create) -> Result<(), String> {
        if !self.lanes.contains_key(&create.lane) && self.lanes.len() >= self.max_lanes {
            let max = self.max_lanes;
            let event = error_event(
                Some(StatusCode::BAD_REQUEST),
                &json!({
                    "type": "invalid_request_error",
                    "code": "too_many_lanes",
                    "message": format!(
                        "this connection runs at most {max} lanes (stream_id) at once: \
                         wait for a lane's responses to end"
                    ),
                    "param": "stream_id",
                }),
                None,
                None,
            );
            return Err(with_lane(event, &create.lane));
        }
        let lane = create.lane.clone();
        self.lanes.entry(lane).or_default().0.push_back(create);
        self.queued += 1;
        Ok(())
    }

    /// The next request of a lane that runs none, marked running.
    pub(crate) fn next_ready(&mut self) -> Option<Create> {
        let (_, (queue, running)) = self
            .lanes
            .iter_mut()
            .find(|(_, (queue, running))| !*running && !queue.is_empty())?;
        let create = queue.pop_front()?;
        *running = true;
        self.queued -= 1;
        Some(create)
    }

    /// The response of `lane` ended; a lane left without work is forgotten.
    pub(crate) fn finished(&mut self, lane: &Lane) {
        if let Some((queue, running)) = self.lanes.get_mut(lane) {
            *running = false;
            if queue.is_empty() {
                self.lanes.remove(lane);
            }
        }
    }

    /// The lanes that run a response.
    pub(crate) fn running(&self) -> impl Iterator<Item = &Lane> {
        self.lanes
            .iter()
            .filter(|(_, (_, running))| *running)
            .map(|(lane, _)| lane)
    }

    /// Takes every queued request out.
    pub(crate) fn drain_queued(&mut self) -> Vec<Create> {
        self.queued = 0;
        self.lanes
            .values_mut()
            .flat_map(|(queue, _)| queue.drain(..))
            .collect()
    }
}

/// The responses running on a client connection, by id (learned from each answer's first
/// event), with their lane and, when the upstream's WebSocket serves them, the [`Steering`]
/// handle of the upstream connection that runs them.
#[derive(Debug, Default)]
pub(crate) struct Running(Mutex<HashMap<String, (Lane, Option<Steering>)>>);

impl Running {
    pub(crate) fn started(&self, id: String, lane: &Lane, steering: Option<Steering>) {
        self.lock().insert(id, (lane.clone(), steering));
    }

    pub(crate) fn ended(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The lane of the running response `id`, and its steering handle when the upstream's
    /// WebSocket serves it.
    pub(crate) fn find(&self, id: &str) -> Option<(Lane, Option<Steering>)> {
        self.lock().get(id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Lane, Option<Steering>)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn create(lane: Option<&str>) -> Create {
        Create {
            body: Bytes::from_static(b"{}"),
            lane: lane.map(str::to_owned),
            warm_up: false,
            held: Default::default(),
        }
    }

    #[test]
    fn lanes_run_one_at_a_time_each_and_are_bounded() {
        let mut lanes = Lanes::new(2);
        lanes.push(create(Some("a"))).unwrap();
        lanes.push(create(Some("a"))).unwrap();
        lanes.push(create(None)).unwrap();
        let refused = lanes.push(create(Some("c"))).unwrap_err();
        assert!(refused.contains(r#""code":"too_many_lanes""#), "{refused}");
        assert!(refused.ends_with(r#","stream_id":"c"}"#), "{refused}");
        let mut started: Vec<Lane> = std::iter::from_fn(|| lanes.next_ready())
            .map(|create| create.lane)
            .collect();
        started.sort();
        assert_eq!(started, [None, Some("a".to_owned())]);
        assert_eq!(lanes.queued(), 1);
        lanes.finished(&Some("a".to_owned()));
        assert_eq!(lanes.next_ready().unwrap().lane.as_deref(), Some("a"));
        assert!(lanes.next_ready().is_none());
        lanes.finished(&Some("a".to_owned()));
        lanes.finished(&None);
        lanes.push(create(Some("c"))).unwrap();
    }
}
