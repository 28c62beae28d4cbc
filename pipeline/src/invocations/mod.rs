//! Asynchronous invokes' results, in `<data>/invocations.redb`: what `GET /v1/invocations/{id}`
//! answers. A record is written `queued` once the request is on the bus (unless the run beat
//! it there) and `succeeded` or `failed` before the bus hears the outcome, so a restart in
//! between runs the request again and the record still ends. Finished records are kept for
//! `invocations.keep` and bounded by `max_results` and `max_bytes`: past either, the oldest
//! finished go first, in the transaction that finishes another. A node's results are its own;
//! with a shared bus a result lives on the node that ran it.

pub mod run;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::bus::Clock;

/// id → the record as JSON (no body).
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
/// id → the reply's body.
const BODIES: TableDefinition<&str, &[u8]> = TableDefinition::new("bodies");
/// (finished at, ms; id) → the bytes it holds: the order in which finished ones go.
const FINISHED: TableDefinition<(u64, &str), u64> = TableDefinition::new("finished");
/// "bytes" → what the finished ones hold in all.
const TOTALS: TableDefinition<&str, u64> = TableDefinition::new("totals");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Succeeded,
    Failed,
}

/// One invocation, less its reply's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub function: String,
    pub status: Status,
    pub submitted_ms: u64,
    pub finished_ms: Option<u64>,
    /// What the call that waits would have answered: its status and content type.
    pub reply_status: Option<u16>,
    pub content_type: Option<String>,
    /// Why it failed: the error kind's label and the reason.
    pub error: Option<(String, String)>,
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
    Failed {
        kind: String,
        reason: String,
    },
}

/// The `invocations` section's bounds on what is kept.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    pub keep: Duration,
    pub max_results: u64,
    pub max_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("the invocation results {path}: {message}")]
pub struct ResultsError {
    path: String,
    message: String,
}

#[derive(Clone)]
pub struct Results {
    db: Arc<Database>,
    path: String,
    keep: Keep,
    clock: Arc<dyn Clock>,
}

impl Results {
    pub fn open(path: &Path, keep: Keep, clock: Arc<dyn Clock>) -> Result<Results, ResultsError> {
        let name = path.display().to_string();
        let fail = |e: redb::Error| ResultsError {
            path: name.clone(),
            message: e.to_string(),
        };
        let db = Database::create(path).map_err(|e| fail(e.into()))?;
        let tx = db.begin_write().map_err(|e| fail(e.into()))?;
        tx.open_table(RECORDS).map_err(|e| fail(e.into()))?;
        tx.open_table(BODIES).map_err(|e| fail(e.into()))?;
        tx.open_table(FINISHED).map_err(|e| fail(e.into()))?;
        tx.open_table(TOTALS).map_err(|e| fail(e.into()))?;
        tx.commit().map_err(|e| fail(e.into()))?;
        Ok(Results {
            db: Arc::new(db),
            path: name,
            keep,
            clock,
        })
    }

    /// Record `id` as waiting, unless its run already ended (the run may beat the submitter).
    pub async fn queued(&self, id: &str, function: &str) -> Result<(), ResultsError> {
        let record = Record {
            id: id.to_string(),
            function: function.to_string(),
            status: Status::Queued,
            submitted_ms: self.clock.now_ms(),
            finished_ms: None,
            reply_status: None,
            content_type: None,
            error: None,
        };
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            {
                let mut records = tx.open_table(RECORDS)?;
                if records.get(record.id.as_str())?.is_none() {
                    records.insert(record.id.as_str(), encode(&record).as_slice())?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Record how `id` ended, then let the oldest finished go while the bounds are passed.
    pub async fn finish(
        &self,
        id: &str,
        function: &str,
        outcome: Outcome,
    ) -> Result<(), ResultsError> {
        let now = self.clock.now_ms();
        let (id, function, keep) = (id.to_string(), function.to_string(), self.keep);
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            {
                let mut records = tx.open_table(RECORDS)?;
                let mut bodies = tx.open_table(BODIES)?;
                let mut finished = tx.open_table(FINISHED)?;
                let mut totals = tx.open_table(TOTALS)?;
                let mut bytes = totals.get("bytes")?.map_or(0, |v| v.value());
                let earlier: Option<Record> =
                    records.get(id.as_str())?.and_then(|v| decode(v.value()));
                // Run again after a restart: the first ending's bytes are counted out.
                if let Some(done) = earlier.as_ref().and_then(|r| r.finished_ms)
                    && let Some(held) = finished.remove((done, id.as_str()))?
                {
                    bytes = bytes.saturating_sub(held.value());
                }
                let mut record = earlier.unwrap_or(Record {
                    id: id.clone(),
                    function,
                    status: Status::Queued,
                    submitted_ms: now,
                    finished_ms: None,
                    reply_status: None,
                    content_type: None,
                    error: None,
                });
                record.finished_ms = Some(now);
                let body = match outcome {
                    Outcome::Succeeded {
                        status,
                        content_type,
                        body,
                    } => {
                        record.status = Status::Succeeded;
                        record.reply_status = Some(status);
                        record.content_type = Some(content_type);
                        body
                    }
                    Outcome::Failed { kind, reason } => {
                        record.status = Status::Failed;
                        record.error = Some((kind, reason));
                        Vec::new()
                    }
                };
                let encoded = encode(&record);
                let held = (encoded.len() + body.len()) as u64;
                records.insert(id.as_str(), encoded.as_slice())?;
                bodies.insert(id.as_str(), body.as_slice())?;
                finished.insert((now, id.as_str()), held)?;
                bytes += held;
                // The oldest finished go while any bound is passed (the newest one stays).
                while finished.len()? > 1 {
                    let (at, old, held) = match finished.first()? {
                        Some((key, held)) => {
                            let (at, old) = key.value();
                            (at, old.to_string(), held.value())
                        }
                        None => break,
                    };
                    let expired = now.saturating_sub(at) > keep.keep.as_millis() as u64;
                    if !(expired || finished.len()? > keep.max_results || bytes > keep.max_bytes) {
                        break;
                    }
                    finished.remove((at, old.as_str()))?;
                    records.remove(old.as_str())?;
                    bodies.remove(old.as_str())?;
                    bytes = bytes.saturating_sub(held);
                }
                totals.insert("bytes", bytes)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// The record and its reply's body; `None` when unknown, or finished longer ago than
    /// `keep` (what the next ending would remove).
    pub async fn get(&self, id: &str) -> Result<Option<(Record, Vec<u8>)>, ResultsError> {
        let (id, now, keep) = (id.to_string(), self.clock.now_ms(), self.keep.keep);
        self.blocking(move |db| {
            let tx = db.begin_read()?;
            let Some(record) = tx
                .open_table(RECORDS)?
                .get(id.as_str())?
                .and_then(|v| decode(v.value()))
            else {
                return Ok(None);
            };
            if record
                .finished_ms
                .is_some_and(|at| now.saturating_sub(at) > keep.as_millis() as u64)
            {
                return Ok(None);
            }
            let body = tx
                .open_table(BODIES)?
                .get(id.as_str())?
                .map(|v| v.value().to_vec())
                .unwrap_or_default();
            Ok(Some((record, body)))
        })
        .await
    }

    /// Runs `f` on the blocking pool: redb commits wait for the disk.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, ResultsError> {
        let db = self.db.clone();
        let fail = |message: String| ResultsError {
            path: self.path.clone(),
            message,
        };
        match tokio::task::spawn_blocking(move || f(&db)).await {
            Ok(r) => r.map_err(|e| fail(e.to_string())),
            Err(e) => Err(fail(e.to_string())),
        }
    }
}

fn encode(r: &Record) -> Vec<u8> {
    serde_json::to_vec(r).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Option<Record> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
