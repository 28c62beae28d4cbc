//! The cron trigger through the real binary: a Python Lambda handler (awslambdaric) is handed an
//! EventBridge `Scheduled Event` with the trigger's payload at each slot, and what it answers is
//! written under `<rule>/<slot>`; a server stopped over several slots fires once on restart, for
//! the latest of them, not once per missed slot.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use common::{Node, metric, s3_client_at, until};
use serde_json::{Value, json};

const ACCESS: &str = "cron";
const SECRET: &str = "cron-secret";
/// Every two seconds.
const SCHEDULE: &str = "*/2 * * * * *";

fn config() -> String {
    let python = common::venv_python("awslambdaric");
    let workdir = common::root().join("pipeline/tests/lambda");
    format!(
        r#"
functions:
  - name: ticker
    kind: process
    params: {{ command: [{python}, -m, awslambdaric, behaviours.scheduled], workdir: {workdir} }}
    triggers:
      - cron: {{ schedule: "{SCHEDULE}", timezone: Europe/Berlin, payload: {{ report: daily, limit: 3 }} }}
    output: {{ bucket: ticks, key: "{{key}}.json" }}
    resources: {{ workers: {{ max: 1 }}, timeout: 20s }}
"#,
        python = python.display(),
        workdir = workdir.display(),
    )
}

fn serve(dir: &std::path::Path, s3_port: u16) -> Node {
    let s3 = format!("127.0.0.1:{s3_port}");
    let env = [
        ("WEIR_S3_ACCESS_KEY", ACCESS),
        ("WEIR_S3_SECRET_KEY", SECRET),
    ];
    Node::serve(dir, &config(), &["--s3-listen", &s3], &env)
}

/// The slots with an output, from their keys `ticker-cron-0/<YYYYmmddTHHMMSSZ>.json`.
async fn slots(s3: &aws_sdk_s3::Client) -> BTreeSet<SystemTime> {
    let Ok(listed) = s3.list_objects_v2().bucket("ticks").send().await else {
        return BTreeSet::new();
    };
    listed
        .contents()
        .iter()
        .filter_map(|o| {
            let key = o.key()?;
            let stamp = key.strip_prefix("ticker-cron-0/")?.strip_suffix(".json")?;
            Some(slot_time(stamp))
        })
        .collect()
}

/// `20261207T183500Z` as a time.
fn slot_time(stamp: &str) -> SystemTime {
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    );
    humantime::parse_rfc3339(&rfc).unwrap()
}

async fn fired(port: u16, when: &str) -> f64 {
    let text =
        common::metrics_text(&reqwest::Client::new(), &format!("http://127.0.0.1:{port}")).await;
    metric(
        &text,
        "weir_cron_fired_total",
        &format!(r#"function="ticker",when="{when}""#),
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_hands_its_payload_to_the_handler_and_a_restart_fires_missed_slots_once() {
    let dir = tempfile::tempdir().unwrap();
    let s3_port = common::free_port();
    let node = serve(dir.path(), s3_port);
    let s3 = s3_client_at(s3_port, ACCESS, SECRET);
    let seen = until("two scheduled outputs", async || {
        let s = slots(&s3).await;
        (s.len() >= 2).then_some(s)
    })
    .await;
    // Each slot two seconds after the one before, on the schedule.
    let v: Vec<_> = seen.iter().collect();
    assert_eq!(v[1].duration_since(*v[0]).unwrap(), Duration::from_secs(2));
    let first = v[0];
    let stamp = humantime::format_rfc3339_seconds(*first).to_string();
    let key = format!("ticker-cron-0/{}.json", stamp.replace(['-', ':'], ""));
    let body = common::wait_for(&s3, "ticks", &key).await;
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["detail-type"], "Scheduled Event");
    assert_eq!(event["source"], "aws.events");
    assert_eq!(event["detail"], json!({ "report": "daily", "limit": 3 }));
    assert_eq!(
        event["time"], stamp,
        "the slot's time, not the moment it ran"
    );
    let rule = event["resources"][0].as_str().unwrap();
    assert!(rule.ends_with(":rule/ticker-cron-0"), "{rule}");
    assert_eq!(fired(node.port, "missed").await, 0.0, "nothing missed yet");

    // Down for five seconds: two or three slots pass.
    node.stop();
    let stopped = SystemTime::now();
    let before = slots(&s3_client_at(s3_port, ACCESS, SECRET)).await;
    drop(s3);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let restarted = SystemTime::now();
    let node = serve(dir.path(), s3_port);
    let s3 = s3_client_at(s3_port, ACCESS, SECRET);
    until("the missed firing", async || {
        (fired(node.port, "missed").await == 1.0).then_some(())
    })
    .await;
    until("a firing on time after the restart", async || {
        (fired(node.port, "on_time").await >= 1.0).then_some(())
    })
    .await;
    let after = slots(&s3).await;
    let during: Vec<_> = after
        .iter()
        .filter(|t| **t > stopped && **t < restarted)
        .collect();
    assert!(
        during.len() <= 1,
        "one firing for the missed slots: {during:?}"
    );
    assert_eq!(fired(node.port, "missed").await, 1.0);
    assert!(after.is_superset(&before));
    node.stop();
}
