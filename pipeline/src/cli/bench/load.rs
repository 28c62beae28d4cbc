//! The load `weir bench` puts on a server: `concurrency` clients, each sending its next request
//! as soon as the last one is answered (closed loop, as Triton's perf_analyzer does), counted
//! inside a window that opens after a warm-up and closes before the clients drain.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// One request body, with the length of its JSON header when it carries binary tensors.
#[derive(Debug, Clone)]
pub struct Body {
    pub bytes: Bytes,
    pub header_len: Option<usize>,
}

/// One point's load.
pub struct Load {
    pub url: String,
    pub token: Option<String>,
    /// Cycled through by every client, each from its own offset.
    pub bodies: Arc<Vec<Body>>,
    pub concurrency: usize,
    pub warmup: Duration,
    pub window: Duration,
}

/// What the clients saw inside the window.
#[derive(Debug, Default)]
pub struct Measured {
    pub requests: u64,
    pub errors: u64,
    pub latencies_ms: Vec<f64>,
    /// The first refusal or failure, with the server's reason, so a run that only fails says why.
    pub first_error: Option<String>,
}

/// When the window opens and closes, for the caller's own readings (server statistics, CPU).
pub struct Window {
    pub opens: Instant,
    pub closes: Instant,
}

impl Load {
    pub fn window(&self, start: Instant) -> Window {
        let opens = start + self.warmup;
        Window {
            opens,
            closes: opens + self.window,
        }
    }

    /// Spawns the clients; they stop once `w.closes` has passed and their last answer is in.
    pub fn spawn(&self, client: &reqwest::Client, w: &Window) -> tokio::task::JoinSet<Measured> {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..self.concurrency {
            let client = client.clone();
            let (url, token, bodies) = (self.url.clone(), self.token.clone(), self.bodies.clone());
            let (opens, closes) = (w.opens, w.closes);
            set.spawn(async move {
                let mut m = Measured::default();
                let mut next = i % bodies.len();
                while Instant::now() < closes {
                    let body = &bodies[next];
                    next = (next + 1) % bodies.len();
                    let t = Instant::now();
                    let outcome = send(&client, &url, token.as_deref(), body).await;
                    let done = Instant::now();
                    if done < opens || done >= closes {
                        continue;
                    }
                    match outcome {
                        Ok(()) => {
                            m.requests += 1;
                            m.latencies_ms.push((done - t).as_secs_f64() * 1e3);
                        }
                        Err(e) => {
                            m.errors += 1;
                            m.first_error.get_or_insert(e);
                        }
                    }
                }
                m
            });
        }
        set
    }
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Body,
) -> Result<(), String> {
    let mut req = client.post(url).body(body.bytes.clone());
    if let Some(n) = body.header_len {
        req = req.header("Inference-Header-Content-Length", n);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = res.status();
    // The reply is read whole either way: a client is done when it has the answer.
    let text = res.bytes().await.map_err(|e| format!("{url}: {e}"))?;
    if status.is_success() {
        Ok(())
    } else {
        let reason = String::from_utf8_lossy(&text[..text.len().min(300)]).into_owned();
        Err(format!("{status}: {reason}"))
    }
}

/// Every client's window joined into one.
pub async fn join(mut set: tokio::task::JoinSet<Measured>) -> Measured {
    let mut all = Measured::default();
    while let Some(m) = set.join_next().await {
        let Ok(m) = m else { continue };
        all.requests += m.requests;
        all.errors += m.errors;
        all.latencies_ms.extend(m.latencies_ms);
        if all.first_error.is_none() {
            all.first_error = m.first_error;
        }
    }
    all
}

/// Nearest-rank percentile `q` (0–100) of `sorted`, 0 when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.0), 1.0);
    }
}
