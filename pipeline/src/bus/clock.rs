//! The time a bus keeps due dates in: milliseconds since the epoch, so they survive a restart.
//! Injected, so tests run backoff on tokio's paused clock instead of waiting.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> u64;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        wall_ms()
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The wall clock when made, then tokio's clock: under `tokio::time::pause` it moves only as
/// tokio's time is advanced, in step with the bus's sleeps.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    wall: u64,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> TokioClock {
        TokioClock {
            wall: wall_ms(),
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        let since: Duration = tokio::time::Instant::now() - self.start;
        self.wall + since.as_millis() as u64
    }
}
