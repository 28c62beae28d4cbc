//! Reprocess jobs (`POST /v1/jobs`, `weir reprocess`): a bucket listed page by page, each object
//! whose outputs are not up to date fed to a function through the bus, as a live upload is. A
//! job's pairs wait in a queue of their own (`bus::job_lane`), which the function's consumer
//! takes from only while a worker would sit idle, so live uploads keep their latency. The job's
//! record and one mark per finished object live in `<data>/jobs.redb` (`store.rs`): a job
//! interrupted goes on after a restart, and an object it finished is neither run nor counted
//! again.

mod fresh;
mod runner;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

pub use fresh::Target;

use crate::bus::Bus;
use crate::events::Event;
use crate::store::ObjectStore;

#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    #[error("no job {0}")]
    NoJob(String),
    #[error("no function {0}")]
    NoFunction(String),
    #[error("no bucket {0}")]
    NoBucket(String),
    #[error("{0}")]
    Invalid(String),
    #[error("function {function} already has a running job, {job}; cancel it or wait for it")]
    Busy { function: String, job: String },
    #[error("job {0} has already ended ({1})")]
    Ended(String, String),
    #[error("the job store failed: {0}")]
    Store(String),
    #[error("the object store: {0}")]
    Objects(String),
}

impl JobError {
    /// The HTTP status and the error's label.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            JobError::NoJob(_) | JobError::NoFunction(_) | JobError::NoBucket(_) => {
                (404, "not_found")
            }
            JobError::Invalid(_) => (400, "bad_request"),
            JobError::Busy { .. } | JobError::Ended(..) => (409, "conflict"),
            JobError::Store(_) => (500, "internal"),
            JobError::Objects(_) => (503, "unavailable"),
        }
    }
}

/// What a caller asks for (`POST /v1/jobs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub function: String,
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    /// Only objects modified at or after this time (RFC 3339, or a date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Objects sent to the function per second, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Run every object, up to date or not.
    #[serde(default)]
    pub force: bool,
    /// Say what would run; run nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Done,
    Cancelled,
    Failed,
}

/// How far a job is: `total` objects (known once the bucket has been counted at the start),
/// and what became of those it finished with. Each object is counted once, however often it
/// was listed or delivered around a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub total: Option<u64>,
    /// Ran, outputs written.
    pub processed: u64,
    /// Up to date already.
    pub skipped: u64,
    /// Given up on (dead-lettered, with the reason).
    pub failed: u64,
    /// Queued, then not run because the job was cancelled.
    pub cancelled: u64,
    /// A dry run's objects that would run.
    pub would_run: u64,
}

impl Counts {
    /// Objects the job has finished with, whatever became of them.
    pub fn finished(&self) -> u64 {
        self.processed + self.skipped + self.failed + self.cancelled + self.would_run
    }
}

/// What became of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Processed,
    Skipped,
    Failed(String),
    Cancelled,
    WouldRun,
}

impl Outcome {
    fn code(&self) -> u8 {
        match self {
            Outcome::Processed => 1,
            Outcome::Skipped => 2,
            Outcome::Failed(_) => 3,
            Outcome::Cancelled => 4,
            Outcome::WouldRun => 5,
        }
    }
}

/// The slowest and fastest `rate` a job takes (objects per second).
const MIN_RATE: f64 = 0.001;
const MAX_RATE: f64 = 1e6;

/// Failure reasons kept per job; the rest are counted under `OTHER`.
const MAX_REASONS: usize = 16;
const OTHER: &str = "(other reasons)";
/// Keys of a dry run's objects that would run, kept to show.
const MAX_SAMPLE: usize = 20;

/// A job as kept and shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub spec: JobSpec,
    pub state: JobState,
    pub counts: Counts,
    /// Why objects failed, with how many each.
    pub reasons: BTreeMap<String, u64>,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// Why the job itself failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The last key listed whose object is queued or marked: where listing goes on from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The whole bucket (under the prefix) has been listed.
    #[serde(default)]
    pub listed_all: bool,
    /// A dry run: some of the keys that would run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub would_run: Vec<String>,
}

impl Job {
    fn count(&mut self, outcome: &Outcome) {
        let c = &mut self.counts;
        match outcome {
            Outcome::Processed => c.processed += 1,
            Outcome::Skipped => c.skipped += 1,
            Outcome::Cancelled => c.cancelled += 1,
            Outcome::WouldRun => c.would_run += 1,
            Outcome::Failed(reason) => {
                c.failed += 1;
                let reason =
                    if self.reasons.len() < MAX_REASONS || self.reasons.contains_key(reason) {
                        reason.clone()
                    } else {
                        OTHER.to_string()
                    };
                *self.reasons.entry(reason).or_default() += 1;
            }
        }
    }

    fn end(&mut self, state: JobState) {
        if self.state == JobState::Running {
            self.state = state;
            self.ended = Some(crate::events::now());
        }
    }
}

/// What the dispatcher does with a job's pair before running it.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    Run,
    /// Already finished (a pair queued twice around a crash), or its job was cancelled: ack it.
    Drop,
}

/// The server's jobs: submitted, listed, cancelled, and told by the dispatcher what became of
/// each of their objects.
pub struct Jobs {
    store: store::JobStore,
    bus: Arc<dyn Bus>,
    objects: Arc<dyn ObjectStore>,
    /// Functions that can be reprocessed (those with an output).
    targets: HashMap<String, Target>,
    /// Rung when an object is marked: a runner waiting for room on the bus looks again.
    marked: Notify,
    stop: watch::Receiver<bool>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

/// A job's pair's event id: the job's id, then the key's, so a forced rerun (a new job) is
/// not taken for a duplicate, and the dispatcher can tell whose pair it is.
fn event_id(job: &str, key: &str) -> String {
    format!("{job}:{}", crate::events::stable_id(&[key]))
}

fn job_of(event: &Event) -> Option<&str> {
    (event.source == SOURCE).then(|| event.id.split(':').next().unwrap_or_default())
}

/// A job's events' `source`.
pub const SOURCE: &str = "weir:reprocess";

impl Jobs {
    pub fn open(
        data_dir: &std::path::Path,
        bus: Arc<dyn Bus>,
        objects: Arc<dyn ObjectStore>,
        targets: HashMap<String, Target>,
        stop: watch::Receiver<bool>,
    ) -> Result<Arc<Jobs>, JobError> {
        let store = store::JobStore::open(&data_dir.join("jobs.redb"))?;
        Ok(Arc::new(Jobs {
            store,
            bus,
            objects,
            targets,
            marked: Notify::new(),
            stop,
        }))
    }

    /// Go on with every job that was running when the server stopped.
    pub async fn resume(self: &Arc<Self>) -> Result<(), JobError> {
        for job in self.store.list().await? {
            if job.state != JobState::Running {
                continue;
            }
            if !self.runs(&job.spec.function) {
                // The config changed under it: say so rather than wait forever.
                let why = format!(
                    "function {} has no output in the config the server restarted with",
                    job.spec.function
                );
                tracing::warn!(job = %job.id, "{why}; the job fails");
                self.store
                    .update(&job.id, move |j| {
                        j.error = Some(why);
                        j.end(JobState::Failed);
                    })
                    .await?;
                continue;
            }
            tracing::info!(job = %job.id, function = %job.spec.function, "resuming a reprocess job");
            tokio::spawn(runner::run(self.clone(), job.id));
        }
        Ok(())
    }

    /// Check and start a job.
    pub async fn submit(self: &Arc<Self>, spec: JobSpec) -> Result<Job, JobError> {
        if !self.targets.contains_key(&spec.function) {
            return Err(JobError::NoFunction(spec.function.clone()));
        }
        check_spec(&spec)?;
        let probe = crate::store::PageRequest {
            prefix: String::new(),
            start_after: None,
            max: 1,
        };
        if let Err(e) = self.objects.list(&spec.bucket, &probe).await {
            return Err(match e.kind() {
                crate::store::StoreErrorKind::NotFound => JobError::NoBucket(spec.bucket.clone()),
                _ => JobError::Objects(e.to_string()),
            });
        }
        let created = crate::events::now();
        // Sortable by creation; the function, the process and a counter keep two jobs made in
        // one millisecond (here or on another node) apart.
        static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let unique = crate::events::stable_id(&[
            &created,
            &spec.function,
            &std::process::id().to_string(),
            &n.to_string(),
        ]);
        let id = format!(
            "j{}{}",
            created.replace(['-', ':', '.', 'T', 'Z'], ""),
            &unique[..8]
        );
        let job = Job {
            id,
            spec,
            state: JobState::Running,
            counts: Counts::default(),
            reasons: BTreeMap::new(),
            created,
            ended: None,
            error: None,
            cursor: None,
            listed_all: false,
            would_run: Vec::new(),
        };
        let job = self.store.create(job).await?;
        tracing::info!(job = %job.id, function = %job.spec.function, bucket = %job.spec.bucket, "reprocess job started");
        tokio::spawn(runner::run(self.clone(), job.id.clone()));
        Ok(job)
    }

    /// Whether `function` can be reprocessed here (it has an output): its jobs' lane has a
    /// consumer.
    pub fn runs(&self, function: &str) -> bool {
        self.targets.contains_key(function)
    }

    pub async fn list(&self) -> Result<Vec<Job>, JobError> {
        let mut all = self.store.list().await?;
        all.reverse();
        Ok(all)
    }

    pub async fn get(&self, id: &str) -> Result<Job, JobError> {
        self.store.get(id).await
    }

    /// Stop a running job: nothing more is queued, and what is queued is dropped unrun.
    pub async fn cancel(&self, id: &str) -> Result<Job, JobError> {
        // Decided in the writing transaction: a job that ended meanwhile stays as it ended.
        let job = self
            .store
            .update(id, |j| j.end(JobState::Cancelled))
            .await?;
        if job.state != JobState::Cancelled {
            let state = serde_json::to_value(job.state).unwrap_or_default();
            let state = state.as_str().unwrap_or_default().to_string();
            return Err(JobError::Ended(id.to_string(), state));
        }
        self.marked.notify_waiters();
        Ok(job)
    }

    /// Whether the dispatcher runs a job's pair: not when its object is finished already or its
    /// job was cancelled (it is then marked so). Any other event runs.
    pub async fn gate(&self, event: &Event) -> Gate {
        let Some(id) = job_of(event) else {
            return Gate::Run;
        };
        let key = event.object.key.clone();
        match self.store.get(id).await {
            Ok(job) if job.state == JobState::Cancelled => {
                self.finished(event, Outcome::Cancelled).await;
                Gate::Drop
            }
            Ok(_) => match self.store.marked(id, vec![key]).await {
                Ok(m) if m.first() == Some(&true) => Gate::Drop,
                _ => Gate::Run,
            },
            // Another node's job (they share the bus, not the job store), or the store failed:
            // run it, as a live event would be.
            Err(_) => Gate::Run,
        }
    }

    /// What became of a job's pair; recorded before the bus hears of it, so a pair delivered
    /// again after a crash finds its mark. Nothing for other events.
    pub async fn finished(&self, event: &Event, outcome: Outcome) {
        let Some(id) = job_of(event) else {
            return;
        };
        match self.store.mark(id, &event.object.key, outcome).await {
            Ok(_) => {}
            // Another node's job: its runner sees the pair leave the bus instead.
            Err(JobError::NoJob(_)) => {}
            Err(e) => {
                tracing::warn!(job = id, key = %event.object.key, error = %e, "cannot mark a job's object")
            }
        }
        self.marked.notify_waiters();
    }

    /// A job's pair has left the bus (acked, retried or dead-lettered): its runner, which ends
    /// the job once none is left, looks now rather than at its next tick.
    pub fn settled(&self, event: &Event) {
        if job_of(event).is_some() {
            self.marked.notify_waiters();
        }
    }

    pub fn close(&self) {
        self.store.close();
    }
}

/// A spec's own mistakes, each named.
fn check_spec(spec: &JobSpec) -> Result<(), JobError> {
    if let Some(rate) = spec.rate
        && !(MIN_RATE..=MAX_RATE).contains(&rate)
    {
        return Err(JobError::Invalid(format!(
            "rate must be above 0 objects per second ({MIN_RATE} to {MAX_RATE}), got {rate}"
        )));
    }
    if let Some(since) = &spec.since {
        since_ms(since)?;
    }
    if spec.bucket.is_empty() {
        return Err(JobError::Invalid("bucket must not be empty".into()));
    }
    Ok(())
}

/// `since` as milliseconds since the epoch: RFC 3339 (`2026-12-01T10:00:00Z`) or a date
/// (`2026-12-01`, midnight UTC).
pub fn since_ms(text: &str) -> Result<u64, JobError> {
    let t = text.trim();
    let full = if t.len() == 10 {
        format!("{t}T00:00:00Z")
    } else {
        t.to_string()
    };
    let at = humantime::parse_rfc3339_weak(full.trim_end_matches('Z')).map_err(|e| {
        JobError::Invalid(format!(
            "since: {text:?} is not a time ({e}); give RFC 3339, e.g. 2026-12-01T10:00:00Z, or a \
             date"
        ))
    })?;
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| JobError::Invalid(format!("since: {text:?} is before 1970")))?;
    Ok(ms.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_rfc3339_or_a_date_and_names_what_is_neither() {
        assert_eq!(since_ms("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(since_ms("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(since_ms("1970-01-01T00:00:01.5Z").unwrap(), 1500);
        let e = since_ms("yesterday").unwrap_err().to_string();
        assert!(e.contains("\"yesterday\" is not a time"), "{e}");
    }

    #[test]
    fn rates_must_be_positive() {
        let spec = |rate| JobSpec {
            function: "f".into(),
            bucket: "b".into(),
            prefix: String::new(),
            since: None,
            rate,
            force: false,
            dry_run: false,
        };
        assert!(check_spec(&spec(Some(0.0))).is_err());
        assert!(check_spec(&spec(Some(-1.0))).is_err());
        assert!(check_spec(&spec(Some(f64::NAN))).is_err());
        assert!(
            check_spec(&spec(Some(1e-300))).is_err(),
            "a pace beyond any duration"
        );
        assert!(check_spec(&spec(Some(2.5))).is_ok());
        assert!(check_spec(&spec(None)).is_ok());
    }

    #[test]
    fn reasons_are_kept_up_to_a_bound() {
        let mut job = Job {
            id: "j".into(),
            spec: JobSpec {
                function: "f".into(),
                bucket: "b".into(),
                prefix: String::new(),
                since: None,
                rate: None,
                force: false,
                dry_run: false,
            },
            state: JobState::Running,
            counts: Counts::default(),
            reasons: BTreeMap::new(),
            created: String::new(),
            ended: None,
            error: None,
            cursor: None,
            listed_all: false,
            would_run: vec![],
        };
        for i in 0..40 {
            job.count(&Outcome::Failed(format!("reason {}", i % 20)));
        }
        job.count(&Outcome::Processed);
        assert_eq!(job.counts.failed, 40);
        assert_eq!(job.counts.finished(), 41);
        assert_eq!(job.reasons.len(), MAX_REASONS + 1);
        assert_eq!(job.reasons["reason 0"], 2);
        assert_eq!(job.reasons[OTHER], 8);
        job.end(JobState::Done);
        job.end(JobState::Cancelled);
        assert_eq!(job.state, JobState::Done, "an ended job stays ended");
    }
}
