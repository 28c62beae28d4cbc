//! A worker's stdout and stderr in Weir's log, one event per line, tagged with the function,
//! the worker and the request it is on. Bounded: long lines are cut, and a chatty process is
//! held to a line budget per second (what it spent over is counted, then said).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::time::Instant;

use super::api::Link;

/// The longest line kept, in bytes; the rest of it is dropped.
pub const MAX_LINE: usize = 8 << 10;
/// Lines per second per stream that reach the log.
pub const LINES_PER_SECOND: u32 = 200;

#[derive(Clone)]
pub struct Tags {
    pub function: String,
    pub worker: u64,
    pub link: Arc<Link>,
}

pub async fn forward(stream: impl AsyncRead + Unpin, name: &'static str, tags: Tags) {
    let mut reader = BufReader::with_capacity(MAX_LINE, stream);
    let mut budget = Budget::new(LINES_PER_SECOND);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match read_line(&mut reader, &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let over = budget.take(Instant::now());
        if over > 0 {
            tracing::warn!(function = %tags.function, worker = tags.worker, stream = name, dropped = over, "the process wrote more lines than the log takes; some were dropped");
        }
        if !budget.allows() {
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        let request = tags.link.current().unwrap_or_default();
        tracing::info!(target: "weir::process", function = %tags.function, worker = tags.worker, request, stream = name, "{text}");
    }
}

/// Reads up to a newline, keeping at most `MAX_LINE` bytes of it; the bytes consumed.
async fn read_line(
    reader: &mut BufReader<impl AsyncRead + Unpin>,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match memchr(buf) {
            Some(at) => (&buf[..=at], true),
            None => (buf, false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        reader.consume(n);
        consumed += n;
        if done {
            return Ok(consumed);
        }
    }
}

fn memchr(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|b| *b == b'\n')
}

/// A budget of lines per one-second window: `take` spends one and, when a window closes,
/// says how many went over in it.
struct Budget {
    per_window: u32,
    window: Instant,
    used: u32,
}

impl Budget {
    fn new(per_window: u32) -> Self {
        Budget {
            per_window,
            window: Instant::now(),
            used: 0,
        }
    }

    fn take(&mut self, now: Instant) -> u32 {
        let mut over = 0;
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            over = self.used.saturating_sub(self.per_window);
            self.window = now;
            self.used = 0;
        }
        self.used += 1;
        over
    }

    fn allows(&self) -> bool {
        self.used <= self.per_window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_lets_its_lines_through_then_counts_the_rest() {
        let mut b = Budget::new(3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(b.take(start), 0);
            assert!(b.allows());
        }
        b.take(start);
        b.take(start);
        assert!(!b.allows());
        // The next window reports the two over and starts afresh.
        assert_eq!(b.take(start + Duration::from_secs(1)), 2);
        assert!(b.allows());
    }

    #[tokio::test]
    async fn long_lines_are_cut_and_the_rest_of_them_skipped() {
        let mut text = vec![b'a'; MAX_LINE + 100];
        text.extend_from_slice(b"\nshort\n");
        let mut reader = BufReader::with_capacity(64, &text[..]);
        let mut line = Vec::new();
        let n = read_line(&mut reader, &mut line).await.unwrap();
        assert_eq!(n, MAX_LINE + 101);
        assert_eq!(line.len(), MAX_LINE);
        line.clear();
        read_line(&mut reader, &mut line).await.unwrap();
        assert_eq!(line, b"short\n");
    }
}
