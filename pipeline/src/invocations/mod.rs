//! Asynchronous invokes' results, in `<data>/invocations.redb`: what `GET /v1/invocations/{id}`
//! answers. A record is written `queued` once the request is on the bus (unless the run beat
//! it there) and `succeeded` or `failed` before the bus hears the outcome, so a restart in
//! between runs the request again and the record still ends. Records are kept for
//! `invocations.keep` (a waiting one from when it came, a finished one from when it ended) and
//! bounded by `max_results` and `max_bytes`: past either, the oldest go first, in the
//! transaction that writes another. A node's results are its own: on a shared bus a result
//! lives on the node that ran it, and the node that took the request says `queued` until its
//! record expires.

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
/// (`Record::since`, ms; id) → the bytes it holds: the order in which records go.
const ORDER: TableDefinition<(u64, &str), u64> = TableDefinition::new("order");
/// "bytes" → what the records hold in all.
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
        tx.open_table(ORDER).map_err(|e| fail(e.into()))?;
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
        let now = self.clock.now_ms();
        let record = Record::waiting(id.to_string(), function.to_string(), now);
        let keep = self.keep;
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            let known = tx.open_table(RECORDS)?.get(record.id.as_str())?.is_some();
            if !known {
                put(&tx, &record, &[], &keep, now)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Record how `id` ended. A reply over `max_bytes` is recorded as a failure instead.
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
            let earlier = tx
                .open_table(RECORDS)?
                .get(id.as_str())?
                .and_then(|v| decode(v.value()));
            let mut record = earlier.unwrap_or_else(|| Record::waiting(id, function, now));
            record.finished_ms = Some(now);
            let body = match outcome {
                Outcome::Succeeded { body, .. } if body.len() as u64 > keep.max_bytes => {
                    record.status = Status::Failed;
                    let why = format!(
                        "the reply is {} bytes, more than invocations.max_bytes ({}) keeps",
                        body.len(),
                        keep.max_bytes
                    );
                    record.error = Some(("too_large".into(), why));
                    Vec::new()
                }
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
            put(&tx, &record, &body, &keep, now)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// The record and its reply's body; `None` when unknown, or older than `keep` (what the
    /// next write removes).
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
            if now.saturating_sub(record.since()) > keep.as_millis() as u64 {
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

impl Record {
    /// One that came at `now` and has not ended.
    fn waiting(id: String, function: String, now: u64) -> Record {
        Record {
            id,
            function,
            status: Status::Queued,
            submitted_ms: now,
            finished_ms: None,
            reply_status: None,
            content_type: None,
            error: None,
        }
    }

    /// Its place in the order records go in: when it finished, or while it waits, when it came.
    fn since(&self) -> u64 {
        self.finished_ms.unwrap_or(self.submitted_ms)
    }
}

/// Write `record` and `body` in `tx` in place of what its id held, then let the oldest go
/// while a bound is passed: older than `keep`, more than `max_results`, more than `max_bytes`.
/// The record just written stays. A waiting one counts and expires too, so records whose run
/// ended elsewhere (another node on a shared bus) do not pile up.
fn put(
    tx: &redb::WriteTransaction,
    record: &Record,
    body: &[u8],
    keep: &Keep,
    now: u64,
) -> Result<(), redb::Error> {
    let mut records = tx.open_table(RECORDS)?;
    let mut bodies = tx.open_table(BODIES)?;
    let mut order = tx.open_table(ORDER)?;
    let mut totals = tx.open_table(TOTALS)?;
    let mut bytes = totals.get("bytes")?.map_or(0, |v| v.value());
    let earlier = records
        .get(record.id.as_str())?
        .and_then(|v| decode(v.value()));
    // Written before (queued, or run again after a restart): its bytes are counted out.
    if let Some(e) = earlier
        && let Some(held) = order.remove((e.since(), e.id.as_str()))?
    {
        bytes = bytes.saturating_sub(held.value());
    }
    let encoded = encode(record);
    let held = (encoded.len() + body.len()) as u64;
    records.insert(record.id.as_str(), encoded.as_slice())?;
    bodies.insert(record.id.as_str(), body)?;
    order.insert((record.since(), record.id.as_str()), held)?;
    bytes += held;
    while order.len()? > 1 {
        let (at, old, held) = match order.first()? {
            Some((key, held)) => {
                let (at, old) = key.value();
                (at, old.to_string(), held.value())
            }
            None => break,
        };
        let expired = now.saturating_sub(at) > keep.keep.as_millis() as u64;
        if !(expired || order.len()? > keep.max_results || bytes > keep.max_bytes) {
            break;
        }
        order.remove((at, old.as_str()))?;
        records.remove(old.as_str())?;
        bodies.remove(old.as_str())?;
        bytes = bytes.saturating_sub(held);
    }
    totals.insert("bytes", bytes)?;
    Ok(())
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
