//! The CPU cores inference may keep busy, shared by every model: each run takes as many cores as
//! its engine runs threads (onnxruntime's intra-op threads, 1 for tract) and gives them back when
//! it ends. Each model's threads are sized for the whole machine, so without this two models
//! running batches at once would put twice as many threads as cores to work, and both batches
//! would take longer than one after the other. Runs are let through in arrival order, so a
//! two-core run is not starved by a stream of one-core runs.
//!
//! Functions' work holds cores here too, so models and functions agree on who holds which core:
//! each input a function runs holds its thread's core (`on_core`), a function that spreads one
//! input over idle cores takes only cores that are free and that no one waits for (`spare`), and
//! a function waiting on a model lends it its core (`lend`). Key frames' encodes, which rayon
//! hands to idle pool threads, hold none: the ledger undercounts while they run.

use std::cell::Cell;
use std::sync::{Condvar, Mutex, OnceLock};

/// The pure bookkeeping: cores free, and whose turn it is.
#[derive(Debug)]
struct Ledger {
    total: usize,
    free: usize,
    /// The next ticket to hand out, and the ticket whose turn it is.
    issued: u64,
    serving: u64,
    /// Runs waiting in line: a release wakes them only when there are some.
    waiting: usize,
}

impl Ledger {
    fn new(total: usize) -> Ledger {
        let total = total.max(1);
        Ledger {
            total,
            free: total,
            issued: 0,
            serving: 0,
            waiting: 0,
        }
    }

    /// One free core that no run in line is waiting for.
    fn try_spare(&mut self) -> bool {
        if self.issued != self.serving || self.free == 0 {
            return false;
        }
        self.free -= 1;
        true
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
        debug_assert!(self.free + n <= self.total, "a core given back twice");
        self.free = (self.free + n).min(self.total);
    }
}

thread_local! {
    /// The ledger (its address) in which this thread holds a core for the work it runs (a
    /// function's input, or a helper's pieces); 0 when none. Work nested on the same thread (a
    /// rayon join, a scope waiting for its jobs) runs on that core and never takes another.
    static ON_CORE: Cell<usize> = const { Cell::new(0) };
}

#[derive(Debug)]
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

    /// A ledger of its own that lives as long as the process, where `'static` is asked for but
    /// the machine's ledger is not wanted (tests, benchmarks).
    pub fn leaked(total: usize) -> &'static Cores {
        Box::leak(Box::new(Cores::new(total)))
    }

    /// Every core the process may use, shared by every model in it.
    pub fn machine() -> &'static Cores {
        static CORES: OnceLock<Cores> = OnceLock::new();
        CORES.get_or_init(|| Cores::new(weir_gpu::cpu_threads()))
    }

    /// Wait for `n` cores (in arrival order). Blocks: call it off the async runtime.
    pub fn take(&self, n: usize) -> Held<'_> {
        let mut ledger = self.lock();
        let ticket = ledger.ticket();
        if !ledger.try_go(ticket, n) {
            ledger.waiting += 1;
            while !ledger.try_go(ticket, n) {
                ledger = self.changed.wait(ledger).unwrap_or_else(|p| p.into_inner());
            }
            ledger.waiting -= 1;
        }
        // The next in line may fit in what is left.
        let wake = ledger.waiting > 0;
        drop(ledger);
        if wake {
            self.changed.notify_all();
        }
        Held { cores: self, n }
    }

    /// One core that is free and that no run waits for, or none: for helping another core's
    /// work, never for work that must run.
    pub fn spare(&self) -> Option<Held<'_>> {
        let spared = self.lock().try_spare();
        spared.then(|| Held { cores: self, n: 1 })
    }

    /// Cores no run holds right now.
    pub fn free(&self) -> usize {
        self.lock().free
    }

    fn id(&self) -> usize {
        self as *const Cores as usize
    }

    /// Run `f`, a function's work on one input, holding this thread's core: waits in line for it
    /// unless this thread holds one already (nested work runs on the same core).
    pub fn on_core<T>(&self, f: impl FnOnce() -> T) -> T {
        if ON_CORE.get() == self.id() {
            return f();
        }
        let held = self.take(1);
        let out = self.holding(&held, f);
        drop(held);
        out
    }

    /// Run `f` as work on the core `held` gives this thread (a helper on a spare core): what `f`
    /// nests runs on that core, and what it waits on a model for can borrow it (`lend`).
    pub fn holding<T>(&self, held: &Held<'_>, f: impl FnOnce() -> T) -> T {
        debug_assert!(std::ptr::eq(held.cores, self) && held.n == 1);
        let before = ON_CORE.replace(self.id());
        // Restored even if `f` panics: the pool catches the panic and the thread serves on.
        let _restore = Restore(before);
        f()
    }

    /// Run `f`, which blocks on work that needs cores (a model's run), with this thread's core
    /// given back meanwhile, so that the work it waits for can take it.
    pub fn lend<T>(&self, f: impl FnOnce() -> T) -> T {
        if ON_CORE.get() != self.id() {
            return f();
        }
        drop(Held { cores: self, n: 1 });
        ON_CORE.set(0);
        // Taken back however `f` ends; the holder above gives it back for good.
        struct Back<'a>(&'a Cores);
        impl Drop for Back<'_> {
            fn drop(&mut self) {
                std::mem::forget(self.0.take(1));
                ON_CORE.set(self.0.id());
            }
        }
        let _back = Back(self);
        f()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Puts `ON_CORE` back as it was when dropped (after the work, or on a panic).
struct Restore(usize);

impl Drop for Restore {
    fn drop(&mut self) {
        ON_CORE.set(self.0);
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let wake = {
            let mut ledger = self.cores.lock();
            ledger.release(self.n);
            ledger.waiting > 0
        };
        if wake {
            self.cores.changed.notify_all();
        }
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
    fn a_spare_core_is_one_that_is_free_and_that_no_run_waits_for() {
        let mut l = Ledger::new(2);
        let a = l.ticket();
        assert!(l.try_go(a, 1));
        assert!(l.try_spare(), "the other core is idle");
        assert!(!l.try_spare(), "no core is left");
        l.release(1);
        l.release(1);
        let (b, c) = (l.ticket(), l.ticket());
        assert!(l.try_go(b, 2));
        l.release(1);
        assert!(!l.try_spare(), "c waits in line: the free core is its");
        assert!(l.try_go(c, 1));
        l.release(1);
        assert!(l.try_spare(), "no one waits any more");
    }

    #[test]
    fn nested_work_runs_on_the_core_its_thread_holds_and_lends_it_to_a_model() {
        let c = Cores::new(2);
        c.on_core(|| {
            assert_eq!(c.free(), 1);
            c.on_core(|| assert_eq!(c.free(), 1, "the same thread: the same core"));
            c.lend(|| {
                assert_eq!(c.free(), 2, "given back while it waits on a model");
                let _model = c.take(2);
            });
            assert_eq!(c.free(), 1, "taken back after");
            let spare = c.spare().expect("one core is idle");
            assert!(c.spare().is_none());
            drop(spare);
        });
        assert_eq!(c.free(), 2);
        c.lend(|| assert_eq!(c.free(), 2, "a thread holding nothing lends nothing"));
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
