//! One thread that applies whatever writes are waiting in one transaction (one fsync for many)
//! and answers each caller: the embedded bus and the job store both write this way, off the
//! async runtime's threads.

use tokio::sync::{mpsc, oneshot};

/// Up to this many writes share a transaction.
const MAX_GROUP: usize = 512;

/// What a caller sends: its write, and where its answer goes.
pub type Request<O, T, E> = (O, oneshot::Sender<Result<T, E>>);

/// Until every sender is dropped: take what is waiting, `apply` it as one transaction (each
/// write's own answer, or one failure for all when the transaction fails), answer everyone.
pub fn run<O, T, E: Clone>(
    mut rx: mpsc::Receiver<Request<O, T, E>>,
    mut apply: impl FnMut(Vec<O>) -> Result<Vec<Result<T, E>>, E>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(one) => group.push(one),
                Err(_) => break,
            }
        }
        let (ops, replies): (Vec<O>, Vec<_>) = group.into_iter().unzip();
        match apply(ops) {
            Ok(results) => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
