//! The embedded bus's writer: its tables, and what one group of operations does to them in one
//! redb transaction (`group_commit`: one fsync for many events, off the async runtime).

use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use super::{BusError, DeadLetter};
use crate::events::Event;

/// seq → event (JSON).
pub(super) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// (function, seq) → (attempts so far, not before, ms since the epoch).
pub(super) const PENDING: TableDefinition<(&str, u64), (u32, u64)> =
    TableDefinition::new("pending");
/// seq → functions still to finish it; the event is dropped at zero.
pub(super) const REFS: TableDefinition<u64, u32> = TableDefinition::new("refs");
/// id → dead letter (JSON); ids grow, so the newest is last.
pub(super) const DEAD: TableDefinition<u64, &[u8]> = TableDefinition::new("dead");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// (event id, function) → seq while the pair is pending: an event published again for a
/// function that has not finished it (a webhook sent twice, a page a poller or a reprocess job
/// emits again after a crash) is recorded once, as JetStream's message ids do.
pub(super) const IDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("ids");

pub(super) fn store(e: impl Into<redb::Error>) -> BusError {
    BusError::Store(e.into().to_string())
}

pub(super) enum Op {
    Publish(Box<Event>, Vec<String>),
    Ack(String, u64),
    Retry {
        function: String,
        seq: u64,
        attempts: u32,
        not_before_ms: u64,
    },
    /// The letter, and the pair's queue and sequence number.
    Dead(Box<DeadLetter>, String, u64),
    /// Remove dead letters; answers how many were there.
    Undead(Vec<u64>),
}

pub(super) type Reply = oneshot::Sender<Result<u64, BusError>>;

/// Apply what is waiting in one transaction per group (`group_commit`).
pub(super) fn write_loop(db: &Database, rx: mpsc::Receiver<(Op, Reply)>) {
    crate::group_commit::run(rx, |ops| {
        apply(db, &ops).map(|seqs| seqs.into_iter().map(Ok).collect())
    });
}

fn apply(db: &Database, batch: &[Op]) -> Result<Vec<u64>, BusError> {
    let txn = db.begin_write().map_err(store)?;
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut events = txn.open_table(EVENTS).map_err(store)?;
        let mut pending = txn.open_table(PENDING).map_err(store)?;
        let mut refs = txn.open_table(REFS).map_err(store)?;
        let mut dead = txn.open_table(DEAD).map_err(store)?;
        let mut meta = txn.open_table(META).map_err(store)?;
        let mut ids = txn.open_table(IDS).map_err(store)?;
        let next = |name: &str, meta: &mut redb::Table<&str, u64>| -> Result<u64, BusError> {
            let n = meta
                .get(name)
                .map_err(store)?
                .map(|v| v.value())
                .unwrap_or(1);
            meta.insert(name, n + 1).map_err(store)?;
            Ok(n)
        };
        // The pair (function, seq) is finished: forget its id, and the event once no function
        // still wants it.
        let finish = |function: &str,
                      seq: u64,
                      refs: &mut redb::Table<u64, u32>,
                      events: &mut redb::Table<u64, &[u8]>,
                      ids: &mut redb::Table<(&str, &str), u64>| {
            if let Some(json) = events.get(seq).map_err(store)?
                && let Ok(e) = serde_json::from_slice::<Event>(json.value())
            {
                drop(json);
                ids.remove((e.id.as_str(), function)).map_err(store)?;
            }
            let left = refs
                .get(seq)
                .map_err(store)?
                .map(|v| v.value())
                .unwrap_or(0)
                .saturating_sub(1);
            if left == 0 {
                refs.remove(seq).map_err(store)?;
                events.remove(seq).map_err(store)?;
            } else {
                refs.insert(seq, left).map_err(store)?;
            }
            Ok::<_, BusError>(())
        };
        for op in batch {
            match op {
                Op::Publish(event, functions) => {
                    let seq = next("seq", &mut meta)?;
                    let mut fresh = Vec::with_capacity(functions.len());
                    for f in functions {
                        if ids
                            .get((event.id.as_str(), f.as_str()))
                            .map_err(store)?
                            .is_none()
                        {
                            fresh.push(f.as_str());
                        }
                    }
                    if !fresh.is_empty() {
                        let json = serde_json::to_vec(event)
                            .map_err(|e| BusError::Store(e.to_string()))?;
                        events.insert(seq, json.as_slice()).map_err(store)?;
                        refs.insert(seq, fresh.len() as u32).map_err(store)?;
                        for f in fresh {
                            pending.insert((f, seq), (0u32, 0u64)).map_err(store)?;
                            ids.insert((event.id.as_str(), f), seq).map_err(store)?;
                        }
                    }
                    results.push(seq);
                }
                Op::Ack(f, seq) => {
                    if pending.remove((f.as_str(), *seq)).map_err(store)?.is_some() {
                        finish(f, *seq, &mut refs, &mut events, &mut ids)?;
                    }
                    results.push(*seq);
                }
                Op::Retry {
                    function,
                    seq,
                    attempts,
                    not_before_ms,
                } => {
                    pending
                        .insert((function.as_str(), *seq), (*attempts, *not_before_ms))
                        .map_err(store)?;
                    results.push(*seq);
                }
                Op::Dead(letter, queue, seq) => {
                    let id = next("dead", &mut meta)?;
                    let letter = DeadLetter {
                        id,
                        ..(**letter).clone()
                    };
                    let json =
                        serde_json::to_vec(&letter).map_err(|e| BusError::Store(e.to_string()))?;
                    dead.insert(id, json.as_slice()).map_err(store)?;
                    if pending
                        .remove((queue.as_str(), *seq))
                        .map_err(store)?
                        .is_some()
                    {
                        finish(queue, *seq, &mut refs, &mut events, &mut ids)?;
                    }
                    results.push(id);
                }
                Op::Undead(ids) => {
                    let mut removed = 0;
                    for id in ids {
                        removed += u64::from(dead.remove(*id).map_err(store)?.is_some());
                    }
                    results.push(removed);
                }
            }
        }
    }
    txn.commit().map_err(store)?;
    Ok(results)
}
