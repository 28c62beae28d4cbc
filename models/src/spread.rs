//! One input's independent pieces of work spread over the cores that are idle right now.
//!
//! A lone upload on a quiet machine should use every core; under full load each input should
//! stay on its one core, as nested parallelism that ignores load leaves cores idle while
//! threads wait on each other. So a step cut into pieces asks for helpers, and only cores the
//! ledger (`crate::cores`) says are free and that no one waits for are taken; with none,
//! the owner runs every piece itself. The caller cuts by the work's size, never by the load, so
//! that the output never depends on how many cores were idle.
//!
//! The thread that owns the input runs pieces too, and when none are left it waits for the
//! helpers' last pieces (short: a piece) rather than steal other work, which could be a whole
//! invocation and would hold up this one's answer.

use std::sync::{Arc, Condvar, Mutex};

use crate::cores::{Cores, Held};

/// A piece smaller than this many pixels costs less than handing it to another core.
pub const MIN_PIECE_PIXELS: u64 = 64 * 1024;

/// How many idle cores should help with a step of `work_pixels` pixels in `pieces` pieces: none
/// when the machine is busy or the work is too small to be worth the hop, and never more than
/// would leave a helper without a piece (the owner runs one too).
pub fn helpers(idle: usize, pieces: usize, work_pixels: u64) -> usize {
    let worth = usize::try_from(work_pixels / MIN_PIECE_PIXELS).unwrap_or(usize::MAX);
    idle.min(pieces.saturating_sub(1))
        .min(worth.saturating_sub(1))
}

/// A piece of work, owning what it needs (pieces may run on other threads).
pub type Piece<T> = Box<dyn FnOnce() -> T + Send>;

/// A piece that borrows from the caller's stack (disjoint parts of one buffer), for
/// [`Helpers::run_borrowed`].
pub type Borrowed<'a, T> = Box<dyn FnOnce() -> T + Send + 'a>;

struct State<T> {
    pieces: Vec<Option<Piece<T>>>,
    next: usize,
    results: Vec<Option<std::thread::Result<T>>>,
    done: usize,
    /// The spare cores, one per helper job: a job takes one with its first piece, so a job that
    /// starts late (or never) holds none, and the owner gives back those left unclaimed.
    spares: Vec<Held<'static>>,
}

impl<T> State<T> {
    fn next_piece(&mut self) -> Option<(usize, Piece<T>)> {
        let i = self.next;
        let piece = self.pieces.get_mut(i).and_then(Option::take)?;
        self.next += 1;
        Some((i, piece))
    }
}

struct Shared<T> {
    state: Mutex<State<T>>,
    finished: Condvar,
}

impl<T> Shared<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The owner: run pieces until none is left to start.
    fn work(&self) {
        let mut next = self.lock().next_piece();
        while let Some((i, piece)) = next {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(piece));
            next = self.finish(i, result, &mut None);
        }
    }

    /// A helper: claim a spare core with a first piece, run pieces on it until none is left to
    /// start, and give the core back before the last result is counted (so that when the owner
    /// returns, every core is back).
    fn help(&self, cores: &'static Cores) {
        let (mut next, mut core) = {
            let mut s = self.lock();
            match s.next_piece() {
                Some(first) => (Some(first), s.spares.pop()),
                None => return,
            }
        };
        while let Some((i, piece)) = next {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &core {
                Some(held) => cores.holding(held, piece),
                None => piece(),
            }));
            next = self.finish(i, result, &mut core);
        }
    }

    /// Count piece `i`'s result and hand out the next piece; with none left, `core` goes back
    /// first.
    fn finish(
        &self,
        i: usize,
        result: std::thread::Result<T>,
        core: &mut Option<Held<'static>>,
    ) -> Option<(usize, Piece<T>)> {
        let mut s = self.lock();
        let next = s.next_piece();
        if next.is_none() {
            drop(core.take());
        }
        s.results[i] = Some(result);
        s.done += 1;
        if s.done == s.results.len() {
            self.finished.notify_all();
        }
        next
    }
}

/// Idle cores taken to help with one step; each goes back when its helper has no piece left.
pub struct Helpers {
    cores: &'static Cores,
    held: Vec<Held<'static>>,
}

impl Helpers {
    /// As many spare cores as `helpers` says a step of `work_pixels` pixels in `pieces` pieces
    /// is worth (none at all on a busy machine).
    pub fn take(cores: &'static Cores, pieces: usize, work_pixels: u64) -> Helpers {
        let wanted = helpers(cores.free(), pieces, work_pixels);
        Helpers {
            cores,
            held: std::iter::from_fn(|| cores.spare()).take(wanted).collect(),
        }
    }

    /// Spare cores for `pieces` pieces each worth a core of its own (a model's row): at most
    /// one per piece beyond the one this thread runs, and none on a busy machine.
    pub fn take_pieces(cores: &'static Cores, pieces: usize) -> Helpers {
        let worth = (pieces as u64).saturating_mul(MIN_PIECE_PIXELS);
        Self::take(cores, pieces, worth)
    }

    /// How many cores help.
    pub fn count(&self) -> usize {
        self.held.len()
    }

    /// [`Helpers::run`] for pieces that borrow: as `std::thread::scope` does, this returns only
    /// once every piece has run (and been dropped), so nothing they borrow is used after.
    pub fn run_borrowed<'a, T: Send + 'static>(self, pieces: Vec<Borrowed<'a, T>>) -> Vec<T> {
        let pieces = pieces
            .into_iter()
            .map(|piece| {
                // SAFETY: only the lifetime changes. `run` returns (or unwinds) only after
                // `done` has counted every piece, and a piece is consumed by its one call
                // before it is counted (a panic inside it is caught first), so no piece, nor
                // anything it borrows, is reached after this function returns.
                unsafe { std::mem::transmute::<Borrowed<'a, T>, Piece<T>>(piece) }
            })
            .collect();
        self.run(pieces)
    }

    /// Run `pieces` here and on the helpers' cores; their results in order. Without helpers
    /// they run here, one after the other. A piece's panic is raised here.
    pub fn run<T: Send + 'static>(self, pieces: Vec<Piece<T>>) -> Vec<T> {
        let Helpers { cores, held } = self;
        if held.is_empty() {
            return pieces.into_iter().map(|piece| piece()).collect();
        }
        let (n, jobs) = (pieces.len(), held.len());
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pieces: pieces.into_iter().map(Some).collect(),
                next: 0,
                results: (0..n).map(|_| None).collect(),
                done: 0,
                spares: held,
            }),
            finished: Condvar::new(),
        });
        let span = tracing::Span::current();
        for _ in 0..jobs {
            let (shared, span) = (shared.clone(), span.clone());
            // Onto the current rayon pool, where an idle worker picks it up.
            rayon::spawn(move || {
                let _enter = span.enter();
                shared.help(cores);
            });
        }
        shared.work();
        let mut s = shared.lock();
        // Cores no helper claimed go back now, not when their late jobs run.
        let unclaimed = std::mem::take(&mut s.spares);
        while s.done < n {
            s = shared.finished.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        let results = std::mem::take(&mut s.results);
        drop(s);
        drop(unclaimed);
        results
            .into_iter()
            .map(|r| match r {
                Some(Ok(v)) => v,
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                None => unreachable!("every piece ran before `done` reached the count"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rayon pool of `threads` threads, for helpers to be picked up from.
    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    #[test]
    fn a_busy_machine_or_small_work_gets_no_help() {
        let big = 1 << 22;
        assert_eq!(helpers(0, 6, big), 0, "no core is idle");
        assert_eq!(
            helpers(3, 6, 100_000),
            0,
            "two pieces would each be too small"
        );
        assert_eq!(
            helpers(3, 6, 3 * MIN_PIECE_PIXELS),
            2,
            "three pieces worth a hop"
        );
        assert_eq!(helpers(1, 6, big), 1);
        assert_eq!(helpers(15, 6, big), 5, "one piece each at most");
        assert_eq!(helpers(15, 1, big), 0, "one piece: nothing to share");
        assert_eq!(helpers(15, 0, big), 0);
    }

    fn pieces(n: usize) -> Vec<Piece<usize>> {
        (0..n)
            .map(|i| {
                Box::new(move || {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    i * 10
                }) as Piece<usize>
            })
            .collect()
    }

    #[test]
    fn results_come_in_order_with_or_without_helpers() {
        let idle = Cores::leaked(4);
        let pool = pool(4);
        let want: Vec<usize> = (0..7).map(|i| i * 10).collect();
        let helped = pool.install(|| {
            let help = Helpers::take(idle, 7, 1 << 22);
            assert_eq!(help.count(), 4, "every core of the ledger is idle");
            help.run(pieces(7))
        });
        assert_eq!(helped, want);
        assert_eq!(idle.free(), 4, "every core is back when `run` returns");
        let busy = Cores::leaked(1);
        let _all = busy.take(1);
        let alone = pool.install(|| {
            let help = Helpers::take(busy, 7, 1 << 22);
            assert_eq!(help.count(), 0);
            help.run(pieces(7))
        });
        assert_eq!(alone, want);
    }

    #[test]
    fn borrowed_pieces_fill_one_buffer() {
        let cores = Cores::leaked(2);
        let pool = pool(2);
        let mut buffer = vec![0u8; 1000];
        let (top, bottom) = buffer.split_at_mut(600);
        let pieces: Vec<Borrowed<'_, usize>> = vec![
            Box::new(move || {
                top.fill(1);
                top.len()
            }),
            Box::new(move || {
                std::thread::sleep(std::time::Duration::from_millis(5));
                bottom.fill(2);
                bottom.len()
            }),
        ];
        let lens = pool.install(|| {
            let help = Helpers::take(cores, 2, 1 << 22);
            assert_eq!(help.count(), 1);
            help.run_borrowed(pieces)
        });
        assert_eq!(lens, [600, 400]);
        assert!(buffer[..600].iter().all(|&b| b == 1));
        assert!(
            buffer[600..].iter().all(|&b| b == 2),
            "the helper's part is written"
        );
    }

    #[test]
    fn a_piece_that_panics_is_raised_to_the_owner() {
        let cores = Cores::leaked(2);
        let pool = pool(2);
        let mut ps = pieces(3);
        ps.push(Box::new(|| panic!("piece failed")));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| Helpers::take(cores, 4, 1 << 22).run(ps))
        }));
        assert!(caught.is_err());
        // Every core is back, the panicking helper's too.
        assert_eq!(cores.free(), 2);
    }
}
