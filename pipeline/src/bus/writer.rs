//! The embedded bus's writer: its tables, and one thread that groups whatever operations are
//! waiting into one redb transaction (one fsync for many events), off the async runtime.

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

pub(super) fn store(e: impl Into<redb::Error>) -> BusError {
    BusError::Store(e.into().to_string())
}

pub(super) enum Op {
    Publish(Event, Vec<String>),
    Ack(String, u64),
    Retry {
        function: String,
        seq: u64,
        attempts: u32,
        not_before_ms: u64,
    },
    Dead(Box<DeadLetter>, u64),
}

pub(super) type Reply = oneshot::Sender<Result<u64, BusError>>;

/// Group commit: take what is waiting (up to 512 operations), apply it in one transaction,
/// commit once, answer everyone.
pub(super) fn write_loop(db: &Database, mut rx: mpsc::Receiver<(Op, Reply)>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        match apply(db, &batch) {
            Ok(results) => {
                for ((_, reply), r) in batch.into_iter().zip(results) {
                    let _ = reply.send(Ok(r));
                }
            }
            Err(e) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

fn apply(db: &Database, batch: &[(Op, Reply)]) -> Result<Vec<u64>, BusError> {
    let txn = db.begin_write().map_err(store)?;
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut events = txn.open_table(EVENTS).map_err(store)?;
        let mut pending = txn.open_table(PENDING).map_err(store)?;
        let mut refs = txn.open_table(REFS).map_err(store)?;
        let mut dead = txn.open_table(DEAD).map_err(store)?;
        let mut meta = txn.open_table(META).map_err(store)?;
        let next = |name: &str, meta: &mut redb::Table<&str, u64>| -> Result<u64, BusError> {
            let n = meta
                .get(name)
                .map_err(store)?
                .map(|v| v.value())
                .unwrap_or(1);
            meta.insert(name, n + 1).map_err(store)?;
            Ok(n)
        };
        let finish =
            |seq: u64, refs: &mut redb::Table<u64, u32>, events: &mut redb::Table<u64, &[u8]>| {
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
        for (op, _) in batch {
            match op {
                Op::Publish(event, functions) => {
                    let seq = next("seq", &mut meta)?;
                    let json =
                        serde_json::to_vec(event).map_err(|e| BusError::Store(e.to_string()))?;
                    if !functions.is_empty() {
                        events.insert(seq, json.as_slice()).map_err(store)?;
                        refs.insert(seq, functions.len() as u32).map_err(store)?;
                        for f in functions {
                            pending
                                .insert((f.as_str(), seq), (0u32, 0u64))
                                .map_err(store)?;
                        }
                    }
                    results.push(seq);
                }
                Op::Ack(f, seq) => {
                    if pending.remove((f.as_str(), *seq)).map_err(store)?.is_some() {
                        finish(*seq, &mut refs, &mut events)?;
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
                Op::Dead(letter, seq) => {
                    let id = next("dead", &mut meta)?;
                    let letter = DeadLetter {
                        id,
                        ..(**letter).clone()
                    };
                    let json =
                        serde_json::to_vec(&letter).map_err(|e| BusError::Store(e.to_string()))?;
                    dead.insert(id, json.as_slice()).map_err(store)?;
                    if pending
                        .remove((letter.function.as_str(), *seq))
                        .map_err(store)?
                        .is_some()
                    {
                        finish(*seq, &mut refs, &mut events)?;
                    }
                    results.push(id);
                }
            }
        }
    }
    txn.commit().map_err(store)?;
    Ok(results)
}
