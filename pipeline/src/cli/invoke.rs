//! `weir invoke FUNCTION FILE [--out DIR]`: one synchronous invocation through a running server.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;

#[derive(Debug, clap::Args)]
pub struct InvokeArgs {
    /// The function's name.
    function: String,
    /// The input file.
    file: PathBuf,
    /// Folder for the artifacts (created if missing).
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// The server's base URL.
    #[arg(long, env = "WEIR_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Give up after this long (the server has its own per-function timeout too).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// Bearer token, when the server has one.
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

pub async fn run(args: InvokeArgs) -> anyhow::Result<()> {
    let body = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let url = format!(
        // The envelope, whatever the function's own answer: its artifacts are written out.
        "{}/v1/functions/{}/invoke?return=all",
        args.server.trim_end_matches('/'),
        args.function
    );
    let mut req = reqwest::Client::new()
        .post(&url)
        .timeout(args.timeout)
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body);
    if let Some(t) = &args.token {
        req = req.bearer_auth(t);
    }
    let res = req
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = res.status();
    let text = res.text().await.context("the reply could not be read")?;
    let reply: serde_json::Value =
        serde_json::from_str(&text).unwrap_or(serde_json::json!({ "error": text }));
    if !status.is_success() {
        let reason = reply["error"].as_str().unwrap_or("no reason given");
        bail!("{} answered {status}: {reason}", args.function);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    for a in reply["artifacts"].as_array().into_iter().flatten() {
        let name = a["name"].as_str().unwrap_or("artifact");
        let data = base64::engine::general_purpose::STANDARD
            .decode(a["data"].as_str().unwrap_or(""))
            .context("an artifact's data is not base64")?;
        let path = safe_join(&args.out, name)?;
        std::fs::write(&path, &data).with_context(|| format!("cannot write {}", path.display()))?;
        println!("{} ({} bytes)", path.display(), data.len());
    }
    println!("{}", serde_json::to_string_pretty(&reply["summary"])?);
    Ok(())
}

/// Artifact names come from the server: keep them inside the output folder.
fn safe_join(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let ok = !name.is_empty() && !name.contains(['/', '\\', '\0']) && name != "." && name != "..";
    if !ok {
        bail!("the server sent an artifact name that is not a plain file name: {name:?}");
    }
    Ok(dir.join(name))
}
