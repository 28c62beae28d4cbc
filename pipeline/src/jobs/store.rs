//! Where jobs are kept (`<data>/jobs.redb`): each job's record, and one mark per object it has
//! finished with, so a restarted job neither redoes nor recounts what it already finished.
//! Writes go through one thread that commits whatever is waiting in one transaction, as the
//! embedded bus does: a mark per finished object costs a share of an fsync, not one each.

use std::path::Path;
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use super::{Job, JobError, JobState, Outcome};

/// id → job (JSON).
const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
/// (job id, source key) → outcome (`Outcome::code`).
const MARKS: TableDefinition<(&str, &str), u8> = TableDefinition::new("marks");

type Change = Box<dyn FnOnce(&mut Job) + Send>;

enum Op {
    Create(Box<Job>),
    Update(String, Change),
    /// Mark an object finished; counted only the first time.
    Mark(String, String, Outcome),
    /// Drop a job's marks (it is done; its counts stay in its record).
    Forget(String),
}

type Reply = oneshot::Sender<Result<Job, JobError>>;
/// Where writes go; `None` once closed.
type Writer = Arc<Mutex<Option<mpsc::Sender<(Op, Reply)>>>>;

#[derive(Clone)]
pub(super) struct JobStore {
    db: Arc<Database>,
    ops: Writer,
}

fn failed(e: impl std::fmt::Display) -> JobError {
    JobError::Store(e.to_string())
}

impl JobStore {
    pub fn open(path: &Path) -> Result<JobStore, JobError> {
        let db = Arc::new(Database::create(path).map_err(failed)?);
        let txn = db.begin_write().map_err(failed)?;
        txn.open_table(JOBS).map_err(failed)?;
        txn.open_table(MARKS).map_err(failed)?;
        txn.commit().map_err(failed)?;
        let (tx, rx) = mpsc::channel(4096);
        let handle = db.clone();
        std::thread::Builder::new()
            .name("weir-jobs-writer".into())
            .spawn(move || write_loop(&handle, rx))
            .map_err(failed)?;
        Ok(JobStore {
            db,
            ops: Arc::new(Mutex::new(Some(tx))),
        })
    }

    async fn submit(&self, op: Op) -> Result<Job, JobError> {
        let ops = self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let ops = ops.ok_or_else(|| JobError::Store("the job store is closed".into()))?;
        let (reply, rx) = oneshot::channel();
        ops.send((op, reply))
            .await
            .map_err(|_| JobError::Store("the job store is closed".into()))?;
        rx.await
            .map_err(|_| JobError::Store("the job store's writer stopped".into()))?
    }

    pub async fn create(&self, job: Job) -> Result<Job, JobError> {
        self.submit(Op::Create(Box::new(job))).await
    }

    /// Change a job's record in one transaction; the record as written.
    pub async fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut Job) + Send + 'static,
    ) -> Result<Job, JobError> {
        self.submit(Op::Update(id.into(), Box::new(change))).await
    }

    pub async fn mark(&self, id: &str, key: &str, outcome: Outcome) -> Result<Job, JobError> {
        self.submit(Op::Mark(id.into(), key.into(), outcome)).await
    }

    /// Drop the marks of a job that is done: a bucket of millions is that many rows.
    pub async fn forget_marks(&self, id: &str) -> Result<Job, JobError> {
        self.submit(Op::Forget(id.into())).await
    }

    pub async fn get(&self, id: &str) -> Result<Job, JobError> {
        let (db, id) = (self.db.clone(), id.to_string());
        blocking(move || {
            let txn = db.begin_read().map_err(failed)?;
            let jobs = txn.open_table(JOBS).map_err(failed)?;
            let json = jobs.get(id.as_str()).map_err(failed)?;
            let json = json.ok_or_else(|| JobError::NoJob(id.clone()))?;
            serde_json::from_slice(json.value()).map_err(failed)
        })
        .await
    }

    /// Every job, oldest first (ids sort by creation time).
    pub async fn list(&self) -> Result<Vec<Job>, JobError> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_read().map_err(failed)?;
            let jobs = txn.open_table(JOBS).map_err(failed)?;
            let mut out = Vec::new();
            for row in jobs.iter().map_err(failed)? {
                let (_, json) = row.map_err(failed)?;
                out.push(serde_json::from_slice(json.value()).map_err(failed)?);
            }
            Ok(out)
        })
        .await
    }

    /// Which of `keys` job `id` has already finished with.
    pub async fn marked(&self, id: &str, keys: Vec<String>) -> Result<Vec<bool>, JobError> {
        let (db, id) = (self.db.clone(), id.to_string());
        blocking(move || {
            let txn = db.begin_read().map_err(failed)?;
            let marks = txn.open_table(MARKS).map_err(failed)?;
            keys.iter()
                .map(|k| {
                    Ok(marks
                        .get((id.as_str(), k.as_str()))
                        .map_err(failed)?
                        .is_some())
                })
                .collect()
        })
        .await
    }

    /// Stop taking writes; the writer ends once what is queued is written.
    pub fn close(&self) {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, JobError> + Send + 'static,
) -> Result<T, JobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| JobError::Store(format!("a job store task failed: {e}")))?
}

fn write_loop(db: &Database, rx: mpsc::Receiver<(Op, Reply)>) {
    crate::group_commit::run(rx, |ops| apply(db, ops));
}

/// Why `job` may not be made: its id is taken, or (not a dry run) its function already has a
/// running job. Checked in the writing transaction, so two at once cannot both pass.
fn busy(jobs: &redb::Table<&str, &[u8]>, job: &Job) -> Result<(), JobError> {
    if jobs.get(job.id.as_str()).map_err(failed)?.is_some() {
        return Err(JobError::Store(format!("job id {} is taken", job.id)));
    }
    if job.spec.dry_run {
        return Ok(());
    }
    for row in jobs.iter().map_err(failed)? {
        let (_, json) = row.map_err(failed)?;
        let other: Job = serde_json::from_slice(json.value()).map_err(failed)?;
        if other.state == JobState::Running
            && !other.spec.dry_run
            && other.spec.function == job.spec.function
        {
            return Err(JobError::Busy {
                function: job.spec.function.clone(),
                job: other.id,
            });
        }
    }
    Ok(())
}

/// One transaction for the batch; each op's own failure (no such job) is its answer alone.
fn apply(db: &Database, ops: Vec<Op>) -> Result<Vec<Result<Job, JobError>>, JobError> {
    let txn = db.begin_write().map_err(failed)?;
    let mut results = Vec::with_capacity(ops.len());
    {
        let mut jobs = txn.open_table(JOBS).map_err(failed)?;
        let mut marks = txn.open_table(MARKS).map_err(failed)?;
        let read = |jobs: &redb::Table<&str, &[u8]>, id: &str| -> Result<Job, JobError> {
            let json = jobs.get(id).map_err(failed)?;
            let json = json.ok_or_else(|| JobError::NoJob(id.to_string()))?;
            serde_json::from_slice(json.value()).map_err(failed)
        };
        let write = |jobs: &mut redb::Table<&str, &[u8]>, job: &Job| -> Result<(), JobError> {
            let json = serde_json::to_vec(job).map_err(failed)?;
            jobs.insert(job.id.as_str(), json.as_slice())
                .map_err(failed)?;
            Ok(())
        };
        for op in ops {
            let result = match op {
                Op::Create(job) => busy(&jobs, &job).and_then(|()| {
                    write(&mut jobs, &job)?;
                    Ok(*job)
                }),
                Op::Update(id, change) => read(&jobs, &id).and_then(|mut job| {
                    change(&mut job);
                    write(&mut jobs, &job).map(|()| job)
                }),
                Op::Forget(id) => read(&jobs, &id).and_then(|job| {
                    // Every (id, key) sorts before (id + "\0", ""), and nothing else of this
                    // job's does.
                    let end = format!("{id}\0");
                    marks
                        .retain_in((id.as_str(), "")..(end.as_str(), ""), |_, _| false)
                        .map_err(failed)?;
                    Ok(job)
                }),
                Op::Mark(id, key, outcome) => read(&jobs, &id).and_then(|mut job| {
                    let key = (id.as_str(), key.as_str());
                    if marks.get(key).map_err(failed)?.is_none() {
                        marks.insert(key, outcome.code()).map_err(failed)?;
                        job.count(&outcome);
                        write(&mut jobs, &job)?;
                    }
                    Ok(job)
                }),
            };
            results.push(result);
        }
    }
    txn.commit().map_err(failed)?;
    Ok(results)
}
