//! A client of a running server's management API, for the commands that drive one
//! (`reprocess`, `dead-letters`): `--server` (`WEIR_URL`) and `--token` (`WEIR_TOKEN`), JSON
//! answers, and the server's own reason when it refuses.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

/// Where the server is and how to be let in.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The server's base URL.
    #[arg(
        long,
        env = "WEIR_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Bearer token, when the server has one.
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

/// The server's refusal: its status and its reason.
#[derive(Debug, thiserror::Error)]
#[error("the server answered {status}: {reason}")]
pub struct Refused {
    pub status: u16,
    pub reason: String,
}

impl Refused {
    /// A gateway or a server not ready (502, 503, 504): may pass once it is back.
    pub fn passing(&self) -> bool {
        matches!(self.status, 502..=504)
    }
}

pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    pub fn new(args: &ServerArgs) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: args.server.trim_end_matches('/').to_string(),
            token: args.token.clone(),
        }
    }

    /// `method path` with an optional JSON body; the answer as `T`. A transport failure keeps
    /// reqwest's error in the chain (a caller may wait for a restarting server on it).
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<T> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(60));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.base))?;
        let status = res.status();
        let text = res.text().await.context("the reply could not be read")?;
        if !status.is_success() {
            let reply: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            let reason = reply["error"].as_str().unwrap_or("no reason given");
            return Err(Refused {
                status: status.as_u16(),
                reason: reason.to_string(),
            }
            .into());
        }
        serde_json::from_str(&text).context("the server's answer is not what was expected")
    }
}
