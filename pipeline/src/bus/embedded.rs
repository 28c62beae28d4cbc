//! The embedded durable bus on redb. Writes go through one writer thread that groups whatever
//! is waiting into one transaction (one fsync for many events), off the async runtime's threads.
//! Each (event, function) pair is tracked, retried and dead-lettered on its own. Claims are
//! leases kept in memory: after a restart there are none, so every pending pair is due at once.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::events::Event;

/// seq → event (JSON).
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// (function, seq) → (attempts so far, not before, ms since the epoch).
const PENDING: TableDefinition<(&str, u64), (u32, u64)> = TableDefinition::new("pending");
/// seq → functions still to finish it; the event is dropped at zero.
const REFS: TableDefinition<u64, u32> = TableDefinition::new("refs");
/// id → dead letter (JSON); ids grow, so the newest is last.
const DEAD: TableDefinition<u64, &[u8]> = TableDefinition::new("dead");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    #[error("the bus store failed: {0}")]
    Store(String),
    #[error("the bus is closed")]
    Closed,
}

fn store(e: impl Into<redb::Error>) -> BusError {
    BusError::Store(e.into().to_string())
}

/// One (event, function) pair handed to a consumer.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub seq: u64,
    pub function: String,
    pub event: Event,
    /// Attempts before this one.
    pub attempts: u32,
}

/// A pair that will not be retried, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: u64,
    pub function: String,
    pub bucket: String,
    pub key: String,
    pub kind: String,
    pub reason: String,
    pub attempts: u32,
    /// Seconds since the epoch.
    pub time: u64,
}

enum Op {
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

type Reply = oneshot::Sender<Result<u64, BusError>>;

#[derive(Clone)]
pub struct Bus {
    db: Arc<Database>,
    ops: mpsc::Sender<(Op, Reply)>,
    leased: Arc<Mutex<HashSet<(String, u64)>>>,
    writer: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Bus {
    /// Open (or create) the bus file and start its writer thread.
    pub fn open(path: &Path) -> Result<Bus, BusError> {
        let db = Arc::new(Database::create(path).map_err(store)?);
        let txn = db.begin_write().map_err(store)?;
        for t in [&EVENTS, &DEAD] {
            txn.open_table(*t).map_err(store)?;
        }
        txn.open_table(PENDING).map_err(store)?;
        txn.open_table(REFS).map_err(store)?;
        txn.open_table(META).map_err(store)?;
        txn.commit().map_err(store)?;
        let (ops, rx) = mpsc::channel(4096);
        let handle = db.clone();
        let writer = std::thread::Builder::new()
            .name("weir-bus-writer".into())
            .spawn(move || write_loop(&handle, rx))
            .map_err(|e| BusError::Store(e.to_string()))?;
        Ok(Bus {
            db,
            ops,
            leased: Arc::default(),
            writer: Arc::new(Mutex::new(Some(writer))),
        })
    }

    /// Finish the writes in progress and release the file. Call on the last handle: the writer
    /// thread ends when no handle can send to it any more.
    pub async fn close(self) {
        let Bus {
            db, ops, writer, ..
        } = self;
        drop(ops);
        drop(db);
        let handle = writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }

    async fn submit(&self, op: Op) -> Result<u64, BusError> {
        let (reply, rx) = oneshot::channel();
        self.ops
            .send((op, reply))
            .await
            .map_err(|_| BusError::Closed)?;
        rx.await.map_err(|_| BusError::Closed)?
    }

    /// Record `event` for each of `functions`; durable when this returns.
    pub async fn publish(&self, event: Event, functions: Vec<String>) -> Result<u64, BusError> {
        self.submit(Op::Publish(event, functions)).await
    }

    /// The function finished with the event and its outputs are written.
    pub async fn ack(&self, d: &Delivery) -> Result<(), BusError> {
        self.submit(Op::Ack(d.function.clone(), d.seq)).await?;
        self.release(d);
        Ok(())
    }

    /// Try again after `not_before_ms` (ms since the epoch), counting the attempt.
    pub async fn retry(&self, d: &Delivery, not_before_ms: u64) -> Result<(), BusError> {
        self.again(d, d.attempts + 1, not_before_ms).await
    }

    /// Deliver again after `not_before_ms` without counting an attempt: the pair could not
    /// start (no room), which says nothing about the event.
    pub async fn postpone(&self, d: &Delivery, not_before_ms: u64) -> Result<(), BusError> {
        self.again(d, d.attempts, not_before_ms).await
    }

    async fn again(&self, d: &Delivery, attempts: u32, not_before_ms: u64) -> Result<(), BusError> {
        let op = Op::Retry {
            function: d.function.clone(),
            seq: d.seq,
            attempts,
            not_before_ms,
        };
        self.submit(op).await?;
        self.release(d);
        Ok(())
    }

    /// Give up on the pair, keeping the reason.
    pub async fn dead_letter(
        &self,
        d: &Delivery,
        kind: &str,
        reason: &str,
    ) -> Result<(), BusError> {
        let letter = DeadLetter {
            id: 0,
            function: d.function.clone(),
            bucket: d.event.object.bucket.clone(),
            key: d.event.object.key.clone(),
            kind: kind.into(),
            reason: reason.into(),
            attempts: d.attempts + 1,
            time: now_ms() / 1000,
        };
        self.submit(Op::Dead(Box::new(letter), d.seq)).await?;
        self.release(d);
        Ok(())
    }

    fn release(&self, d: &Delivery) {
        self.leased
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(d.function.clone(), d.seq));
    }

    /// Up to `max` due pairs for `function`, oldest first, leased to the caller. Blocking I/O.
    pub fn claim(&self, function: &str, max: usize) -> Result<Vec<Delivery>, BusError> {
        let now = now_ms();
        // The lease set is locked before the snapshot is taken: an ack commits and only then
        // releases its lease, so a snapshot from before that commit still sees the pair
        // pending, and must also see it leased (taking the lock after the snapshot let a pair
        // acked meanwhile be delivered a second time).
        let mut leased = self.leased.lock().unwrap_or_else(|e| e.into_inner());
        let txn = self.db.begin_read().map_err(store)?;
        let pending = txn.open_table(PENDING).map_err(store)?;
        let events = txn.open_table(EVENTS).map_err(store)?;
        let mut out = Vec::new();
        for entry in pending
            .range((function, 0u64)..=(function, u64::MAX))
            .map_err(store)?
        {
            if out.len() >= max {
                break;
            }
            let (k, v) = entry.map_err(store)?;
            let (seq, (attempts, not_before)) = (k.value().1, v.value());
            if not_before > now || leased.contains(&(function.to_string(), seq)) {
                continue;
            }
            let Some(json) = events.get(seq).map_err(store)? else {
                continue;
            };
            let event: Event =
                serde_json::from_slice(json.value()).map_err(|e| BusError::Store(e.to_string()))?;
            leased.insert((function.to_string(), seq));
            out.push(Delivery {
                seq,
                function: function.to_string(),
                event,
                attempts,
            });
        }
        Ok(out)
    }

    /// Pairs not yet finished (the bus depth).
    pub fn depth(&self) -> Result<u64, BusError> {
        let txn = self.db.begin_read().map_err(store)?;
        txn.open_table(PENDING).map_err(store)?.len().map_err(store)
    }

    /// Dead letters, newest first, `limit` at most, older than id `before` when given.
    pub fn dead_letters(
        &self,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<DeadLetter>, BusError> {
        let txn = self.db.begin_read().map_err(store)?;
        let dead = txn.open_table(DEAD).map_err(store)?;
        let mut out = Vec::new();
        for entry in dead
            .range(..before.unwrap_or(u64::MAX))
            .map_err(store)?
            .rev()
        {
            if out.len() >= limit {
                break;
            }
            let (_, v) = entry.map_err(store)?;
            out.push(
                serde_json::from_slice(v.value()).map_err(|e| BusError::Store(e.to_string()))?,
            );
        }
        Ok(out)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Group commit: take what is waiting (up to 512 operations), apply it in one transaction,
/// commit once, answer everyone.
fn write_loop(db: &Database, mut rx: mpsc::Receiver<(Op, Reply)>) {
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

#[cfg(test)]
#[path = "embedded_tests.rs"]
mod tests;
