//! Helpers shared by the HTTP tests: an in-process server on a free loopback port, fixtures, PSNR.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use weir_gpu::Inventory;
use weir_pipeline::config::Config;
use weir_pipeline::server::{self, Running, Settings};

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub running: Running,
    pub data: tempfile::TempDir,
}

/// Starts `weir serve` in-process with `yaml` as its config, on 127.0.0.1:0.
pub async fn start(yaml: &str) -> TestServer {
    start_with_token(yaml, None).await
}

pub async fn start_with_token(yaml: &str, token: Option<&str>) -> TestServer {
    let limits = weir_pipeline::http::Limits {
        max_connections: 64,
        header_timeout: std::time::Duration::from_millis(500),
    };
    start_with(yaml, token, limits).await
}

pub async fn start_with(
    yaml: &str,
    token: Option<&str>,
    http_limits: weir_pipeline::http::Limits,
) -> TestServer {
    start_as(Path::new("test.yaml"), yaml, token, http_limits).await
}

/// Starts `weir serve` in-process with `yaml` read as if it were the file at `path` (relative
/// paths in it, such as `models`, are taken from there).
pub async fn start_as(
    path: &Path,
    yaml: &str,
    token: Option<&str>,
    http_limits: weir_pipeline::http::Limits,
) -> TestServer {
    let cfg = Config::parse(path, yaml, &Inventory::cpu_only("tests")).expect("config");
    let data = tempfile::tempdir().unwrap();
    let settings = Settings {
        token: token.map(str::to_string),
        http_limits,
        ..Settings::loopback(data.path().to_path_buf())
    };
    let running = server::start(&settings, &cfg).await.expect("server starts");
    let base = format!("http://{}", running.http_addr());
    // The server closes a keep-alive connection idle past `header_timeout` (500 ms here); a
    // client that reuses one just then gets a reset. Real clients retry idempotent requests;
    // these tests POST, so the client lets idle connections go first.
    let client = reqwest::Client::builder()
        .pool_idle_timeout(http_limits.header_timeout / 2)
        .build()
        .unwrap();
    TestServer {
        base,
        client,
        running,
        data,
    }
}

impl TestServer {
    pub async fn invoke(&self, function: &str, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/functions/{function}/invoke", self.base))
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    /// POST an S3 notification holding `records` (from `s3_record`) to the webhook.
    pub async fn notify(&self, records: &[String]) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/events/s3", self.base))
            .body(records_body(records))
            .send()
            .await
            .unwrap()
    }

    /// `GET /healthz/ready`: its status and what it says.
    pub async fn ready(&self) -> (u16, serde_json::Value) {
        let res = self
            .client
            .get(format!("{}/healthz/ready", self.base))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), body_json(res).await)
    }

    pub async fn json(&self, path: &str) -> serde_json::Value {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
    }
}

pub async fn body_json(res: reqwest::Response) -> serde_json::Value {
    let bytes = res.bytes().await.unwrap();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Prometheus text at `base`'s `/metrics`.
pub async fn metrics_text(client: &reqwest::Client, base: &str) -> String {
    let res = client.get(format!("{base}/metrics")).send().await.unwrap();
    res.text().await.unwrap()
}

/// The Python that `./test.sh` prepares (`.venv`), or `WEIR_PYTHON`; `needs` names the packages
/// a test's script imports, for the message when there is none.
pub fn venv_python(needs: &str) -> PathBuf {
    if let Some(p) = std::env::var_os("WEIR_PYTHON") {
        return p.into();
    }
    let venv = root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "a Python with {needs} is needed: run ./test.sh (it makes .venv) or set WEIR_PYTHON"
    );
    venv
}

pub fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(root().join("fixtures").join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub fn fixture_names(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("fixtures").join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Peak signal-to-noise ratio of two same-sized RGB images, in dB.
pub fn psnr(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    weir_functions::thumbnail::psnr(a, b).expect("PSNR needs equal sizes")
}

/// The first line `child` prints (its banner); the rest of its output is read and dropped in the
/// background, so the child never writes to a closed pipe.
pub fn banner(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let out = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(out).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        for _ in lines {}
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_default()
}

/// `weir serve` (the real binary) on `dir/weir.yaml` with `dir/data`, its HTTP API on `port`,
/// `args` after those and `env` set, its log appended to `dir/weir.log`; returns once its
/// banner says it is serving.
pub fn serve_binary(
    dir: &Path,
    port: u16,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Child {
    use std::process::{Command, Stdio};
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("weir.log"))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--config"])
        .arg(dir.join("weir.yaml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--http-listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .env_remove("WEIR_TOKEN")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let banner = banner(&mut child);
    assert!(banner.contains("serving"), "{banner}");
    child
}

/// A notification of `records` as a store's webhook sends it: `{"Records":[...]}`.
pub fn records_body(records: &[String]) -> String {
    format!(r#"{{"Records":[{}]}}"#, records.join(","))
}

/// `records` POSTed to the webhook of the node serving HTTP on `port`.
pub async fn notify_port(port: u16, records: &[String]) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/events/s3"))
        .body(records_body(records))
        .send()
        .await
        .unwrap()
}

/// The `store:` line of a config whose objects live in `srv`'s built-in S3 endpoint.
pub fn store_on(srv: &TestServer) -> String {
    format!(
        r#"store: {{ kind: s3, endpoint: "http://{}", access_key: test-access, secret_key: test-secret-key }}"#,
        srv.running.s3_addr().unwrap()
    )
}

/// A `weir serve` node of its own (`dir/weir.yaml`, `dir/data`, `dir/weir.log`), killed when
/// dropped so a failed assertion leaves none running.
pub struct Node {
    pub child: std::process::Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Node {
    /// `config` written to `dir/weir.yaml` and served on a free port (see `serve_binary`).
    pub fn serve(dir: &Path, config: &str, args: &[&str], env: &[(&str, &str)]) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("weir.yaml"), config).unwrap();
        let port = free_port();
        Node {
            child: serve_binary(dir, port, args, env),
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// SIGTERM, and a clean exit.
    pub fn stop(mut self) {
        // SAFETY: kill(2) only sends a signal, to a child this Node owns and has not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on loopback right now (a test server is started on it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it gives a value; fails the test after 90 s, naming `what`.
pub async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(90),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// One `ObjectCreated:Put` record for bucket `uploads` as `source` (`aws:s3`, `minio:s3`,
/// `ceph:s3`) sends it; the key as that sender encodes it.
pub fn s3_record(source: &str, encoded_key: &str) -> String {
    format!(
        r#"{{"eventVersion":"2.1","eventSource":"{source}","eventTime":"2026-11-24T10:00:00.000Z",
        "eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"uploads"}},"object":{{"key":"{encoded_key}","size":1}}}}}}"#
    )
}

/// The AWS SDK's S3 client for the built-in endpoint (path-style, as it serves).
pub fn s3_client(srv: &TestServer, secret: &str) -> aws_sdk_s3::Client {
    let at = srv.running.s3_addr().unwrap();
    s3_client_at(at.port(), "test-access", secret)
}

/// The AWS SDK's S3 client for an endpoint on loopback `port` with these keys.
pub fn s3_client_at(port: u16, access: &str, secret: &str) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let creds = Credentials::new(access, secret, None, None, "test");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(creds)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// The S3 error code of a failed SDK call ("no service error" when there was no reply).
pub fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E>,
) -> String {
    e.as_service_error()
        .and_then(|s| s.code())
        .unwrap_or("no service error")
        .to_string()
}

/// The HTTP status of a failed SDK call (0 when there was no reply).
pub fn status<E>(e: &aws_sdk_s3::error::SdkError<E>) -> u16 {
    e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0)
}

/// `n` copies of `body` in bucket `uploads` (made first), at the keys `key` gives.
pub async fn upload_copies(
    c: &aws_sdk_s3::Client,
    n: usize,
    body: &[u8],
    key: impl Fn(usize) -> String,
) {
    c.create_bucket().bucket("uploads").send().await.unwrap();
    for i in 0..n {
        let bytes = aws_sdk_s3::primitives::ByteStream::from(body.to_vec());
        c.put_object()
            .bucket("uploads")
            .key(key(i))
            .body(bytes)
            .send()
            .await
            .unwrap();
    }
}

/// Bucket `bucket` made, and `n` copies of `body` in it at the keys `key` gives, sixteen
/// uploads at a time.
pub async fn upload_many(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    n: usize,
    body: &[u8],
    key: impl Fn(usize) -> String,
) {
    use futures::StreamExt;
    c.create_bucket().bucket(bucket).send().await.unwrap();
    let puts = (0..n).map(|i| {
        let put = c.put_object().bucket(bucket).key(key(i));
        let body = aws_sdk_s3::primitives::ByteStream::from(body.to_vec());
        async move { put.body(body).send().await.unwrap() }
    });
    futures::stream::iter(puts)
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

/// The object's bytes, or None when it is not there (yet).
pub async fn object(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let out = c.get_object().bucket(bucket).key(key).send().await.ok()?;
    Some(out.body.collect().await.ok()?.into_bytes().to_vec())
}

/// Waits until the object exists and returns its bytes.
pub async fn wait_for(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    until(&format!("{key} in {bucket}"), async || {
        object(c, bucket, key).await
    })
    .await
}

/// The value of the first sample of `name` whose labels contain `labels`, if any.
pub fn metric(text: &str, name: &str, labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| l.contains(labels))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The dead letters once there are at least `n`.
pub async fn dead_letters(srv: &TestServer, n: usize) -> Vec<serde_json::Value> {
    until(&format!("{n} dead letters"), async || {
        let items = srv.json("/v1/dead-letters").await["items"].clone();
        let items = items.as_array().cloned().unwrap_or_default();
        (items.len() >= n).then_some(items)
    })
    .await
}

/// A JetStream server of its own (Debian's `nats-server`, which `./test.sh` installs) on a free
/// loopback port, its store in `dir`; killed when dropped.
pub struct Nats {
    child: std::process::Child,
    pub url: String,
}

impl Nats {
    /// One JetStream server on a loopback port the server picks itself (`-p -1`), so tests
    /// running side by side never race for one port; the port is read from its ports file.
    pub fn start(dir: &Path) -> Nats {
        Self::spawn(dir, None, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `n` JetStream servers clustered on free loopback ports (so a stream can have `n`
    /// replicas), each storing under `dir/<i>`. The routes must be known before the servers
    /// start, so their ports come from [`free_port`]; if another process takes one first, the
    /// cluster is started again on fresh ports. The cluster elects its leaders after this
    /// returns; Weir waits for JetStream at start.
    pub fn cluster(dir: &Path, n: usize) -> Vec<Nats> {
        let mut last = String::new();
        for _ in 0..3 {
            let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
            let all = routes
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(",");
            let nodes: Result<Vec<Nats>, String> = (0..n)
                .map(|i| {
                    let (name, listen) =
                        (format!("n{i}"), format!("nats://127.0.0.1:{}", routes[i]));
                    let args = [
                        "-n",
                        &name,
                        "--cluster_name",
                        "weir",
                        "--cluster",
                        &listen,
                        "--routes",
                        &all,
                    ];
                    Self::spawn(&dir.join(i.to_string()), None, &args)
                })
                .collect();
            match nodes {
                Ok(nodes) => return nodes,
                Err(e) => last = e,
            }
        }
        panic!("a 3-try cluster start failed: {last}")
    }

    /// One JetStream server on `port` (a test that starts it late picks the port first).
    pub fn start_on(dir: &Path, port: u16) -> Nats {
        Self::spawn(dir, Some(port), &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `nats-server` and waits for its ports file, which it writes once it listens: a
    /// server that could not bind exits instead, and that is an error here rather than a
    /// connection to whatever else holds the port. Its log goes to `dir/nats.log`.
    fn spawn(dir: &Path, port: Option<u16>, args: &[&str]) -> Result<Nats, String> {
        std::fs::create_dir_all(dir).unwrap();
        let log = std::fs::File::create(dir.join("nats.log")).unwrap();
        let port_arg = port.map_or("-1".to_string(), |p| p.to_string());
        let mut child = std::process::Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port_arg, "-sd"])
            .arg(dir)
            .arg("--ports_file_dir")
            .arg(dir)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server (./test.sh installs Debian's)");
        let ports = dir.join(format!("nats-server_{}.ports", child.id()));
        let start = std::time::Instant::now();
        let url = loop {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(dir.join("nats.log")).unwrap_or_default();
                return Err(format!(
                    "nats-server on port {port_arg} exited ({status}): {log}"
                ));
            }
            let listed = std::fs::read(&ports).ok().and_then(|b| {
                let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
                Some(v["nats"][0].as_str()?.to_string())
            });
            if let Some(url) = listed {
                break url;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(20),
                "nats-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        Ok(Nats { child, url })
    }

    /// SIGKILL, as a machine that dies.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
