//! The decode-memory budget: one count of the bytes that decoded pictures hold, shared by every
//! function of the process. A small file can claim a huge picture (a 400 KB PNG of 9999×9999
//! decodes to 400 MB), and the pixel limit alone lets a handful of them at once take all the
//! memory there is. A decode reserves what it will hold before it allocates; when the budget is
//! spent it waits for others to finish, until its deadline, and then gives up as `Overloaded`
//! (429 over HTTP, a later delivery on the bus) — never more than the budget at once. Waiters are
//! served in arrival order, so a stream of small pictures cannot starve a large one.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::{ErrorKind, FnError};

/// Bytes of decoded pictures the process may hold at once.
#[derive(Debug)]
pub struct DecodeMemory {
    /// `None`: no limit (direct calls, benchmarks).
    limit: Option<u64>,
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    used: u64,
    /// Tickets of the decodes waiting, oldest first; only the first may take what is free.
    waiting: VecDeque<u64>,
    next_ticket: u64,
}

impl DecodeMemory {
    pub fn new(limit: u64) -> Arc<Self> {
        Self::with(Some(limit))
    }

    pub fn unlimited() -> Arc<Self> {
        Self::with(None)
    }

    fn with(limit: Option<u64>) -> Arc<Self> {
        Arc::new(DecodeMemory {
            limit,
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
        })
    }

    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> u64 {
        self.lock().used
    }

    /// Reserve `bytes` for `what` (words for the error), waiting until `deadline` while others
    /// hold the budget. More than the whole budget can never fit: that is the input's fault.
    pub fn reserve(
        self: &Arc<Self>,
        bytes: u64,
        deadline: Instant,
        what: &dyn Fn() -> String,
    ) -> Result<Reservation, FnError> {
        let Some(limit) = self.limit else {
            return Ok(self.granted(bytes));
        };
        if bytes > limit {
            return Err(FnError::bad_input(format!(
                "decoding {} needs {} MB, more than the whole decode_memory_budget of {} MB",
                what(),
                mb(bytes),
                mb(limit)
            )));
        }
        let mut st = self.lock();
        if st.waiting.is_empty() && st.used + bytes <= limit {
            st.used += bytes;
            return Ok(self.granted(bytes));
        }
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.waiting.push_back(ticket);
        loop {
            if st.waiting.front() == Some(&ticket) && st.used + bytes <= limit {
                st.waiting.pop_front();
                st.used += bytes;
                drop(st);
                // The next in line may fit in what is left.
                self.freed.notify_all();
                return Ok(self.granted(bytes));
            }
            let now = Instant::now();
            if now >= deadline {
                st.waiting.retain(|t| *t != ticket);
                let in_use = st.used;
                drop(st);
                self.freed.notify_all();
                return Err(FnError::new(
                    ErrorKind::Overloaded,
                    format!(
                        "decoding {} needs {} MB of the decode_memory_budget ({} MB, {} MB in \
                         use by other decodes) and none came free in time: try again later",
                        what(),
                        mb(bytes),
                        mb(limit),
                        mb(in_use)
                    ),
                ));
            }
            // Wakes on every release; the wait is bounded so a far deadline is no problem.
            let wait = (deadline - now).min(Duration::from_secs(1));
            st = self
                .freed
                .wait_timeout(st, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn granted(self: &Arc<Self>, bytes: u64) -> Reservation {
        Reservation {
            memory: self.clone(),
            bytes: if self.limit.is_some() { bytes } else { 0 },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Bytes held from the budget until dropped.
#[derive(Debug)]
pub struct Reservation {
    memory: Arc<DecodeMemory>,
    bytes: u64,
}

impl Reservation {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let mut st = self.memory.lock();
            st.used = st.used.saturating_sub(self.bytes);
            drop(st);
            self.memory.freed.notify_all();
        }
    }
}

/// The default budget for a machine with `total` bytes of memory: a quarter, leaving the rest
/// to loaded models, bodies in flight and the system; at least 256 MB.
pub fn default_budget(total: u64) -> u64 {
    (total / 4).max(256 << 20)
}

fn mb(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    fn what() -> String {
        "a test picture".into()
    }

    #[test]
    fn reservations_add_up_and_return_when_dropped() {
        let m = DecodeMemory::new(100);
        let a = m.reserve(60, soon(0), &what).unwrap();
        let b = m.reserve(40, soon(0), &what).unwrap();
        assert_eq!(m.in_use(), 100);
        let e = m.reserve(1, soon(20), &what).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overloaded, "{e}");
        assert!(e.reason().contains("1 MB in use"), "{e}");
        drop((a, b));
        assert_eq!(m.in_use(), 0);
    }

    #[test]
    fn more_than_the_whole_budget_is_bad_input_at_once() {
        let m = DecodeMemory::new(10 << 20);
        let e = m.reserve(11 << 20, soon(10_000), &what).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput);
        assert!(
            e.reason().contains("11 MB") && e.reason().contains("10 MB"),
            "{e}"
        );
    }

    #[test]
    fn a_waiting_decode_starts_when_another_finishes() {
        let m = DecodeMemory::new(100);
        let held = m.reserve(80, soon(0), &what).unwrap();
        let m2 = m.clone();
        let waiter =
            std::thread::spawn(move || m2.reserve(50, soon(10_000), &what).map(|r| r.bytes()));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(m.in_use(), 80, "the waiter must not overcommit");
        drop(held);
        assert_eq!(waiter.join().unwrap().unwrap(), 50);
        assert_eq!(m.in_use(), 0);
    }

    #[test]
    fn waiters_are_served_in_arrival_order() {
        let m = DecodeMemory::new(100);
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = m.reserve(100, soon(0), &what).unwrap();
        let waiter = |bytes: u64, name: &'static str| {
            let (m, order) = (m.clone(), order.clone());
            std::thread::spawn(move || {
                let r = m.reserve(bytes, soon(10_000), &what).unwrap();
                order.lock().unwrap().push(name);
                std::thread::sleep(Duration::from_millis(20));
                drop(r);
            })
        };
        let large = waiter(90, "large");
        std::thread::sleep(Duration::from_millis(50));
        // Arriving later, the small one waits behind the large one although it alone would fit.
        let small = waiter(20, "small");
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        large.join().unwrap();
        small.join().unwrap();
        assert_eq!(*order.lock().unwrap(), ["large", "small"]);
        // A waiter that gives up leaves the line.
        let held = m.reserve(100, soon(0), &what).unwrap();
        assert!(m.reserve(10, soon(30), &what).is_err());
        drop(held);
        assert!(m.reserve(10, soon(0), &what).is_ok());
    }

    #[test]
    fn unlimited_counts_nothing_and_never_waits() {
        let m = DecodeMemory::unlimited();
        let _r = m.reserve(u64::MAX, soon(0), &what).unwrap();
        assert_eq!(m.in_use(), 0);
    }

    #[test]
    fn the_default_is_a_quarter_of_the_machine_and_at_least_256_mb() {
        assert_eq!(default_budget(24 << 30), 6 << 30);
        assert_eq!(default_budget(512 << 20), 256 << 20);
    }
}
