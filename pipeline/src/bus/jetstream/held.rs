//! The deliveries this node holds, kept alive together: one task sends an in-progress ack for
//! each of them every third of `ack_wait`. A task per delivery (a timer set and cancelled for
//! every event) cost a sixth of the event path's throughput.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use tokio::sync::watch;

/// The messages held now, by a number of their own.
#[derive(Default)]
pub(super) struct HeldSet {
    next: u64,
    messages: HashMap<u64, jetstream::Message>,
}

fn lock(set: &Mutex<HeldSet>) -> std::sync::MutexGuard<'_, HeldSet> {
    set.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a delivery holds: its message, and its place in the set that keeps it alive.
pub(super) struct Held {
    pub message: jetstream::Message,
    id: u64,
    set: Arc<Mutex<HeldSet>>,
}

impl Held {
    /// Hold `message`: kept alive from now until released or dropped.
    pub fn new(set: &Arc<Mutex<HeldSet>>, message: jetstream::Message) -> Held {
        let mut s = lock(set);
        let id = s.next;
        s.next += 1;
        s.messages.insert(id, message.clone());
        Held {
            message,
            id,
            set: set.clone(),
        }
    }

    /// Stop keeping it alive (its outcome is about to be sent).
    pub fn release(&self) {
        lock(&self.set).messages.remove(&self.id);
    }
}

/// A delivery dropped without its outcome recorded (the server did not confirm it) stops being
/// kept alive, so it returns to the stream within `ack_wait` instead of being held forever.
impl Drop for Held {
    fn drop(&mut self) {
        self.release();
    }
}

/// Every `every`, an in-progress ack for each message in `set`, until `closed` turns true.
pub(super) fn keep_alive(
    set: Arc<Mutex<HeldSet>>,
    every: Duration,
    mut closed: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = closed.wait_for(|c| *c) => return,
            }
            let messages: Vec<jetstream::Message> = lock(&set).messages.values().cloned().collect();
            let acks = messages.iter().map(|m| m.ack_with(AckKind::Progress));
            // A failed in-progress ack is not retried: the next round sends another, and a
            // connection that stays down loses the deliveries to another node anyway.
            let _ = futures::future::join_all(acks).await;
        }
    });
}
