//! The batcher loop: waits for a free worker, then fills a batch until it is full or its first
//! item has waited `max_delay`, and hands it on. Generic over the item so its timing is tested
//! with paused time and no real work.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

use crate::Accumulator;

/// Runs until the sending side closes and the last batch is handed on.
pub async fn run<T>(
    mut rx: mpsc::Receiver<T>,
    max_size: usize,
    max_delay: Duration,
    workers: Arc<Semaphore>,
    mut dispatch: impl FnMut(Vec<T>, OwnedSemaphorePermit),
) {
    let mut acc = Accumulator::new(max_size, max_delay);
    loop {
        // No worker free: leave items in the channel, where they form the next, fuller batch.
        let Ok(slot) = workers.clone().acquire_owned().await else {
            return;
        };
        let batch = loop {
            let deadline = acc.deadline();
            tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => {
                        if let Some(batch) = acc.push(item, Instant::now()) {
                            break batch;
                        }
                    }
                    None if acc.is_empty() => return,
                    None => break acc.take(),
                },
                _ = sleep_until(deadline) => {
                    if let Some(batch) = acc.take_due(Instant::now()) {
                        break batch;
                    }
                }
            }
        };
        dispatch(batch, slot);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    type Seen = Arc<Mutex<Vec<(Duration, Vec<u32>)>>>;

    /// Starts a batcher whose dispatch records (time since start, batch) and frees the worker
    /// at once unless `hold` keeps the permits.
    fn start(max: usize, delay_ms: u64, workers: usize, hold: bool) -> (mpsc::Sender<u32>, Seen) {
        let (tx, rx) = mpsc::channel(64);
        let seen: Seen = Arc::default();
        let t0 = Instant::now();
        let log = seen.clone();
        let mut held = Vec::new();
        let dispatch = move |batch: Vec<u32>, slot: OwnedSemaphorePermit| {
            log.lock().unwrap().push((t0.elapsed(), batch));
            if hold {
                held.push(slot);
            }
        };
        let sem = Arc::new(Semaphore::new(workers));
        tokio::spawn(run(rx, max, Duration::from_millis(delay_ms), sem, dispatch));
        (tx, seen)
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_at_once() {
        let (tx, seen) = start(4, 50, 1, false);
        for i in 0..4 {
            tx.send(i).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(Duration::ZERO, vec![0, 1, 2, 3])]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_waits_exactly_max_delay() {
        let (tx, seen) = start(8, 5, 1, false);
        tx.send(1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
        tx.send(2).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(seen.lock().unwrap().is_empty(), "flushed before max_delay");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(Duration::from_millis(5), vec![1, 2])]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn busy_workers_make_bigger_batches_not_more_of_them() {
        let (tx, seen) = start(3, 5, 1, true);
        tx.send(1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        // The only worker is held: these wait in the channel, and no batch goes out.
        for i in 2..6 {
            tx.send(i).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert_eq!(seen.lock().unwrap()[0].1, vec![1]);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_flushes_the_open_batch() {
        let (tx, seen) = start(8, 1000, 1, false);
        tx.send(9).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        drop(tx);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(seen.lock().unwrap()[0].1, vec![9]);
    }
}
