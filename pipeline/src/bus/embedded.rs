//! The embedded durable bus on redb. Writes go through one writer thread that groups whatever
//! is waiting into one transaction (one fsync for many events), off the async runtime's threads.
//! Each (event, function) pair is tracked, retried and dead-lettered on its own. Deliveries are
//! leases kept in memory: after a restart there are none, so every pending pair is due at once.
//! A consumer waiting in `next_batch` sleeps until a publish or retry rings its function, or until
//! the earliest retry comes due.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTableMetadata};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::writer::{DEAD, EVENTS, IDS, META, Op, PENDING, REFS, Reply, store, write_loop};
use super::{Bus, BusError, Clock, DeadLetter, Delivery, Handle};
use crate::events::Event;

/// The embedded durable bus; clones share one file and one writer.
#[derive(Clone)]
pub struct EmbeddedBus(Arc<Inner>);

struct Inner {
    db: Arc<Database>,
    ops: Mutex<Option<mpsc::Sender<(Op, Reply)>>>,
    leased: Mutex<HashSet<(String, u64)>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    clock: Arc<dyn Clock>,
    /// Rung when a function's pairs may have come due (a publish, a retry).
    wakes: Mutex<HashMap<String, Arc<Notify>>>,
    closed: watch::Sender<bool>,
}

impl std::fmt::Debug for EmbeddedBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBus").finish_non_exhaustive()
    }
}

/// What a look at one function's pairs found.
enum Claim {
    Got(Vec<Delivery>),
    /// Nothing due; the earliest pair comes due then (ms since the epoch), if there is one.
    NotYet(Option<u64>),
}

fn seq_of(d: &Delivery) -> u64 {
    d.handle.get::<u64>().copied().unwrap_or(0)
}

impl EmbeddedBus {
    /// Open (or create) the bus file and start its writer thread.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<EmbeddedBus, BusError> {
        let db = Arc::new(Database::create(path).map_err(store)?);
        let txn = db.begin_write().map_err(store)?;
        for t in [&EVENTS, &DEAD] {
            txn.open_table(*t).map_err(store)?;
        }
        txn.open_table(PENDING).map_err(store)?;
        txn.open_table(REFS).map_err(store)?;
        txn.open_table(META).map_err(store)?;
        txn.open_table(IDS).map_err(store)?;
        txn.commit().map_err(store)?;
        let (ops, rx) = mpsc::channel(4096);
        let handle = db.clone();
        let writer = std::thread::Builder::new()
            .name("weir-bus-writer".into())
            .spawn(move || write_loop(&handle, rx))
            .map_err(|e| BusError::Store(e.to_string()))?;
        Ok(EmbeddedBus(Arc::new(Inner {
            db,
            ops: Mutex::new(Some(ops)),
            leased: Mutex::default(),
            writer: Mutex::new(Some(writer)),
            clock,
            wakes: Mutex::default(),
            closed: watch::channel(false).0,
        })))
    }
}

impl Inner {
    async fn submit(&self, op: Op) -> Result<u64, BusError> {
        let ops = lock(&self.ops).clone().ok_or(BusError::Closed)?;
        let (reply, rx) = oneshot::channel();
        ops.send((op, reply)).await.map_err(|_| BusError::Closed)?;
        rx.await.map_err(|_| BusError::Closed)?
    }

    fn wake(&self, function: &str) -> Arc<Notify> {
        lock(&self.wakes)
            .entry(function.to_string())
            .or_default()
            .clone()
    }

    fn release(&self, d: &Delivery) {
        lock(&self.leased).remove(&(d.function.clone(), seq_of(d)));
    }

    async fn again(&self, d: &Delivery, attempts: u32, after: Duration) -> Result<(), BusError> {
        let op = Op::Retry {
            function: d.function.clone(),
            seq: seq_of(d),
            attempts,
            not_before_ms: self.clock.now_ms() + after.as_millis() as u64,
        };
        self.submit(op).await?;
        self.release(d);
        self.wake(&d.function).notify_waiters();
        Ok(())
    }

    /// The oldest due pairs for `function` not leased to anyone (up to `max`), leased now; or
    /// when the next one comes due. One read transaction however many. Blocking I/O.
    fn claim(&self, function: &str, max: usize) -> Result<Claim, BusError> {
        let now = self.clock.now_ms();
        // The lease set is locked before the snapshot is taken: an ack commits and only then
        // releases its lease, so a snapshot from before that commit still sees the pair
        // pending, and must also see it leased (taking the lock after the snapshot let a pair
        // acked meanwhile be delivered a second time).
        let mut leased = lock(&self.leased);
        let txn = self.db.begin_read().map_err(store)?;
        let pending = txn.open_table(PENDING).map_err(store)?;
        let events = txn.open_table(EVENTS).map_err(store)?;
        let mut earliest: Option<u64> = None;
        let mut got = Vec::new();
        for entry in pending
            .range((function, 0u64)..=(function, u64::MAX))
            .map_err(store)?
        {
            let (k, v) = entry.map_err(store)?;
            let (seq, (attempts, not_before)) = (k.value().1, v.value());
            if leased.contains(&(function.to_string(), seq)) {
                continue;
            }
            if not_before > now {
                earliest = Some(earliest.map_or(not_before, |e| e.min(not_before)));
                continue;
            }
            let Some(json) = events.get(seq).map_err(store)? else {
                continue;
            };
            let event: Event =
                serde_json::from_slice(json.value()).map_err(|e| BusError::Store(e.to_string()))?;
            leased.insert((function.to_string(), seq));
            got.push(Delivery {
                function: function.to_string(),
                event,
                attempts,
                handle: Handle::new(seq),
            });
            if got.len() >= max {
                break;
            }
        }
        if got.is_empty() {
            Ok(Claim::NotYet(earliest))
        } else {
            Ok(Claim::Got(got))
        }
    }

    fn count_pending(&self) -> Result<u64, BusError> {
        let txn = self.db.begin_read().map_err(store)?;
        txn.open_table(PENDING).map_err(store)?.len().map_err(store)
    }

    fn count_pending_for(&self, function: &str) -> Result<u64, BusError> {
        let txn = self.db.begin_read().map_err(store)?;
        let pending = txn.open_table(PENDING).map_err(store)?;
        let mut n = 0;
        for row in pending
            .range((function, 0u64)..=(function, u64::MAX))
            .map_err(store)?
        {
            row.map_err(store)?;
            n += 1;
        }
        Ok(n)
    }

    fn read_dead_one(&self, id: u64) -> Result<Option<DeadLetter>, BusError> {
        let txn = self.db.begin_read().map_err(store)?;
        let dead = txn.open_table(DEAD).map_err(store)?;
        let Some(json) = dead.get(id).map_err(store)? else {
            return Ok(None);
        };
        serde_json::from_slice(json.value())
            .map(Some)
            .map_err(|e| BusError::Store(e.to_string()))
    }

    fn read_dead(&self, limit: usize, before: Option<u64>) -> Result<Vec<DeadLetter>, BusError> {
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on a blocking thread with the bus (claims and reads walk redb tables); `Closed`
/// once the bus is closed.
async fn blocking<T: Send + 'static>(
    bus: &EmbeddedBus,
    f: impl FnOnce(&Inner) -> Result<T, BusError> + Send + 'static,
) -> Result<T, BusError> {
    if *bus.0.closed.borrow() {
        return Err(BusError::Closed);
    }
    let bus = bus.0.clone();
    tokio::task::spawn_blocking(move || f(&bus))
        .await
        .map_err(|e| BusError::Store(format!("a bus task failed: {e}")))?
}

#[async_trait::async_trait]
impl Bus for EmbeddedBus {
    async fn publish(&self, event: Event, functions: Vec<String>) -> Result<(), BusError> {
        let wake: Vec<Arc<Notify>> = functions.iter().map(|f| self.0.wake(f)).collect();
        self.0
            .submit(Op::Publish(Box::new(event), functions))
            .await?;
        for w in wake {
            w.notify_waiters();
        }
        Ok(())
    }

    async fn next_batch(&self, function: &str, max: usize) -> Result<Vec<Delivery>, BusError> {
        let max = max.max(1);
        let wake = self.0.wake(function);
        let mut closed = self.0.closed.subscribe();
        loop {
            if *closed.borrow() {
                return Err(BusError::Closed);
            }
            // Listen before looking, so a publish between the look and the wait is not missed.
            let rung = wake.notified();
            tokio::pin!(rung);
            rung.as_mut().enable();
            let f = function.to_string();
            let due = match blocking(self, move |b| b.claim(&f, max)).await? {
                Claim::Got(ds) => return Ok(ds),
                Claim::NotYet(due) => due,
            };
            let until = due.map(|t| Duration::from_millis(t.saturating_sub(self.0.clock.now_ms())));
            tokio::select! {
                _ = &mut rung => {}
                _ = closed.wait_for(|c| *c) => return Err(BusError::Closed),
                _ = tokio::time::sleep(until.unwrap_or(Duration::MAX)), if until.is_some() => {}
            }
        }
    }

    async fn ack(&self, d: &Delivery) -> Result<(), BusError> {
        self.0
            .submit(Op::Ack(d.function.clone(), seq_of(d)))
            .await?;
        self.0.release(d);
        Ok(())
    }

    async fn retry(&self, d: &Delivery, after: Duration) -> Result<(), BusError> {
        self.0.again(d, d.attempts + 1, after).await
    }

    async fn postpone(&self, d: &Delivery, after: Duration) -> Result<(), BusError> {
        self.0.again(d, d.attempts, after).await
    }

    async fn dead_letter(&self, d: &Delivery, kind: &str, reason: &str) -> Result<(), BusError> {
        let letter = DeadLetter::of(d, kind, reason, self.0.clock.as_ref());
        let op = Op::Dead(Box::new(letter), d.function.clone(), seq_of(d));
        self.0.submit(op).await?;
        self.0.release(d);
        Ok(())
    }

    async fn dead_letters(
        &self,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<DeadLetter>, BusError> {
        blocking(self, move |b| b.read_dead(limit, before)).await
    }

    async fn dead_letter_by_id(&self, id: u64) -> Result<Option<DeadLetter>, BusError> {
        blocking(self, move |b| b.read_dead_one(id)).await
    }

    async fn remove_dead_letters(&self, ids: &[u64]) -> Result<u64, BusError> {
        self.0.submit(Op::Undead(ids.to_vec())).await
    }

    async fn depth(&self) -> Result<u64, BusError> {
        blocking(self, |b| b.count_pending()).await
    }

    async fn pending(&self, function: &str) -> Result<u64, BusError> {
        let f = function.to_string();
        blocking(self, move |b| b.count_pending_for(&f)).await
    }

    async fn close(&self) {
        self.0.closed.send_replace(true);
        drop(lock(&self.0.ops).take());
        let writer = lock(&self.0.writer).take();
        if let Some(h) = writer {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

#[cfg(test)]
#[path = "embedded_tests.rs"]
mod tests;
