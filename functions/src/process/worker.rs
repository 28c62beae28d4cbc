//! One worker: a process of the user's code, and the Runtime API port that only it is told of.
//! The process runs in its own process group with a clean environment; stopping the worker
//! (dropping it) kills the group and removes its scratch folder.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::api::{self, Answer, Invocation, Link};
use super::logs;
use super::spec::Spec;

/// How one invocation on a worker ended.
#[derive(Debug)]
pub enum Outcome {
    Ok(Bytes),
    /// The handler reported an error (`errorType: errorMessage`); the process stays warm.
    Failed(String),
    /// The process can serve no more: it exited, or its start failed.
    Ended(String),
    /// Past the deadline: the process was killed.
    TimedOut,
}

pub struct Worker {
    pub id: u64,
    link: Arc<Link>,
    tx: mpsc::Sender<Invocation>,
    ended: watch::Receiver<Option<String>>,
    /// Dropping it stops the process.
    _stop: oneshot::Sender<()>,
    /// When it last finished an invocation (or started).
    pub idle_since: Instant,
    /// Invocations it answered.
    pub served: u64,
}

impl Worker {
    /// Start the process with `AWS_LAMBDA_RUNTIME_API` naming a port of its own.
    pub async fn spawn(spec: &Spec, id: u64, scratch: PathBuf) -> Result<Worker, String> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("cannot open a Runtime API port: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read the Runtime API port: {e}"))?;
        std::fs::create_dir_all(&scratch)
            .map_err(|e| format!("cannot make {}: {e}", scratch.display()))?;
        let (tx, rx) = mpsc::channel(1);
        let (ended_tx, ended) = watch::channel(None);
        let link = Arc::new(Link {
            next: tokio::sync::Mutex::new(rx),
            taken: Mutex::new(None),
            ended: ended_tx,
            arn: spec.arn_header(),
        });
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .env_clear()
            .envs(spec.env_for(id, addr, &scratch))
            .current_dir(spec.workdir.as_ref().unwrap_or(&scratch))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some((uid, gid)) = spec.user {
            cmd.uid(uid).gid(gid);
        }
        // SAFETY: prctl is async-signal-safe and touches only the child's own state.
        unsafe {
            cmd.pre_exec(|| {
                // The worker dies with Weir, even when Weir is killed outright.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", spec.program.display()))?;
        let pgid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        let tags = logs::Tags {
            function: spec.name.clone(),
            worker: id,
            link: link.clone(),
        };
        if let Some(out) = child.stdout.take() {
            tokio::spawn(logs::forward(out, "stdout", tags.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(logs::forward(err, "stderr", tags));
        }
        let mut closed = ended.clone();
        let server =
            axum::serve(listener, api::router(link.clone())).with_graceful_shutdown(async move {
                let _ = closed.wait_for(Option::is_some).await;
            });
        tokio::spawn(async move {
            let _ = server.await;
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let watch_link = link.clone();
        tokio::spawn(async move {
            let why = tokio::select! {
                status = child.wait() => match status {
                    Ok(s) => format!("Runtime.ExitError: the process exited ({s})"),
                    Err(e) => format!("Runtime.ExitError: the process was lost: {e}"),
                },
                _ = stopped => {
                    // The leader is not reaped yet: the group id cannot have been reused.
                    kill_group(pgid);
                    "the worker was stopped".to_string()
                }
            };
            // The leader is a zombie or gone; what it started may still run.
            kill_group(pgid);
            let _ = child.wait().await;
            watch_link.end(why);
            let _ = std::fs::remove_dir_all(&scratch);
        });
        Ok(Worker {
            id,
            link,
            tx,
            ended,
            _stop: stop,
            idle_since: Instant::now(),
            served: 0,
        })
    }

    /// Whether the process can still take an invocation.
    pub fn alive(&self) -> bool {
        self.ended.borrow().is_none()
    }

    /// Hand `body` to the process and wait for its answer until `deadline`; past it the
    /// process is killed.
    pub async fn invoke(&mut self, id: String, body: Bytes, deadline: Instant) -> Outcome {
        let (reply, answer) = oneshot::channel();
        let inv = Invocation {
            id,
            deadline_ms: epoch_ms(deadline),
            body,
            reply,
        };
        if self.tx.send(inv).await.is_err() {
            return Outcome::Ended("the worker's Runtime API is closed".into());
        }
        let mut ended = self.ended.clone();
        let outcome = tokio::select! {
            a = answer => match a {
                Ok(Answer::Ok(bytes)) => Outcome::Ok(bytes),
                Ok(Answer::Failed(why)) => Outcome::Failed(why),
                Err(_) => Outcome::Ended("the invocation was dropped".into()),
            },
            why = ended.wait_for(Option::is_some) => Outcome::Ended(
                why.map(|w| w.clone().unwrap_or_default()).unwrap_or_else(|_| "the worker ended".into()),
            ),
            _ = tokio::time::sleep_until(deadline) => {
                // Not alive from now on: the fleet drops it, and dropping kills it.
                self.link.end("Task timed out: the process was stopped".into());
                Outcome::TimedOut
            }
        };
        if matches!(outcome, Outcome::Ok(_) | Outcome::Failed(_)) {
            self.served += 1;
        }
        self.idle_since = Instant::now();
        outcome
    }
}

/// SIGKILL to the worker's whole process group: the handler and anything it started. Sent while
/// the leader is not yet reaped, or just after, so the id still names this group.
fn kill_group(pgid: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals a group; no memory is touched.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// A tokio instant as milliseconds since the epoch.
fn epoch_ms(deadline: Instant) -> u64 {
    let left = deadline.saturating_duration_since(Instant::now());
    let at = SystemTime::now() + left;
    at.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}
