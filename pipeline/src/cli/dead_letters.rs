//! `weir dead-letters list | show ID | retry ID | retry --all [--function F] | purge [ID |
//! --function F | --all]`: what a running server gave up on, for operators.

use anyhow::bail;
use reqwest::Method;
use serde_json::Value;

use super::api::{Api, ServerArgs};
use crate::bus::DeadLetter;

#[derive(Debug, clap::Args)]
pub struct DeadLettersArgs {
    #[command(subcommand)]
    what: What,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// The newest dead letters, with why each was given up on.
    List {
        /// One function's only.
        #[arg(long)]
        function: Option<String>,
        /// How many at most (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// As JSON, one object per letter.
        #[arg(long)]
        json: bool,
    },
    /// One dead letter in full (JSON), with the event it kept.
    Show { id: u64 },
    /// Send events again through the function's current spec: one letter, or `--all`.
    Retry {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<u64>,
        #[arg(long)]
        all: bool,
        /// With `--all`: one function's only.
        #[arg(long, requires = "all")]
        function: Option<String>,
    },
    /// Remove dead letters: one, one function's, or `--all`.
    Purge {
        #[arg(conflicts_with_all = ["all", "function"])]
        id: Option<u64>,
        #[arg(long)]
        function: Option<String>,
        #[arg(long, conflicts_with = "function")]
        all: bool,
    },
}

pub async fn run(args: DeadLettersArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.server);
    let with_function = |path: &str, f: &Option<String>| match f {
        Some(f) => format!("{path}?function={f}"),
        None => path.to_string(),
    };
    match args.what {
        What::List {
            function,
            limit,
            json,
        } => {
            let path = format!("/v1/dead-letters?limit={}", limit.clamp(1, 1000));
            let path = match &function {
                Some(f) => format!("{path}&function={f}"),
                None => path,
            };
            let answer: Value = api.call(Method::GET, &path, None).await?;
            let items: Vec<DeadLetter> = serde_json::from_value(answer["items"].clone())?;
            for l in &items {
                if json {
                    println!("{}", serde_json::to_string(l)?);
                } else {
                    println!("{}", line(l));
                }
            }
            if !json {
                eprintln!("{} dead letters", items.len());
            }
        }
        What::Show { id } => {
            let letter: Value = api
                .call(Method::GET, &format!("/v1/dead-letters/{id}"), None)
                .await?;
            println!("{}", serde_json::to_string_pretty(&letter)?);
        }
        What::Retry { id, function, .. } => {
            let path = match id {
                Some(id) => format!("/v1/dead-letters/{id}/retry"),
                None => with_function("/v1/dead-letters/retry", &function),
            };
            let answer: Value = api.call(Method::POST, &path, None).await?;
            let (retried, left) = (answer["retried"].as_u64(), answer["left"].as_u64());
            println!(
                "retried {}{}",
                retried.unwrap_or(0),
                match left {
                    Some(n) if n > 0 => format!(", {n} left (their functions take no events here)"),
                    _ => String::new(),
                }
            );
        }
        What::Purge { id, function, all } => {
            let path = match (id, &function, all) {
                (Some(id), _, _) => format!("/v1/dead-letters/{id}"),
                (None, Some(_), _) | (None, None, true) => {
                    with_function("/v1/dead-letters", &function)
                }
                (None, None, false) => {
                    bail!("say what to purge: an id, --function F, or --all")
                }
            };
            let answer: Value = api.call(Method::DELETE, &path, None).await?;
            println!("purged {}", answer["purged"].as_u64().unwrap_or(0));
        }
    }
    Ok(())
}

/// `12  thumbs  bad_input  3×  2026-12-07T17:00:00Z  uploads/a.jpg  reason…`
fn line(l: &DeadLetter) -> String {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(l.time);
    let mut reason = l.reason.replace('\n', " ");
    if reason.chars().count() > 120 {
        reason = reason.chars().take(119).collect::<String>() + "…";
    }
    format!(
        "{:<6} {:<16} {:<12} {:>2}×  {}  {}/{}  {}",
        l.id,
        l.function,
        l.kind,
        l.attempts,
        humantime::format_rfc3339_seconds(when),
        l.bucket,
        l.key,
        reason
    )
}
