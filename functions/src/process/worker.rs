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
use crate::metric_names as m;

/// How one invocation on a worker ended.
#[derive(Debug)]
pub enum Outcome {
    Ok(Bytes),
    /// The handler reported an error (`errorType: errorMessage`); the process stays warm.
    Failed(String),
    /// The process can serve no more: it exited, or its start failed.
    Ended(String),
    /// Past the deadline while the handler ran it: the process was killed.
    TimedOut,
    /// Past the deadline before the process asked for it (still starting): the worker is
    /// left as it is, and the invocation is skipped when it asks.
    NotTaken,
    /// The process ended without having taken it (it died between invocations): worth
    /// running on another worker.
    Lost(String),
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
    /// When the process started.
    pub born: Instant,
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
        make_scratch(&scratch, spec.user)?;
        let (tx, rx) = mpsc::channel(1);
        let (ended_tx, ended) = watch::channel(None);
        let link = Arc::new(Link {
            next: tokio::sync::Mutex::new(rx),
            taken: Mutex::new(None),
            ended: ended_tx,
            arn: spec.arn_header(),
            duration: metrics::histogram!(m::PROCESS_DURATION, "function" => spec.name.clone()),
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
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&scratch);
                return Err(format!("cannot start {}: {e}", spec.program.display()));
            }
        };
        let mut child = child;
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
        tokio::spawn(supervise(child, pgid, stopped, link.clone(), scratch));
        Ok(Worker {
            id,
            link,
            tx,
            ended,
            _stop: stop,
            idle_since: Instant::now(),
            served: 0,
            born: Instant::now(),
        })
    }

    /// Whether the process asked for invocation `id` (answered or not).
    fn took(&self, id: &str) -> bool {
        self.link.current().is_some_and(|c| c == id)
    }

    /// Why the process ended, once it has.
    pub fn why_ended(&self) -> String {
        self.ended.borrow().clone().unwrap_or_default()
    }

    /// Whether the process can still take an invocation.
    pub fn alive(&self) -> bool {
        self.ended.borrow().is_none()
    }

    /// Hand `body` to the process and wait for its answer until `deadline`; past it the
    /// process is killed if it was running the invocation.
    pub async fn invoke(&mut self, id: String, body: Bytes, deadline: Instant) -> Outcome {
        let (reply, mut answer) = oneshot::channel();
        let inv = Invocation {
            id: id.clone(),
            deadline_ms: epoch_ms(deadline),
            body,
            reply,
        };
        let mut ended = self.ended.clone();
        // The channel holds one: it may still hold an invocation skipped at its deadline, which
        // the process drains when it asks; a process that dies first never does.
        tokio::select! {
            sent = self.tx.send(inv) => if sent.is_err() {
                return Outcome::Lost("the worker's Runtime API is closed".into());
            },
            why = ended.wait_for(Option::is_some) => {
                return Outcome::Lost(why.map(|w| w.clone().unwrap_or_default()).unwrap_or_default());
            }
            _ = tokio::time::sleep_until(deadline) => return Outcome::NotTaken,
        }
        let outcome = tokio::select! {
            biased;
            a = &mut answer => answered(a),
            why = ended.wait_for(Option::is_some) => {
                let why = why.map(|w| w.clone().unwrap_or_default()).unwrap_or_default();
                match answer.try_recv() {
                    Ok(a) => answered(Ok(a)),
                    Err(_) if self.took(&id) => Outcome::Ended(why),
                    Err(_) => Outcome::Lost(why),
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                // Decided under the lock `next` hands out under: taken, or never will be.
                let taken = self.link.lock();
                if let Ok(a) = answer.try_recv() {
                    answered(Ok(a))
                } else if taken.as_ref().is_some_and(|t| t.id == id) {
                    drop(taken);
                    // Not alive from now on: the fleet drops it, and dropping kills it.
                    self.link.end("Task timed out: the process was stopped".into());
                    Outcome::TimedOut
                } else {
                    answer.close();
                    Outcome::NotTaken
                }
            }
        };
        if matches!(outcome, Outcome::Ok(_) | Outcome::Failed(_)) {
            self.served += 1;
        }
        self.idle_since = Instant::now();
        outcome
    }
}

fn answered(a: Result<Answer, oneshot::error::RecvError>) -> Outcome {
    match a {
        Ok(Answer::Ok(bytes)) => Outcome::Ok(bytes),
        Ok(Answer::Failed(why)) => Outcome::Failed(why),
        Err(_) => Outcome::Ended("the invocation was dropped".into()),
    }
}

/// Waits for the process to end or be stopped, then kills its group (what it started too),
/// reaps it, says why it ended and removes its scratch folder. The exit is noticed through a
/// pidfd without reaping, so the group is killed while its id still names it.
async fn supervise(
    mut child: tokio::process::Child,
    pgid: i32,
    stopped: oneshot::Receiver<()>,
    link: Arc<Link>,
    scratch: PathBuf,
) {
    let exit = pidfd(pgid);
    let stopped = tokio::select! {
        _ = exited(exit.as_ref(), &mut child) => false,
        _ = stopped => true,
    };
    // Without a pidfd (an old kernel) an exit is only seen by reaping it: the group is then
    // killed just after, a moment in which its id is unlikely to have been reused.
    let reaped = exit.is_none() && !stopped;
    if !reaped {
        kill_group(pgid);
    }
    let status = child.wait().await;
    if reaped {
        kill_group(pgid);
    }
    let why = match status {
        _ if stopped => "the worker was stopped".to_string(),
        Ok(s) => format!("Runtime.ExitError: the process exited ({s})"),
        Err(e) => format!("Runtime.ExitError: the process was lost: {e}"),
    };
    link.end(why);
    let _ = std::fs::remove_dir_all(&scratch);
}

/// A pidfd for `pid`: readable once the process exits, without reaping it.
fn pidfd(pid: i32) -> Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    use std::os::fd::FromRawFd;
    if pid <= 0 {
        return None;
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: the descriptor was just opened and is owned by nothing else.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let readable = tokio::io::Interest::READABLE;
    // SAFETY: the OwnedFd keeps the descriptor open, and the same, for the AsyncFd's lifetime.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(owned, readable) }.ok()
}

/// Once the process has exited: seen through its pidfd without reaping it, or else by reaping.
async fn exited(
    fd: Option<&tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
    child: &mut tokio::process::Child,
) {
    match fd {
        Some(fd) => {
            let _ = fd.readable().await;
        }
        None => {
            let _ = child.wait().await;
        }
    }
}

/// The worker's scratch folder (its HOME and TMPDIR), owned by its user when it runs as one.
fn make_scratch(scratch: &std::path::Path, user: Option<(u32, u32)>) -> Result<(), String> {
    std::fs::create_dir_all(scratch)
        .map_err(|e| format!("cannot make {}: {e}", scratch.display()))?;
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(scratch, Some(uid), Some(gid))
            .map_err(|e| format!("cannot give {} to {uid}:{gid}: {e}", scratch.display()))?;
    }
    Ok(())
}

/// SIGKILL to the worker's whole process group: the handler and anything it started. Sent only
/// while the leader is not yet reaped, so the id still names this group.
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
