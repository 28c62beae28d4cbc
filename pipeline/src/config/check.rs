//! Checks across fields and against each function kind, after the file has parsed.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use weir_functions::kinds::{self, BuildCtx};
use weir_gpu::Inventory;
use weir_models::Repository;

use super::{ConfigError, FileConfig, LoadedFunction, Resources, Trigger, err};

/// The file's tokens: an empty one would silently leave the endpoints open.
pub fn tokens(path: &Path, file: &FileConfig) -> Result<(), ConfigError> {
    for (field, token) in [
        ("http.token", &file.http.token),
        ("http.inference_token", &file.http.inference_token),
    ] {
        if token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(err(
                path,
                field,
                "expected a non-empty token (leave the key out for open endpoints)",
            ));
        }
    }
    Ok(())
}

/// `store: { kind: s3 }`: keys in pairs, an endpoint that is a URL.
pub fn store(path: &Path, file: &FileConfig) -> Result<(), ConfigError> {
    let super::StoreSection::S3(s) = &file.store else {
        return Ok(());
    };
    if s.access_key.is_some() != s.secret_key.is_some() {
        return Err(err(
            path,
            "store",
            "give access_key and secret_key together, or neither (then the AWS credentials \
             chain: environment, profile, instance role)",
        ));
    }
    if let Some(e) = &s.endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        let msg = format!("expected an http:// or https:// URL, got {e:?}");
        return Err(err(path, "store.endpoint", msg));
    }
    Ok(())
}

/// `bus: { kind: nats }`: a URL, a stream name NATS allows, replicas and an ack wait in range.
pub fn bus(path: &Path, file: &FileConfig) -> Result<(), ConfigError> {
    let super::BusSection::Nats(n) = &file.bus else {
        return Ok(());
    };
    if n.url.trim().is_empty() {
        return Err(err(
            path,
            "bus.url",
            "expected nats://host:port (or several, comma-separated)",
        ));
    }
    let name_ok = !n.stream.is_empty()
        && n.stream.len() <= 64
        && n.stream
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        let msg = format!(
            "expected 1 to 64 of A-Z, a-z, 0-9, - and _, got {:?}",
            n.stream
        );
        return Err(err(path, "bus.stream", msg));
    }
    if !(1..=5).contains(&n.replicas) {
        return Err(err(
            path,
            "bus.replicas",
            format!("expected 1 to 5, got {}", n.replicas),
        ));
    }
    if !(Duration::from_secs(1)..=Duration::from_secs(30)).contains(&n.ack_wait) {
        let msg = format!("expected 1s to 30s, got {:?}", n.ack_wait);
        return Err(err(path, "bus.ack_wait", msg));
    }
    Ok(())
}

/// The front door's limits.
pub fn http(path: &Path, file: &FileConfig) -> Result<(), ConfigError> {
    let h = &file.http;
    if h.max_connections == 0 || h.max_connections > 1_000_000 {
        let msg = format!("expected 1 to 1000000, got {}", h.max_connections);
        return Err(err(path, "http.max_connections", msg));
    }
    if h.max_inference_requests == 0 || h.max_inference_requests > 1_000_000 {
        let msg = format!("expected 1 to 1000000, got {}", h.max_inference_requests);
        return Err(err(path, "http.max_inference_requests", msg));
    }
    if h.max_inference_body == 0 || h.max_inference_body > 4 << 30 {
        let msg = format!("expected 1 byte to 4GiB, got {}", h.max_inference_body);
        return Err(err(path, "http.max_inference_body", msg));
    }
    if h.header_timeout < Duration::from_millis(100) || h.header_timeout > Duration::from_secs(300)
    {
        let msg = format!(
            "expected a duration from 100ms to 5m, got {:?}",
            h.header_timeout
        );
        return Err(err(path, "http.header_timeout", msg));
    }
    Ok(())
}

/// Asynchronous invokes' bounds.
pub fn invocations(path: &Path, file: &FileConfig) -> Result<(), ConfigError> {
    let i = &file.invocations;
    // A body beyond 16 MiB would make an event the bus (and NATS) cannot carry.
    if i.max_body == 0 || i.max_body > 16 << 20 {
        let msg = format!("expected 1 byte to 16MiB, got {}", i.max_body);
        return Err(err(path, "invocations.max_body", msg));
    }
    if i.keep < Duration::from_secs(1) || i.keep > Duration::from_secs(30 * 24 * 3600) {
        let msg = format!("expected a duration from 1s to 30 days, got {:?}", i.keep);
        return Err(err(path, "invocations.keep", msg));
    }
    for (field, n) in [
        ("invocations.max_results", i.max_results),
        ("invocations.max_bytes", i.max_bytes),
        ("invocations.max_queued", i.max_queued),
    ] {
        if n == 0 {
            return Err(err(path, field, "expected more than 0".to_string()));
        }
    }
    Ok(())
}

/// Paths Weir serves itself, which an `http` trigger may not take.
const RESERVED_PREFIXES: &[&str] = &["/v1", "/v2", "/healthz", "/metrics", "/openapi.json"];

pub fn functions(
    path: &Path,
    file: &FileConfig,
    inventory: &Inventory,
    models: Option<&Arc<Repository>>,
) -> Result<Vec<LoadedFunction>, ConfigError> {
    let mut names = HashSet::new();
    let mut http_paths = HashSet::new();
    let mut out = Vec::new();
    for (i, f) in file.functions.iter().enumerate() {
        let path = f.source.as_deref().unwrap_or(path);
        let at = |field: &str| format!("functions[{i}].{field}");
        let valid_name = !f.name.is_empty()
            && f.name.len() <= 64
            && f.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid_name {
            return Err(err(
                path,
                &at("name"),
                format!(
                    "expected 1 to 64 characters of a-z, 0-9, - or _ (it is part of a URL), got {:?}",
                    f.name
                ),
            ));
        }
        if !names.insert(f.name.clone()) {
            return Err(err(
                path,
                &at("name"),
                format!("function {:?} is defined twice", f.name),
            ));
        }
        let kind = kinds::find(&f.kind).map_err(|e| err(path, &at(&e.field), e.message))?;
        for (t, trigger) in f.triggers.iter().enumerate() {
            if let Trigger::Http(h) = trigger {
                let field = at(&format!("triggers[{t}].http.path"));
                if !h.path.starts_with('/') || h.path.len() < 2 || h.path.contains(['{', '}', '*'])
                {
                    return Err(err(
                        path,
                        &field,
                        format!("expected a literal path such as /thumbs, got {:?}", h.path),
                    ));
                }
                if RESERVED_PREFIXES
                    .iter()
                    .any(|r| h.path == *r || h.path.starts_with(&format!("{r}/")))
                {
                    return Err(err(
                        path,
                        &field,
                        format!("{} is served by Weir itself; choose another path", h.path),
                    ));
                }
                if !http_paths.insert(h.path.clone()) {
                    return Err(err(
                        path,
                        &field,
                        format!("{} is already taken by another trigger", h.path),
                    ));
                }
            }
            if let Some(s) = trigger.storage()
                && s.bucket.is_empty()
            {
                return Err(err(
                    path,
                    &at(&format!("triggers[{t}].{}.bucket", trigger.key())),
                    "expected a bucket name",
                ));
            }
            if let Trigger::Nats(n) = trigger {
                let field = at(&format!("triggers[{t}].nats"));
                if !matches!(file.bus, super::BusSection::Nats(_)) {
                    let msg =
                        "a nats trigger needs bus: { kind: nats } (its servers carry the subject)";
                    return Err(err(path, &field, msg));
                }
                if n.subject.is_empty() || n.subject.contains(char::is_whitespace) {
                    let msg = format!("expected a subject such as media.in.>, got {:?}", n.subject);
                    return Err(err(path, &format!("{field}.subject"), msg));
                }
            }
            if let Trigger::Cron(c) = trigger {
                let field = at(&format!("triggers[{t}].cron"));
                crate::triggers::cron::Schedule::parse(&c.schedule, &c.timezone)
                    .map_err(|m| err(path, &field, m))?;
                serde_json::to_value(&c.payload).map_err(|e| {
                    err(
                        path,
                        &format!("{field}.payload"),
                        format!("expected a value JSON can hold: {e}"),
                    )
                })?;
            }
            if let Trigger::Poll(p) = trigger
                && !(Duration::from_secs(1)..=Duration::from_secs(24 * 3600)).contains(&p.interval)
            {
                return Err(err(
                    path,
                    &at(&format!("triggers[{t}].poll.interval")),
                    format!("expected a duration from 1s to 24h, got {:?}", p.interval),
                ));
            }
        }
        check_resources(path, &f.resources, &at("resources"))?;
        let has_s3 = f.triggers.iter().any(Trigger::feeds_bus);
        if has_s3 && f.output.is_none() && !kind.output_optional {
            let msg = "expected an output { bucket, key } for a function with s3, poll, nats or cron triggers: its results need a place";
            return Err(err(path, &at("output"), msg));
        }
        for (t, trigger) in f.triggers.iter().enumerate() {
            if let Some(s3) = trigger.storage() {
                let field = at(&format!("triggers[{t}].{}.bucket", trigger.key()));
                crate::store::check_bucket(&s3.bucket).map_err(|m| err(path, &field, m))?;
            }
        }
        if let Some(out) = &f.output {
            crate::store::check_bucket(&out.bucket)
                .map_err(|m| err(path, &at("output.bucket"), m))?;
            let template = crate::store::KeyTemplate::parse(&out.key, kind.template_vars)
                .map_err(|e| err(path, &at("output.key"), e.to_string()))?;
            per_item_template(&template, kind.per_item_vars)
                .map_err(|m| err(path, &at("output.key"), m))?;
            for (t, trigger) in f.triggers.iter().enumerate() {
                if let Some(s3) = trigger.storage()
                    && crate::router::could_trigger_itself(&s3, out)
                {
                    let msg = format!(
                        "writing {} in bucket {} could trigger this function again through triggers[{t}]; \
                         write to another bucket or under a prefix or suffix the trigger does not match",
                        out.key, out.bucket
                    );
                    return Err(err(path, &at("output"), msg));
                }
            }
        }
        let function = kind
            .build(
                &f.params,
                BuildCtx {
                    models,
                    name: &f.name,
                    base: path.parent(),
                    workers: weir_functions::process::Sizes {
                        min: f.resources.workers.min,
                        max: f.resources.workers.max,
                        idle_after: f.resources.workers.idle_after,
                    },
                },
            )
            .map_err(|e| err(path, &at(&e.field), e.message))?;
        let max_batch = function.limits().max_batch;
        if f.resources.batch.max_size > max_batch {
            return Err(err(
                path,
                &at("resources.batch.max_size"),
                format!(
                    "expected at most {max_batch}: a {} function takes no more per batch",
                    kind.name
                ),
            ));
        }
        let device = f
            .resources
            .device
            .resolve(inventory, function.limits().gpu_capable)
            .map_err(|e| err(path, &at("resources.device"), e.to_string()))?;
        out.push(LoadedFunction {
            spec: f.clone(),
            kind,
            function,
            device,
        });
    }
    Ok(out)
}

/// A kind that makes many artifacts per input (a video's pictures) needs a key for each, told
/// apart by one of `vars` in the last segment, and a folder of its own per input for the
/// manifest written beside them.
fn per_item_template(t: &crate::store::KeyTemplate, vars: &[&str]) -> Result<(), String> {
    if vars.is_empty() {
        return Ok(());
    }
    let named = vars
        .iter()
        .map(|v| format!("{{{v}}}"))
        .collect::<Vec<_>>()
        .join(" or ");
    if !vars.iter().any(|v| t.uses(v)) {
        return Err(format!(
            "expected {named} in the key: every picture of a video needs its own"
        ));
    }
    let folder = t.folder();
    if !folder.uses("key") && !folder.uses("stem") {
        return Err(
            "expected {key} or {stem} before the last '/': each video's manifest.json \
             is written in that folder"
                .into(),
        );
    }
    if vars.iter().any(|v| folder.uses(v)) {
        return Err(format!("expected {named} after the last '/' only"));
    }
    Ok(())
}

fn check_resources(path: &Path, r: &Resources, at: &str) -> Result<(), ConfigError> {
    let f = |field: &str, msg: String| Err(err(path, &format!("{at}.{field}"), msg));
    if r.workers.max == 0 {
        return f("workers.max", "expected at least 1 worker".into());
    }
    if r.workers.min > r.workers.max {
        return f(
            "workers.min",
            format!(
                "expected at most workers.max ({}), got {}",
                r.workers.max, r.workers.min
            ),
        );
    }
    if r.workers.idle_after.is_zero() {
        return f(
            "workers.idle_after",
            "expected a time above zero (with min 0, what is idle that long is let go)".into(),
        );
    }
    if r.batch.max_size == 0 || r.batch.max_size > 1024 {
        return f(
            "batch.max_size",
            format!("expected 1 to 1024, got {}", r.batch.max_size),
        );
    }
    if r.batch.max_delay > Duration::from_secs(10) {
        return f(
            "batch.max_delay",
            format!("expected at most 10s, got {:?}", r.batch.max_delay),
        );
    }
    if r.workers.max > 1024 {
        return f(
            "workers.max",
            format!("expected at most 1024, got {}", r.workers.max),
        );
    }
    if r.timeout.is_zero() || r.timeout > Duration::from_secs(3600) {
        return f(
            "timeout",
            format!("expected a duration from 1ms to 1h, got {:?}", r.timeout),
        );
    }
    if r.max_input == 0 {
        return f("max_input", "expected a positive size".into());
    }
    if r.queue > 1_000_000 {
        return f(
            "queue",
            format!("expected at most 1000000, got {}", r.queue),
        );
    }
    Ok(())
}
