//! A video's pictures encoded beside its decode, on a core the ledger says is idle.
//!
//! The decode is one thread's work; the pictures it picks can be encoded elsewhere meanwhile. A
//! helper takes a spare core from the ledger (`weir_models::cores`) and drains the pictures
//! handed to it, then gives the core back. With no core idle, or enough pixels already waiting,
//! the decoding thread encodes the picture itself: under full load each video stays on its one
//! core, and no encode runs on a core the ledger thinks is free.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use weir_models::cores::{Cores, Held};

use super::{Job, MAX_WAITING_BYTES, Made};
use crate::FnError;

/// One picture's encode: its bytes, or `None` once they were handed on early.
pub(super) type Encode<'a> = dyn Fn(&Job) -> Result<Option<Vec<u8>>, FnError> + Sync + 'a;

/// What one video's encodes share between its decoding thread and its helper.
pub(super) struct Encodes<'a> {
    encode: &'a Encode<'a>,
    cores: &'static Cores,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Bytes of pictures handed over and not yet encoded.
    waiting: usize,
    /// A helper is draining the queue (and will see what is pushed before it stops).
    helping: bool,
    made: Vec<Made>,
    failed: Option<FnError>,
}

impl<'a> Encodes<'a> {
    pub fn new(cores: &'static Cores, encode: &'a Encode<'a>) -> Self {
        Encodes {
            encode,
            cores,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hand `job` to the helper, starting one on a spare core if none runs; encode it here when
    /// no core is idle or enough pixels wait already.
    pub fn submit<'s>(&'s self, job: Job, scope: &rayon::Scope<'s>) {
        let bytes = job.frame.pixels.len();
        let mut s = self.lock();
        if s.waiting + bytes > MAX_WAITING_BYTES {
            drop(s);
            return self.run(job);
        }
        let start = if s.helping {
            None
        } else {
            match self.cores.spare() {
                Some(held) => Some(held),
                None => {
                    drop(s);
                    return self.run(job);
                }
            }
        };
        s.waiting += bytes;
        s.helping = true;
        s.queue.push_back(job);
        drop(s);
        if let Some(held) = start {
            scope.spawn(move |_| self.help(held));
        }
    }

    /// The helper: encode what is handed over until the queue is empty, on the spare core.
    fn help(&self, held: Held<'static>) {
        self.cores.holding(&held, || while self.next_here(true) {});
    }

    /// The decoding thread, once the walk is over: encode what still waits rather than wait
    /// for the helper to reach it.
    pub fn drain(&self) {
        while self.next_here(false) {}
    }

    /// Encode the next waiting picture here; false when none waits (a helper then stops).
    fn next_here(&self, helper: bool) -> bool {
        let job = {
            let mut s = self.lock();
            match s.queue.pop_front() {
                Some(job) => job,
                None => {
                    if helper {
                        s.helping = false;
                    }
                    return false;
                }
            }
        };
        let bytes = job.frame.pixels.len();
        self.run(job);
        self.lock().waiting -= bytes;
        true
    }

    fn run(&self, job: Job) {
        let result = (self.encode)(&job);
        let mut s = self.lock();
        match result {
            Ok(bytes) => s.made.push(Made {
                index: job.index,
                pts: job.pts,
                key: job.key,
                width: job.frame.width,
                height: job.frame.height,
                bytes,
            }),
            Err(e) => {
                s.failed.get_or_insert(e);
            }
        }
    }

    /// Every picture made, in order, or the first encode's error.
    pub fn finish(self) -> Result<Vec<Made>, FnError> {
        let s = self.state.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = s.failed {
            return Err(e);
        }
        let mut made = s.made;
        made.sort_by_key(|m| m.index);
        Ok(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thumbnail::{Frame, Layout};

    fn job(index: usize) -> Job {
        Job {
            index,
            pts: index as f64,
            key: true,
            frame: Frame {
                width: 4,
                height: 4,
                layout: Layout::Rgb,
                pixels: vec![0u8; 48].into(),
            },
        }
    }

    /// Encodes that report which thread ran them and whether it held a core in `cores`.
    fn run_all(cores: &'static Cores, n: usize) -> (Vec<Made>, usize) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let here = Mutex::new(0usize);
        let owner = Mutex::new(None);
        let encode = |_: &Job| -> Result<Option<Vec<u8>>, FnError> {
            std::thread::sleep(std::time::Duration::from_millis(3));
            if Some(std::thread::current().id()) == *owner.lock().unwrap() {
                *here.lock().unwrap() += 1;
            }
            Ok(Some(vec![1]))
        };
        let made = pool.install(|| {
            *owner.lock().unwrap() = Some(std::thread::current().id());
            cores.on_core(|| {
                let encodes = Encodes::new(cores, &encode);
                rayon::in_place_scope(|scope| {
                    (0..n).for_each(|i| encodes.submit(job(i), scope));
                    encodes.drain();
                });
                encodes.finish().unwrap()
            })
        });
        (made, here.into_inner().unwrap())
    }

    #[test]
    fn an_idle_core_helps_and_a_busy_machine_encodes_in_line() {
        let idle = Cores::leaked(2);
        // 120 ms of encodes: time enough for the helper's thread to wake on a busy test machine.
        let (made, here) = run_all(idle, 40);
        let order: Vec<usize> = made.iter().map(|m| m.index).collect();
        assert_eq!(
            order,
            (0..40).collect::<Vec<_>>(),
            "every picture, in order"
        );
        assert!(here < 40, "the helper encoded some ({here} of 40 here)");
        assert_eq!(idle.free(), 2, "the helper's core is back");

        let busy = Cores::leaked(1);
        let (made, here) = run_all(busy, 5);
        assert_eq!(made.len(), 5);
        assert_eq!(
            here, 5,
            "no core was idle: every picture encoded by the decoding thread"
        );
        assert_eq!(busy.free(), 1);
    }

    #[test]
    fn the_first_failed_encode_is_the_error() {
        let cores = Cores::leaked(1);
        let encode = |j: &Job| -> Result<Option<Vec<u8>>, FnError> {
            if j.index == 2 {
                Err(FnError::bad_input("picture 2 failed"))
            } else {
                Ok(Some(vec![1]))
            }
        };
        let encodes = Encodes::new(cores, &encode);
        rayon::in_place_scope(|scope| (0..4).for_each(|i| encodes.submit(job(i), scope)));
        let Err(e) = encodes.finish() else {
            panic!("a failed encode was not the error")
        };
        assert!(e.to_string().contains("picture 2"), "{e}");
    }
}
