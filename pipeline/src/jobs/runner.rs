//! One job's run: count the objects, then list page by page from the cursor, mark what is up to
//! date, queue the rest on the function's job lane (paced by `rate`, a page at a time while
//! fewer than `WINDOW` wait on the bus), save the cursor after each page, and end once the
//! whole prefix is listed and none of the job's pairs is left on the bus.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use super::fresh::{SourceObject, up_to_date};
use super::{Job, JobError, JobState, Jobs, MAX_SAMPLE, Outcome, SOURCE, event_id};
use crate::bus::job_lane;
use crate::events::{Event, ObjectRef};
use crate::store::{ObjectInfo, PageRequest, StoreErrorKind};

/// A page is queued only while fewer than this many of the job's pairs wait on the bus, so at
/// most `WINDOW + PAGE` do: enough to keep every worker busy, few enough that a cancel is not
/// behind a whole bucket.
const WINDOW: u64 = 500;
/// Objects listed per page while queueing (the count at the start lists 1,000 a page).
const PAGE: usize = 500;
/// Sources checked for up-to-date outputs at once.
const CHECKS_AT_ONCE: usize = 16;

pub(super) async fn run(jobs: Arc<Jobs>, id: String) {
    match drive(&jobs, &id).await {
        Ok(()) => {}
        Err(Stop::Interrupted) => {
            tracing::info!(job = %id, "reprocess job interrupted; it goes on after a restart")
        }
        Err(Stop::Failed(e)) => {
            tracing::warn!(job = %id, error = %e, "reprocess job failed");
            let why = e.to_string();
            let _ = jobs
                .store
                .update(&id, move |j| {
                    j.error = Some(why);
                    j.end(JobState::Failed);
                })
                .await;
        }
    }
}

enum Stop {
    /// Shutdown, or the job is no longer running (cancelled): leave it as it is.
    Interrupted,
    Failed(JobError),
}

impl From<JobError> for Stop {
    fn from(e: JobError) -> Stop {
        Stop::Failed(e)
    }
}

async fn drive(jobs: &Arc<Jobs>, id: &str) -> Result<(), Stop> {
    let mut job = running(jobs, id).await?;
    if job.counts.total.is_none() {
        let total = count(jobs, &job).await?;
        job = jobs
            .store
            .update(id, move |j| j.counts.total = Some(total))
            .await?;
    }
    let mut pace = Pace::new(job.spec.rate);
    while !job.listed_all {
        if job.state != JobState::Running {
            return Err(Stop::Interrupted);
        }
        let page = list(jobs, &job, job.cursor.clone(), PAGE).await?;
        let last = page.objects.last().map(|o| o.key.clone());
        let objects = matching(&job, page.objects);
        let sample = feed(jobs, &job, &objects, &mut pace).await?;
        let listed_all = page.next.is_none();
        job = jobs
            .store
            .update(id, move |j| {
                if last.is_some() {
                    j.cursor = last;
                }
                j.listed_all = listed_all;
                let room = MAX_SAMPLE.saturating_sub(j.would_run.len());
                j.would_run.extend(sample.into_iter().take(room));
            })
            .await?;
        room_on_the_bus(jobs, &job).await?;
    }
    // Everything is queued or marked: the job ends when none of its pairs is left on the bus
    // (marks are written before acks, so by then every object here is counted; pairs other
    // nodes finished are counted there).
    let lane = job_lane(&job.spec.function);
    loop {
        let waiting = jobs.marked.notified();
        job = running(jobs, id).await?;
        if jobs.bus.pending(&lane).await.ok() == Some(0) {
            jobs.store.update(id, |j| j.end(JobState::Done)).await?;
            jobs.store.forget_marks(id).await?;
            tracing::info!(job = %id, counts = ?job.counts, "reprocess job done");
            return Ok(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), waiting).await;
    }
}

/// The job, while it is running and the server is not stopping.
async fn running(jobs: &Jobs, id: &str) -> Result<Job, Stop> {
    if *jobs.stop.borrow() {
        return Err(Stop::Interrupted);
    }
    let job = jobs.store.get(id).await?;
    if job.state != JobState::Running {
        return Err(Stop::Interrupted);
    }
    Ok(job)
}

/// The objects under the prefix (and since the time asked), counted once for the progress.
async fn count(jobs: &Jobs, job: &Job) -> Result<u64, Stop> {
    let (mut total, mut after) = (0, None);
    loop {
        let page = list(jobs, job, after, 1000).await?;
        after = page.objects.last().map(|o| o.key.clone());
        total += matching(job, page.objects).len() as u64;
        if page.next.is_none() {
            return Ok(total);
        }
    }
}

/// One page after `after`; a transient failure is retried (1 s, doubling to 30 s), a bucket
/// that went away fails the job.
async fn list(
    jobs: &Jobs,
    job: &Job,
    after: Option<String>,
    max: usize,
) -> Result<crate::store::Page, Stop> {
    let request = PageRequest {
        prefix: job.spec.prefix.clone(),
        start_after: after,
        max,
    };
    let mut pause = Duration::from_secs(1);
    loop {
        match jobs.objects.list(&job.spec.bucket, &request).await {
            Ok(page) => return Ok(page),
            Err(e) if e.kind() == StoreErrorKind::Transient => {
                tracing::warn!(job = %job.id, error = %e, "cannot list the bucket; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
                if *jobs.stop.borrow() {
                    return Err(Stop::Interrupted);
                }
            }
            Err(e) => return Err(Stop::Failed(JobError::Objects(e.to_string()))),
        }
    }
}

fn matching(job: &Job, objects: Vec<ObjectInfo>) -> Vec<ObjectInfo> {
    let since = job
        .spec
        .since
        .as_deref()
        .and_then(|s| super::since_ms(s).ok());
    objects
        .into_iter()
        .filter(|o| since.is_none_or(|t| o.modified_ms >= t))
        .collect()
}

/// Mark what is up to date, queue the rest (or, in a dry run, mark it as what would run).
/// Objects the job already marked (before a restart) are left alone; one queued before a
/// restart and queued again is one pair on the bus (its event id is the same). A dry run's
/// keys.
async fn feed(
    jobs: &Arc<Jobs>,
    job: &Job,
    objects: &[ObjectInfo],
    pace: &mut Pace,
) -> Result<Vec<String>, Stop> {
    let keys = objects.iter().map(|o| o.key.clone()).collect();
    let marked = jobs.store.marked(&job.id, keys).await?;
    let todo: Vec<&ObjectInfo> = objects
        .iter()
        .zip(marked)
        .filter(|(_, m)| !m)
        .map(|(o, _)| o)
        .collect();
    // Boxed: the futures borrow the job and the page, and a spawned task must own a future
    // whose type names no closure over those borrows.
    type Check<'a> = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<bool, crate::store::StoreError>> + Send + 'a>,
    >;
    let checks: Vec<Check<'_>> = todo
        .iter()
        .map(|o| Box::pin(is_fresh(jobs, job, o)) as Check<'_>)
        .collect();
    let checked: Vec<_> = futures::stream::iter(checks)
        .buffered(CHECKS_AT_ONCE)
        .collect()
        .await;
    // An output that cannot be looked at now does not stop the job: its source runs again.
    let fresh: Vec<bool> = checked
        .into_iter()
        .zip(&todo)
        .map(|(r, o)| {
            r.unwrap_or_else(|e| {
                tracing::warn!(job = %job.id, key = %o.key, error = %e, "cannot tell whether the outputs are up to date; running it");
                false
            })
        })
        .collect();
    let mut sample = Vec::new();
    let (mut marks, mut runs) = (Vec::new(), Vec::new());
    for (o, fresh) in todo.into_iter().zip(fresh) {
        if fresh {
            marks.push((o, Outcome::Skipped));
        } else if job.spec.dry_run {
            sample.push(o.key.clone());
            marks.push((o, Outcome::WouldRun));
        } else {
            runs.push(event(job, o));
        }
    }
    // Together, so they share the stores' commits.
    let marks = marks
        .into_iter()
        .map(|(o, outcome)| jobs.store.mark(&job.id, &o.key, outcome));
    futures::future::try_join_all(marks).await?;
    let lane = job_lane(&job.spec.function);
    let publish = |e: Event| {
        let lane = lane.clone();
        async move {
            if *jobs.stop.borrow() {
                return Err(Stop::Interrupted);
            }
            jobs.bus.publish(e, vec![lane]).await.map_err(|e| match e {
                crate::bus::BusError::Closed => Stop::Interrupted,
                e => Stop::Failed(JobError::Store(format!("the bus: {e}"))),
            })
        }
    };
    if pace.every.is_some() {
        for e in runs {
            pace.wait().await;
            publish(e).await?;
        }
    } else {
        let all = futures::stream::iter(runs.into_iter().map(publish)).buffer_unordered(64);
        all.collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<()>, _>>()?;
    }
    Ok(sample)
}

/// Whether `o`'s outputs are up to date (never, with `force`).
async fn is_fresh(
    jobs: &Jobs,
    job: &Job,
    o: &ObjectInfo,
) -> Result<bool, crate::store::StoreError> {
    if job.spec.force {
        return Ok(false);
    }
    let source = SourceObject {
        bucket: &job.spec.bucket,
        key: &o.key,
        etag: &o.etag,
    };
    let target = &jobs.targets[&job.spec.function];
    up_to_date(jobs.objects.as_ref(), target, &job.spec.function, &source).await
}

fn event(job: &Job, o: &ObjectInfo) -> Event {
    Event {
        id: event_id(&job.id, &o.key),
        source: SOURCE.into(),
        time: crate::events::now(),
        name: "s3:ObjectCreated:Put".into(),
        object: ObjectRef::listed(&job.spec.bucket, o),
        ..Default::default()
    }
}

/// Wait while the job has `WINDOW` pairs or more waiting on the bus.
async fn room_on_the_bus(jobs: &Jobs, job: &Job) -> Result<(), Stop> {
    let lane = job_lane(&job.spec.function);
    loop {
        let waiting = jobs.marked.notified();
        running(jobs, &job.id).await?;
        let pending = jobs.bus.pending(&lane).await.unwrap_or(0);
        if pending < WINDOW {
            return Ok(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), waiting).await;
    }
}

/// At most `rate` objects per second, evenly spaced.
struct Pace {
    every: Option<Duration>,
    next: Instant,
}

impl Pace {
    fn new(rate: Option<f64>) -> Pace {
        Pace {
            // The rate is checked (`check_spec`), so the spacing fits a duration.
            every: rate.and_then(|r| Duration::try_from_secs_f64(1.0 / r).ok()),
            next: Instant::now(),
        }
    }

    async fn wait(&mut self) {
        let Some(every) = self.every else {
            return;
        };
        let now = Instant::now();
        if self.next > now {
            tokio::time::sleep_until(self.next).await;
        }
        // No saving up: a pause (a full bus) does not buy a burst afterwards.
        self.next = self.next.max(now) + every;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_pace_spaces_objects_evenly_and_saves_nothing_up() {
        let mut pace = Pace::new(Some(4.0));
        let start = Instant::now();
        for _ in 0..5 {
            pace.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
        tokio::time::sleep(Duration::from_secs(10)).await;
        let later = Instant::now();
        pace.wait().await;
        pace.wait().await;
        assert_eq!(
            later.elapsed(),
            Duration::from_millis(250),
            "no burst after a pause"
        );
        let mut free = Pace::new(None);
        let t = Instant::now();
        free.wait().await;
        assert_eq!(t.elapsed(), Duration::ZERO);
    }
}
