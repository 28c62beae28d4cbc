//! `kind: process` params, checked when the config loads (a command that cannot run is a config
//! error then, not a failure at the first event), and the clean environment a worker gets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::http::HeaderValue;

/// `params: { command: [...], env: {...}, workdir, handler, user }`; only `command` is needed.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessParams {
    /// The program and its arguments, e.g. `[python3, -m, awslambdaric, app.handler]`. A
    /// relative program path is taken from the spec file's folder; a bare name from `PATH`.
    pub command: Vec<String>,
    /// Added to the worker's environment (which starts empty).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Where the code lives (`LAMBDA_TASK_ROOT`, the process's working directory); relative to
    /// the spec file's folder. Without it each worker runs in its own scratch folder.
    pub workdir: Option<PathBuf>,
    /// `_HANDLER`, for runtimes that read it (`module.function`).
    pub handler: Option<String>,
    /// Run as this user: a name, or `uid` / `uid:gid` (Weir must be root to switch).
    pub user: Option<String>,
}

/// Variables a spec may not set: they are how Weir and the worker find each other.
const RESERVED: &[&str] = &["AWS_LAMBDA_RUNTIME_API"];

/// A default `PATH` for the clean environment when the spec's `env` gives none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The params resolved: what a worker is started with.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub workdir: Option<PathBuf>,
    pub user: Option<(u32, u32)>,
    env: BTreeMap<String, String>,
    handler: Option<String>,
    /// Variables for reaching the object store, given once the server is up.
    pub store_env: BTreeMap<String, String>,
}

impl Spec {
    /// `base`: the spec file's folder, for relative paths. Errors name the param.
    pub fn resolve(
        name: &str,
        p: ProcessParams,
        base: Option<&Path>,
    ) -> Result<Spec, (&'static str, String)> {
        let Some((program, args)) = p.command.split_first() else {
            return Err((
                "command",
                "expected the program to run and its arguments".into(),
            ));
        };
        for key in p.env.keys() {
            if key.is_empty() || key.contains(['=', '\0']) {
                return Err(("env", format!("{key:?} is not a variable name")));
            }
            if RESERVED.contains(&key.as_str()) {
                return Err(("env", format!("{key} is set by Weir for each worker")));
            }
        }
        let base = base.unwrap_or(Path::new("."));
        let path = p.env.get("PATH").map_or(DEFAULT_PATH, String::as_str);
        let program = find_program(program, base, path).map_err(|m| ("command", m))?;
        let workdir = match p.workdir {
            None => None,
            Some(w) => {
                // Absolute: LAMBDA_TASK_ROOT is read after the process changes directory.
                let w = std::path::absolute(base.join(w)).unwrap_or_default();
                if !w.is_dir() {
                    return Err(("workdir", format!("{} is not a folder", w.display())));
                }
                Some(w)
            }
        };
        let user = p
            .user
            .as_deref()
            .map(find_user)
            .transpose()
            .map_err(|m| ("user", m))?;
        Ok(Spec {
            name: name.to_string(),
            program,
            args: args.to_vec(),
            workdir,
            user,
            env: p.env,
            handler: p.handler,
            store_env: BTreeMap::new(),
        })
    }

    pub fn region(&self) -> &str {
        self.env
            .get("AWS_REGION")
            .or_else(|| self.store_env.get("AWS_REGION"))
            .map_or("us-east-1", String::as_str)
    }

    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:000000000000:function:{}",
            self.region(),
            self.name
        )
    }

    pub fn arn_header(&self) -> HeaderValue {
        HeaderValue::from_str(&self.arn()).unwrap_or(HeaderValue::from_static("weir"))
    }

    /// The whole environment of worker `id`: Lambda's variables, the store's, then the spec's
    /// own, and last the Runtime API address, which nothing overrides.
    pub fn env_for(&self, id: u64, api: SocketAddr, scratch: &Path) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let root = self
            .workdir
            .as_deref()
            .unwrap_or(scratch)
            .display()
            .to_string();
        let region = self.region().to_string();
        let memory = weir_gpu::host_memory().unwrap_or(1 << 30) >> 20;
        for (k, v) in [
            ("PATH", DEFAULT_PATH.to_string()),
            ("LANG", "C.UTF-8".into()),
            ("TZ", ":UTC".into()),
            ("HOME", scratch.display().to_string()),
            ("TMPDIR", scratch.display().to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", self.name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory.to_string()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.name),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", format!("weir/worker-{id}")),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("AWS_EXECUTION_ENV", "Weir".into()),
            ("AWS_REGION", region.clone()),
            ("AWS_DEFAULT_REGION", region),
            ("LAMBDA_TASK_ROOT", root.clone()),
            ("LAMBDA_RUNTIME_DIR", root),
        ] {
            env.insert(k.to_string(), v);
        }
        if let Some(h) = &self.handler {
            env.insert("_HANDLER".into(), h.clone());
        }
        env.extend(self.store_env.clone());
        env.extend(self.env.clone());
        env.insert("AWS_LAMBDA_RUNTIME_API".into(), api.to_string());
        env
    }
}

/// The program as an absolute path that exists and may be run.
fn find_program(program: &str, base: &Path, path: &str) -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![base.join(program)]
    } else {
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(program))
            .collect()
    };
    for c in &candidates {
        if is_executable(c) {
            // Absolute, but not resolved: a virtualenv's python finds its packages through the
            // link's own path.
            return Ok(std::path::absolute(c).unwrap_or_else(|_| c.clone()));
        }
    }
    match candidates.first() {
        Some(c) if program.contains('/') && c.exists() => {
            Err(format!("{} is not an executable file", c.display()))
        }
        Some(c) if program.contains('/') => Err(format!("{} does not exist", c.display())),
        _ => Err(format!("{program:?} is not found in PATH ({path})")),
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `uid`, `uid:gid`, or a user name from the system's user database.
fn find_user(user: &str) -> Result<(u32, u32), String> {
    let ids: Vec<&str> = user.split(':').collect();
    if let (Some(Ok(uid)), true) = (ids.first().map(|u| u.parse::<u32>()), ids.len() <= 2) {
        let gid = match ids.get(1) {
            Some(g) => g
                .parse::<u32>()
                .map_err(|_| format!("{g:?} is not a group id"))?,
            None => uid,
        };
        return Ok((uid, gid));
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == user)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| format!("no user named {user:?} (give a name or uid[:gid])"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(yaml: &str) -> ProcessParams {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn commands_resolve_from_path_or_the_spec_folder_and_bad_ones_say_why() {
        let s = Spec::resolve("f", params("{ command: [sh, -c, 'exit 0'] }"), None).unwrap();
        assert!(
            s.program.is_absolute() && s.program.ends_with("sh"),
            "{s:?}"
        );
        let e = Spec::resolve("f", params("{ command: [no-such-program-x] }"), None).unwrap_err();
        assert_eq!(e.0, "command");
        assert!(e.1.contains("not found in PATH"), "{e:?}");
        let e = Spec::resolve("f", params("{ command: [./missing.sh] }"), None).unwrap_err();
        assert!(e.1.contains("does not exist"), "{e:?}");
        let e = Spec::resolve("f", params("{ command: [/etc/passwd] }"), None).unwrap_err();
        assert!(e.1.contains("not an executable"), "{e:?}");
        let e = Spec::resolve("f", params("{ command: [] }"), None).unwrap_err();
        assert_eq!(e.0, "command");
        let e = Spec::resolve(
            "f",
            params("{ command: [sh], env: { AWS_LAMBDA_RUNTIME_API: x } }"),
            None,
        )
        .unwrap_err();
        assert_eq!(e.0, "env");
        let e = Spec::resolve("f", params("{ command: [sh], user: nobody-x }"), None).unwrap_err();
        assert_eq!(e.0, "user");
        assert!(serde_yaml::from_str::<ProcessParams>("{ command: [sh], cmd: 1 }").is_err());
    }

    #[test]
    fn a_worker_gets_lambdas_variables_and_nothing_of_weirs_own() {
        let mut s = Spec::resolve(
            "thumbs",
            params("{ command: [sh], handler: app.handler, env: { MODE: fast, AWS_REGION: eu-west-1 } }"),
            None,
        )
        .unwrap();
        s.store_env
            .insert("AWS_ENDPOINT_URL_S3".into(), "http://127.0.0.1:9000".into());
        let api: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        let env = s.env_for(3, api, Path::new("/tmp/w3"));
        assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:4321");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "thumbs");
        assert_eq!(env["_HANDLER"], "app.handler");
        assert_eq!(env["MODE"], "fast");
        assert_eq!(env["AWS_REGION"], "eu-west-1");
        assert_eq!(env["AWS_ENDPOINT_URL_S3"], "http://127.0.0.1:9000");
        assert_eq!(env["LAMBDA_TASK_ROOT"], "/tmp/w3");
        assert!(
            !env.contains_key("CARGO"),
            "Weir's own environment stays out"
        );
        assert_eq!(
            s.arn(),
            "arn:aws:lambda:eu-west-1:000000000000:function:thumbs"
        );
        assert_eq!(find_user("1000:50").unwrap(), (1000, 50));
        assert_eq!(find_user("root").unwrap(), (0, 0));
    }
}
