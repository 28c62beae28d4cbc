//! Triggers: one file each, all feeding one `Ingress` (`ingress.rs`), which routes events and
//! records them on the bus. The webhook (`webhook.rs`), the built-in S3 endpoint's uploads
//! (`s3_endpoint.rs`; the S3 protocol server itself is `crate::s3_endpoint`), the bucket
//! poller (`poller.rs`, its state in `poll_state.rs`), the NATS subject trigger (`nats.rs`) and
//! the cron trigger (`cron.rs`).

pub mod cron;
mod ingress;
pub mod nats;
pub mod poll_state;
pub mod poller;
pub mod s3_endpoint;
pub mod webhook;

pub use ingress::Ingress;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{LoadedFunction, Trigger};
use crate::events::Event;
use crate::store::ObjectStore;

/// A poller's events, recorded on the bus for its own function only: other functions hear of
/// the same objects through their own triggers.
struct ForFunction {
    events: Arc<Ingress>,
    function: String,
}

#[async_trait::async_trait]
impl poller::Sink for ForFunction {
    async fn emit(&self, events: Vec<Event>) -> Result<(), String> {
        let all = events
            .into_iter()
            .map(|e| self.events.record_to(e, vec![self.function.clone()]));
        futures::future::try_join_all(all)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// Start a poller for every `poll` trigger; each ends when `stop` turns true.
pub fn start_pollers(
    functions: &[LoadedFunction],
    store: &Arc<dyn ObjectStore>,
    events: &Arc<Ingress>,
    data_dir: &std::path::Path,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, poll_state::StateError> {
    let mut state = None;
    let mut tasks = Vec::new();
    for f in functions {
        for t in &f.spec.triggers {
            let Trigger::Poll(p) = t else { continue };
            let state = match &state {
                Some(s) => poll_state::PollState::clone(s),
                None => state
                    .insert(poll_state::PollState::open(&data_dir.join("pollers.redb"))?)
                    .clone(),
            };
            let poller = poller::Poller {
                function: f.spec.name.clone(),
                trigger: p.clone(),
                store: store.clone(),
                state,
                sink: Arc::new(ForFunction {
                    events: events.clone(),
                    function: f.spec.name.clone(),
                }),
                page: 1000,
            };
            tasks.push(tokio::spawn(poller.run(stop.clone())));
        }
    }
    Ok(tasks)
}

/// Start a task for every `cron` trigger; each ends when `stop` turns true.
pub fn start_crons(
    functions: &[LoadedFunction],
    events: &Arc<Ingress>,
    data_dir: &std::path::Path,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, cron::CronStateError> {
    let mut state = None;
    let mut tasks = Vec::new();
    for f in functions {
        for (i, t) in f.spec.triggers.iter().enumerate() {
            let Trigger::Cron(c) = t else { continue };
            // Checked with the config; a schedule that no longer parses is a bug, said loudly.
            let schedule = match cron::Schedule::parse(&c.schedule, &c.timezone) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(function = %f.spec.name, error = %e, "a cron trigger is not started");
                    continue;
                }
            };
            let state = match &state {
                Some(s) => Arc::clone(s),
                None => state.insert(cron::open_state(data_dir)?).clone(),
            };
            let rule = format!("{}-cron-{i}", f.spec.name);
            let task = cron::CronTask {
                function: f.spec.name.clone(),
                state_key: format!("{rule} {} {}", c.schedule, c.timezone),
                rule,
                schedule,
                payload: serde_json::to_value(&c.payload).unwrap_or_default(),
                state,
                sink: Arc::new(ForFunction {
                    events: events.clone(),
                    function: f.spec.name.clone(),
                }),
                clock: Arc::new(crate::bus::SystemClock),
            };
            tasks.push(tokio::spawn(task.run(stop.clone())));
        }
    }
    Ok(tasks)
}
