//! The CPU cores inference may keep busy, shared by every model: each run takes as many cores as
//! its engine runs threads (onnxruntime's intra-op threads, 1 for tract) and gives them back when
//! it ends. Each model's threads are sized for the whole machine, so without this two models
//! running batches at once would put twice as many threads as cores to work, and both batches
//! would take longer than one after the other. Runs are let through in arrival order, so a
//! two-core run is not starved by a stream of one-core runs.

use std::sync::{Condvar, Mutex, OnceLock};

/// The pure bookkeeping: cores free, and whose turn it is.
#[derive(Debug)]
struct Ledger {
    total: usize,
    free: usize,
    /// The next ticket to hand out, and the ticket whose turn it is.
    issued: u64,
    serving: u64,
}

impl Ledger {
    fn new(total: usize) -> Ledger {
        let total = total.max(1);
        Ledger {
            total,
            free: total,
            issued: 0,
            serving: 0,
        }
    }

    /// A run asking for more cores than there are gets them all.
    fn wanted(&self, n: usize) -> usize {
        n.clamp(1, self.total)
    }

    fn ticket(&mut self) -> u64 {
        self.issued += 1;
        self.issued - 1
    }

    /// Take `n` cores for `ticket` if it is its turn and they are free.
    fn try_go(&mut self, ticket: u64, n: usize) -> bool {
        let n = self.wanted(n);
        if ticket != self.serving || self.free < n {
            return false;
        }
        self.free -= n;
        self.serving += 1;
        true
    }

    fn release(&mut self, n: usize) {
        let n = self.wanted(n);
        self.free = (self.free + n).min(self.total);
    }
}

pub struct Cores {
    ledger: Mutex<Ledger>,
    changed: Condvar,
}

/// Cores held by one run; given back when dropped.
pub struct Held<'a> {
    cores: &'a Cores,
    n: usize,
}

impl Cores {
    pub fn new(total: usize) -> Cores {
        Cores {
            ledger: Mutex::new(Ledger::new(total)),
            changed: Condvar::new(),
        }
    }

    /// Every core the process may use, shared by every model in it.
    pub fn machine() -> &'static Cores {
        static CORES: OnceLock<Cores> = OnceLock::new();
        CORES.get_or_init(|| Cores::new(weir_gpu::cpu_threads()))
    }

    /// Wait for `n` cores (in arrival order). Blocks: call it off the async runtime.
    pub fn take(&self, n: usize) -> Held<'_> {
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = ledger.ticket();
        while !ledger.try_go(ticket, n) {
            ledger = self.changed.wait(ledger).unwrap_or_else(|p| p.into_inner());
        }
        drop(ledger);
        // The next in line may fit in what is left.
        self.changed.notify_all();
        Held { cores: self, n }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.cores
            .ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(self.n);
        self.cores.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_share_the_cores_and_wait_their_turn() {
        let mut l = Ledger::new(2);
        let (a, b, c) = (l.ticket(), l.ticket(), l.ticket());
        assert!(l.try_go(a, 1), "one core of two");
        assert!(!l.try_go(c, 1), "c is after b");
        assert!(!l.try_go(b, 2), "b needs both");
        // c would fit, but b came first: it waits until b has gone.
        assert!(!l.try_go(c, 1));
        l.release(1);
        assert!(l.try_go(b, 2));
        assert!(!l.try_go(c, 1), "every core is taken");
        l.release(2);
        assert!(l.try_go(c, 1));
    }

    #[test]
    fn a_run_wanting_more_than_the_machine_gets_all_of_it() {
        let mut l = Ledger::new(2);
        let t = l.ticket();
        assert!(l.try_go(t, 16));
        assert_eq!(l.free, 0);
        l.release(16);
        assert_eq!(l.free, 2);
        assert_eq!(Ledger::new(0).total, 1);
    }

    #[test]
    fn a_blocked_run_goes_when_cores_are_given_back() {
        let cores = std::sync::Arc::new(Cores::new(2));
        let both = cores.take(2);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiting = {
            let cores = cores.clone();
            std::thread::spawn(move || {
                let _one = cores.take(1);
                tx.send(()).unwrap();
            })
        };
        assert!(rx.try_recv().is_err(), "no core is free yet");
        drop(both);
        rx.recv().unwrap();
        waiting.join().unwrap();
        let _again = cores.take(2);
    }

    #[test]
    fn concurrent_runs_never_hold_more_cores_than_there_are() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let cores = Arc::new(Cores::new(3));
        let (busy, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let runners: Vec<_> = (0..4)
            .map(|i| {
                let (cores, busy, peak) = (cores.clone(), busy.clone(), peak.clone());
                std::thread::spawn(move || {
                    for k in 0..200 {
                        let want = 1 + (i + k) % 2;
                        let _held = cores.take(want);
                        peak.fetch_max(busy.fetch_add(want, SeqCst) + want, SeqCst);
                        for _ in 0..200 {
                            std::hint::spin_loop();
                        }
                        busy.fetch_sub(want, SeqCst);
                    }
                })
            })
            .collect();
        runners.into_iter().for_each(|r| r.join().unwrap());
        assert!(
            peak.load(SeqCst) <= 3,
            "{} cores held at once",
            peak.load(SeqCst)
        );
        assert!(peak.load(SeqCst) >= 2, "runs did share the cores");
    }
}
