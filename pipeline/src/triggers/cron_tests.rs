use std::sync::Mutex;

use super::*;
use crate::bus::TokioClock;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn slots_follow_the_schedule_on_the_zones_wall_clock() {
    let utc = Schedule::parse("*/5 * * * *", "UTC").unwrap();
    let t = at("2026-12-07T18:33:20Z");
    assert_eq!(utc.after(t), Some(at("2026-12-07T18:35:00Z")));
    assert_eq!(utc.latest(t), Some(at("2026-12-07T18:30:00Z")));
    // A slot is its own latest, and the next one is strictly after it.
    let slot = at("2026-12-07T18:35:00Z");
    assert_eq!(utc.latest(slot), Some(slot));
    assert_eq!(utc.after(slot), Some(at("2026-12-07T18:40:00Z")));
    // 09:00 in Berlin is 08:00 UTC in winter and 07:00 in summer.
    let berlin = Schedule::parse("0 9 * * *", "Europe/Berlin").unwrap();
    assert_eq!(
        berlin.after(at("2026-12-07T00:00:00Z")),
        Some(at("2026-12-07T08:00:00Z"))
    );
    assert_eq!(
        berlin.after(at("2026-07-07T00:00:00Z")),
        Some(at("2026-07-07T07:00:00Z"))
    );
    // Six fields: seconds first.
    let secs = Schedule::parse("*/10 * * * * *", "UTC").unwrap();
    assert_eq!(
        secs.after(at("2026-12-07T18:33:21Z")),
        Some(at("2026-12-07T18:33:30Z"))
    );
}

#[test]
fn a_bad_schedule_or_zone_is_a_clear_error() {
    let e = Schedule::parse("every five minutes", "UTC").unwrap_err();
    assert!(e.contains("expected a cron schedule"), "{e}");
    let e = Schedule::parse("61 * * * *", "UTC").unwrap_err();
    assert!(e.contains("\"61 * * * *\""), "{e}");
    let e = Schedule::parse("* * * * *", "Mars/Olympus").unwrap_err();
    assert!(
        e.contains("IANA time zone") && e.contains("Mars/Olympus"),
        "{e}"
    );
}

#[test]
fn missed_slots_collapse_into_the_latest() {
    let s = Schedule::parse("* * * * *", "UTC").unwrap();
    let covered = at("2026-12-07T17:00:00Z");
    // An hour down: sixty slots passed, one fires, the latest.
    let now = at("2026-12-07T18:00:30Z");
    assert_eq!(due(&s, covered, now), Some(at("2026-12-07T18:00:00Z")));
    // Nothing passed since the covered slot.
    assert_eq!(due(&s, at("2026-12-07T18:00:00Z"), now), None);
}

/// The events a trigger recorded.
#[derive(Default)]
struct Recorded(Mutex<Vec<Event>>);

#[async_trait::async_trait]
impl Sink for Recorded {
    async fn emit(&self, events: Vec<Event>) -> Result<(), String> {
        self.0.lock().unwrap().extend(events);
        Ok(())
    }
}

fn task(dir: &Path, schedule: &str, sink: Arc<Recorded>, clock: &Arc<TokioClock>) -> CronTask {
    CronTask {
        function: "report".into(),
        rule: "report-cron-0".into(),
        schedule: Schedule::parse(schedule, "UTC").unwrap(),
        state_key: format!("report-cron-0 {schedule} UTC"),
        payload: serde_json::json!({"window": "5m"}),
        state: open_state(dir).unwrap(),
        sink,
        clock: clock.clone(),
    }
}

/// The slots of `schedule` in (from, to].
fn between(schedule: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let s = Schedule::parse(schedule, "UTC").unwrap();
    let mut out = Vec::new();
    let mut t = from;
    while let Some(next) = s.after(t).filter(|n| *n <= to) {
        out.push(next);
        t = next;
    }
    out
}

fn wall(clock: &TokioClock) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(clock.now_ms() as i64).unwrap()
}

fn slots(sink: &Recorded) -> Vec<DateTime<Utc>> {
    let events = sink.0.lock().unwrap();
    events.iter().map(|e| at(&e.time)).collect()
}

#[tokio::test(start_paused = true)]
async fn fires_once_per_slot_with_its_payload_and_a_stable_id() {
    let dir = tempfile::tempdir().unwrap();
    // One wall clock across restarts, moving with tokio's paused time.
    let clock = Arc::new(TokioClock::new());
    let sink = Arc::new(Recorded::default());
    let (stop, stopped) = watch::channel(false);
    let started = wall(&clock);
    let run = tokio::spawn(task(dir.path(), "*/5 * * * * *", sink.clone(), &clock).run(stopped));
    tokio::time::sleep(Duration::from_secs(21)).await;
    stop.send(true).unwrap();
    run.await.unwrap();
    let fired = slots(&sink);
    // A new trigger fires nothing for the past: each slot since its start, five seconds apart.
    assert_eq!(fired, between("*/5 * * * * *", started, wall(&clock)));
    assert!(fired.len() >= 4, "{fired:?}");
    let events = sink.0.lock().unwrap();
    let e = &events[0];
    assert_eq!(e.source, "weir:cron");
    assert_eq!(e.payload, Some(serde_json::json!({"window": "5m"})));
    assert!(
        e.object.key.starts_with("report-cron-0/"),
        "{}",
        e.object.key
    );
    let expected = stable_id(&["weir:cron", "report-cron-0", &e.time]);
    assert_eq!(
        e.id, expected,
        "the same slot has the same id on every node"
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_after_missed_slots_fires_once_then_keeps_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    // One wall clock across restarts, moving with tokio's paused time.
    let clock = Arc::new(TokioClock::new());
    let first = Arc::new(Recorded::default());
    let (stop, stopped) = watch::channel(false);
    let started = wall(&clock);
    let run = tokio::spawn(task(dir.path(), "* * * * *", first.clone(), &clock).run(stopped));
    tokio::time::sleep(Duration::from_secs(61)).await;
    stop.send(true).unwrap();
    run.await.unwrap();
    let before = slots(&first);
    assert_eq!(before, between("* * * * *", started, wall(&clock)));
    let last = *before.last().expect("a slot in 61 s");
    // Down for ten minutes: ten slots pass unfired.
    tokio::time::sleep(Duration::from_secs(600)).await;
    let again = Arc::new(Recorded::default());
    let (stop, stopped) = watch::channel(false);
    let t = task(dir.path(), "* * * * *", again.clone(), &clock);
    let now = t.now();
    let run = tokio::spawn(t.run(stopped));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let after = slots(&again);
    assert_eq!(
        after.len(),
        1,
        "one firing for all the missed slots: {after:?}"
    );
    assert_eq!(
        Some(after[0]),
        Schedule::parse("* * * * *", "UTC").unwrap().latest(now)
    );
    assert!(
        after[0] - last >= chrono::TimeDelta::minutes(9),
        "{last} {after:?}"
    );
    // Then on schedule, from the slot that fired.
    tokio::time::sleep(Duration::from_secs(150)).await;
    stop.send(true).unwrap();
    run.await.unwrap();
    let after = slots(&again);
    let on_time = between("* * * * *", after[0], wall(&clock));
    assert_eq!(after[1..], on_time[..]);
    assert!(on_time.len() >= 2, "{after:?}");
}

#[tokio::test(start_paused = true)]
async fn a_changed_schedule_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    // One wall clock across restarts, moving with tokio's paused time.
    let clock = Arc::new(TokioClock::new());
    let sink = Arc::new(Recorded::default());
    let (stop, stopped) = watch::channel(false);
    let run = tokio::spawn(task(dir.path(), "* * * * *", sink.clone(), &clock).run(stopped));
    tokio::time::sleep(Duration::from_secs(61)).await;
    stop.send(true).unwrap();
    run.await.unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    // Another schedule after an hour down, with slots in that hour: none of them fires (a
    // state kept by rule alone would fire the latest), only its slots from now on.
    let other = Arc::new(Recorded::default());
    let (stop, stopped) = watch::channel(false);
    let restarted = wall(&clock);
    let run = tokio::spawn(task(dir.path(), "*/7 * * * *", other.clone(), &clock).run(stopped));
    tokio::time::sleep(Duration::from_secs(900)).await;
    stop.send(true).unwrap();
    run.await.unwrap();
    let fired = slots(&other);
    assert_eq!(fired, between("*/7 * * * *", restarted, wall(&clock)));
    assert!(!fired.is_empty(), "a slot in fifteen minutes");
}
