//! `weir reprocess --function F --bucket B [--prefix P] [--since T] [--rate N/s] [--force]
//! [--dry-run]`: submit a reprocess job to a running server, follow it (a progress bar on a
//! terminal, plain lines otherwise), print the summary, and exit 0 only when nothing failed.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;

use super::api::{Api, Refused, ServerArgs};
use crate::jobs::{Job, JobSpec, JobState};

#[derive(Debug, clap::Args)]
pub struct ReprocessArgs {
    /// The function to run (any function with an output).
    #[arg(long)]
    function: String,
    /// The bucket whose objects it runs on.
    #[arg(long)]
    bucket: String,
    /// Only keys under this prefix.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Only objects modified since then: RFC 3339, a date, or a duration ago ("6h").
    #[arg(long)]
    since: Option<String>,
    /// Objects per second at most ("50" or "50/s").
    #[arg(long)]
    rate: Option<String>,
    /// Run every object, even those whose outputs are up to date.
    #[arg(long)]
    force: bool,
    /// Say what would run, and run nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// How long the server may not answer while a job is followed (a restart) before giving up.
const UNREACHABLE_FOR: Duration = Duration::from_secs(120);

pub async fn run(args: ReprocessArgs) -> anyhow::Result<()> {
    let spec = JobSpec {
        function: args.function.clone(),
        bucket: args.bucket.clone(),
        prefix: args.prefix.clone(),
        since: args.since.as_deref().map(since).transpose()?,
        rate: args.rate.as_deref().map(rate).transpose()?,
        force: args.force,
        dry_run: args.dry_run,
    };
    let api = Api::new(&args.server);
    let spec = serde_json::to_value(&spec)?;
    let job: Job = api.call(Method::POST, "/v1/jobs", Some(&spec)).await?;
    eprintln!(
        "job {} started: {} on {}",
        job.id, job.spec.function, job.spec.bucket
    );
    let job = follow(&api, &format!("/v1/jobs/{}", job.id)).await?;
    summary(&job);
    match job.state {
        JobState::Done if job.counts.failed == 0 => Ok(()),
        JobState::Done => bail!("{} objects failed", job.counts.failed),
        JobState::Cancelled => bail!("the job was cancelled"),
        JobState::Failed => bail!(
            "the job failed: {}",
            job.error.as_deref().unwrap_or("no reason given")
        ),
        JobState::Running => bail!("the job is still running"),
    }
}

/// Poll the job until it ends, showing progress; a server that stops answering (restarting)
/// is waited for.
async fn follow(api: &Api, path: &str) -> anyhow::Result<Job> {
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| indicatif::ProgressBar::new(0));
    if let Some(bar) = &bar {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} {per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    }
    let (started, mut last_line, mut unreachable_since) = (Instant::now(), None, None);
    loop {
        let job: Job = match api.call(Method::GET, path, None).await {
            Ok(job) => {
                unreachable_since = None;
                job
            }
            // No answer, or a gateway's 502-504 (the server restarting): wait for it.
            Err(e)
                if e.chain().any(|c| c.is::<reqwest::Error>())
                    || e.downcast_ref::<Refused>().is_some_and(Refused::passing) =>
            {
                let since = *unreachable_since.get_or_insert_with(|| {
                    eprintln!("the server does not answer; waiting for it ({e:#})");
                    Instant::now()
                });
                if since.elapsed() > UNREACHABLE_FOR {
                    bail!("the server has not answered for {UNREACHABLE_FOR:?}: {e:#}");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let c = &job.counts;
        let ended = job.state != JobState::Running;
        match &bar {
            Some(bar) => {
                bar.set_length(c.total.unwrap_or(0));
                bar.set_position(c.finished());
                bar.set_message(format!("failed {}", c.failed));
                if ended {
                    bar.finish();
                }
            }
            None => {
                let due = last_line.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(2));
                if due || ended {
                    eprintln!("{}", progress_line(&job, started.elapsed()));
                    last_line = Some(Instant::now());
                }
            }
        }
        if ended {
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `progress j…: 1200/2000 (processed 1100, skipped 100, failed 0) 45.1/s ETA 18s`
fn progress_line(job: &Job, elapsed: Duration) -> String {
    let c = &job.counts;
    let total = c.total.map_or("?".to_string(), |t| t.to_string());
    let rate = c.finished() as f64 / elapsed.as_secs_f64().max(0.001);
    let eta = match c.total {
        Some(t) if rate > 0.0 && t > c.finished() => {
            let left = Duration::from_secs_f64((t - c.finished()) as f64 / rate);
            format!(
                " ETA {}",
                humantime::format_duration(Duration::from_secs(left.as_secs()))
            )
        }
        _ => String::new(),
    };
    format!(
        "progress {}: {}/{total} (processed {}, skipped {}, failed {}) {rate:.1}/s{eta}",
        job.id,
        c.finished(),
        c.processed,
        c.skipped,
        c.failed
    )
}

fn summary(job: &Job) {
    let c = &job.counts;
    if job.spec.dry_run {
        println!(
            "dry run of {} on {}: {} would run, {} up to date",
            job.spec.function, job.spec.bucket, c.would_run, c.skipped
        );
        for key in &job.would_run {
            println!("  would run {key}");
        }
        return;
    }
    println!(
        "job {} {:?}: processed {}, skipped {} (up to date), failed {}{}",
        job.id,
        job.state,
        c.processed,
        c.skipped,
        c.failed,
        if c.cancelled > 0 {
            format!(", cancelled {}", c.cancelled)
        } else {
            String::new()
        }
    );
    let mut reasons: Vec<_> = job.reasons.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (reason, n) in reasons.into_iter().take(5) {
        println!("  {n} × {reason}");
    }
}

/// `--since`: a time as the server takes it, or a duration ago.
fn since(text: &str) -> anyhow::Result<String> {
    if let Ok(ago) = humantime::parse_duration(text) {
        let at = std::time::SystemTime::now()
            .checked_sub(ago)
            .context("--since reaches before 1970")?;
        return Ok(humantime::format_rfc3339_millis(at).to_string());
    }
    crate::jobs::since_ms(text).map_err(|e| anyhow::anyhow!("--{e}"))?;
    Ok(text.to_string())
}

/// `--rate`: `N` or `N/s`, above zero.
fn rate(text: &str) -> anyhow::Result<f64> {
    let n: f64 = text
        .trim()
        .trim_end_matches("/s")
        .parse()
        .with_context(|| format!("--rate: {text:?} is not a number of objects per second"))?;
    if !(n > 0.0 && n.is_finite()) {
        bail!("--rate must be above 0 objects per second, got {text}");
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked_before_the_server_is_asked() {
        assert_eq!(rate("50/s").unwrap(), 50.0);
        assert_eq!(rate("2.5").unwrap(), 2.5);
        assert!(rate("0").unwrap_err().to_string().contains("above 0"));
        assert!(
            rate("fast")
                .unwrap_err()
                .to_string()
                .contains("not a number")
        );
        assert_eq!(since("2026-12-01").unwrap(), "2026-12-01");
        assert!(since("6h").unwrap().ends_with('Z'));
        let e = since("last tuesday").unwrap_err().to_string();
        assert!(e.contains("is not a time"), "{e}");
    }
}
