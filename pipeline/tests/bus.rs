//! The `Bus` conformance suite. Every case is written against the trait and runs for each
//! implementation: the embedded redb bus on tokio's paused clock (backoff checked without
//! waiting for it), and NATS JetStream (a `nats-server` of the test's own) in real time, with
//! every duration scaled by the implementation's time unit.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, timeout};
use weir_pipeline::bus::{Bus, BusError, EmbeddedBus, JetStreamBus, JetStreamSettings, TokioClock};
use weir_pipeline::events::{Event, ObjectRef};

#[derive(Clone, Copy, Debug)]
enum Impl {
    Embedded,
    JetStream,
}

impl Impl {
    /// The suite's unit of time: a second of paused time, or a quarter of a real one.
    fn unit(self) -> Duration {
        match self {
            Impl::Embedded => Duration::from_secs(1),
            Impl::JetStream => Duration::from_millis(250),
        }
    }
}

/// Where a bus lives, outliving it so it can be opened again (a restart): a folder, and for
/// JetStream a server of its own.
struct Place {
    dir: tempfile::TempDir,
    nats: Option<common::Nats>,
    imp: Impl,
}

impl Place {
    fn new(imp: Impl) -> Place {
        let dir = tempfile::tempdir().unwrap();
        let nats = matches!(imp, Impl::JetStream).then(|| common::Nats::start(dir.path()));
        Place { dir, nats, imp }
    }

    fn unit(&self) -> Duration {
        self.imp.unit()
    }

    async fn open(&self) -> Arc<dyn Bus> {
        let clock = Arc::new(TokioClock::new());
        match &self.nats {
            None => {
                let path = self.dir.path().join("bus.redb");
                Arc::new(EmbeddedBus::open(&path, clock).unwrap())
            }
            Some(nats) => {
                let settings = JetStreamSettings {
                    url: nats.url.clone(),
                    stream: "weir".into(),
                    replicas: 1,
                    ack_wait: Duration::from_secs(1),
                    credentials: None,
                    token: None,
                    start_wait: Duration::from_secs(10),
                };
                Arc::new(JetStreamBus::open(settings, clock).await.unwrap())
            }
        }
    }
}

fn event(key: &str) -> Event {
    Event {
        id: format!("id-{key}"),
        source: "test".into(),
        time: "2026-12-06T10:00:00.000Z".into(),
        name: "s3:ObjectCreated:Put".into(),
        object: ObjectRef {
            bucket: "uploads".into(),
            key: key.into(),
            size: Some(1),
            etag: Some("e".into()),
            version: None,
        },
        payload: None,
        request: None,
    }
}

/// Nothing more for `function` within `wait` (of tokio's time).
async fn nothing_for(bus: &dyn Bus, function: &str, wait: Duration) {
    if let Ok(d) = timeout(wait, bus.next(function)).await {
        panic!("unexpected delivery {d:?}");
    }
}

async fn each_function_gets_each_event_until_it_acks(imp: Impl) {
    let place = Place::new(imp);
    let bus = place.open().await;
    let both = vec!["thumbs".to_string(), "labels".to_string()];
    bus.publish(event("a.jpg"), both).await.unwrap();
    bus.publish(event("b.jpg"), vec!["thumbs".into()])
        .await
        .unwrap();
    bus.publish(event("nobody.txt"), vec![]).await.unwrap();
    assert_eq!(bus.depth().await.unwrap(), 3);
    let t1 = bus.next("thumbs").await.unwrap();
    let t2 = bus.next("thumbs").await.unwrap();
    assert_eq!(
        (t1.event.object.key.as_str(), t2.event.object.key.as_str()),
        ("a.jpg", "b.jpg"),
        "oldest first"
    );
    assert_eq!((t1.function.as_str(), t1.attempts), ("thumbs", 0));
    nothing_for(&*bus, "thumbs", place.unit() * 3).await;
    let l = bus.next("labels").await.unwrap();
    assert_eq!(l.event, event("a.jpg"));
    assert_eq!(bus.pending("thumbs").await.unwrap(), 2, "held ones count");
    assert_eq!(
        bus.pending("labels").await.unwrap(),
        1,
        "labels holds a.jpg"
    );
    bus.ack(&t1).await.unwrap();
    bus.ack(&t2).await.unwrap();
    assert_eq!(bus.pending("thumbs").await.unwrap(), 0);
    assert_eq!(bus.depth().await.unwrap(), 1, "labels still owes a.jpg");
    bus.ack(&l).await.unwrap();
    assert_eq!(bus.depth().await.unwrap(), 0);
    bus.close().await;
}

/// An event published again for a function that has not finished it (a webhook sent twice, a
/// page emitted again after a crash) is one pair; another function still gets its own.
async fn an_event_published_twice_is_one_pair_per_function(imp: Impl) {
    let place = Place::new(imp);
    let bus = place.open().await;
    bus.publish(event("a.jpg"), vec!["thumbs".into()])
        .await
        .unwrap();
    let held = bus.next("thumbs").await.unwrap();
    let both = vec!["thumbs".to_string(), "labels".to_string()];
    bus.publish(event("a.jpg"), both).await.unwrap();
    assert_eq!(bus.pending("thumbs").await.unwrap(), 1, "recorded once");
    assert_eq!(bus.pending("labels").await.unwrap(), 1);
    nothing_for(&*bus, "thumbs", place.unit() * 3).await;
    bus.ack(&held).await.unwrap();
    let l = bus.next("labels").await.unwrap();
    bus.ack(&l).await.unwrap();
    assert_eq!(bus.depth().await.unwrap(), 0);
    bus.close().await;
}

/// A dead letter keeps its event, is found by its id, and is gone once removed.
async fn dead_letters_are_shown_and_removed_by_id(imp: Impl) {
    let place = Place::new(imp);
    let bus = place.open().await;
    for key in ["a.jpg", "b.jpg"] {
        bus.publish(event(key), vec!["f".into()]).await.unwrap();
        let d = bus.next("f").await.unwrap();
        bus.dead_letter(&d, "bad_input", "no").await.unwrap();
    }
    let all = bus.dead_letters(10, None).await.unwrap();
    let b = bus.dead_letter_by_id(all[0].id).await.unwrap().unwrap();
    assert_eq!(b, all[0]);
    assert_eq!(b.event, Some(event("b.jpg")), "the event is kept");
    let again = b.retried();
    assert_ne!(again.id, event("b.jpg").id, "a retry is no duplicate");
    assert_eq!(again.object, event("b.jpg").object);
    let removed = bus
        .remove_dead_letters(&[all[0].id, 999_999])
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(bus.dead_letter_by_id(all[0].id).await.unwrap(), None);
    assert_eq!(
        bus.dead_letters(10, None).await.unwrap(),
        vec![all[1].clone()]
    );
    bus.close().await;
}

async fn a_waiting_consumer_wakes_on_publish(imp: Impl) {
    let place = Place::new(imp);
    let bus = place.open().await;
    let waiting = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.next("thumbs").await })
    };
    tokio::time::sleep(place.unit() * 4).await;
    assert!(!waiting.is_finished());
    bus.publish(event("late.jpg"), vec!["thumbs".into()])
        .await
        .unwrap();
    let d = timeout(place.unit() * 4, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(d.event.object.key, "late.jpg");
    bus.close().await;
}

async fn retries_back_off_then_dead_letter_with_the_reason(imp: Impl) {
    let place = Place::new(imp);
    let bus = place.open().await;
    bus.publish(event("x y+z.png"), vec!["thumbs".into()])
        .await
        .unwrap();
    let mut d = bus.next("thumbs").await.unwrap();
    for (attempt, backoff) in [(1, 1), (2, 2), (3, 4)] {
        let since = Instant::now();
        let backoff = place.unit() * backoff;
        bus.retry(&d, backoff).await.unwrap();
        nothing_for(&*bus, "thumbs", backoff.mul_f64(0.9)).await;
        d = bus.next("thumbs").await.unwrap();
        assert!(since.elapsed() >= backoff, "came back early");
        assert!(
            since.elapsed() < backoff + place.unit() * 2,
            "came back late"
        );
        assert_eq!(d.attempts, attempt);
    }
    bus.dead_letter(
        &d,
        "bad_input",
        "the JPEG data stops before its end (truncated)",
    )
    .await
    .unwrap();
    assert_eq!(bus.depth().await.unwrap(), 0);
    nothing_for(&*bus, "thumbs", place.unit() * 4).await;
    let dead = bus.dead_letters(100, None).await.unwrap();
    assert_eq!(dead.len(), 1);
    let l = &dead[0];
    assert_eq!(
        (
            l.key.as_str(),
            l.function.as_str(),
            l.kind.as_str(),
            l.attempts
        ),
        ("x y+z.png", "thumbs", "bad_input", 4)
    );
    assert!(l.reason.contains("truncated"));
    bus.close().await;
}

async fn a_postponed_pair_spends_no_attempt(imp: Impl) {
    let place = Place::new(imp);
    let bus = place.open().await;
    bus.publish(event("big.png"), vec!["thumbs".into()])
        .await
        .unwrap();
    let d = bus.next("thumbs").await.unwrap();
    bus.postpone(&d, place.unit() * 4).await.unwrap();
    nothing_for(&*bus, "thumbs", place.unit() * 3).await;
    let d = bus.next("thumbs").await.unwrap();
    assert_eq!(d.attempts, 0);
    bus.close().await;
}

async fn dead_letters_page_newest_first(imp: Impl) {
    let place = Place::new(imp);
    let bus = place.open().await;
    for i in 0..5 {
        bus.publish(event(&format!("{i}.jpg")), vec!["f".into()])
            .await
            .unwrap();
        let d = bus.next("f").await.unwrap();
        bus.dead_letter(&d, "bad_input", &format!("reason {i}"))
            .await
            .unwrap();
    }
    let first = bus.dead_letters(2, None).await.unwrap();
    let keys: Vec<&str> = first.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(keys, ["4.jpg", "3.jpg"]);
    let rest = bus.dead_letters(10, Some(first[1].id)).await.unwrap();
    let keys: Vec<&str> = rest.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(keys, ["2.jpg", "1.jpg", "0.jpg"]);
    bus.close().await;
}

async fn a_restart_delivers_every_unacked_pair_again(imp: Impl) {
    let place = Place::new(imp);
    {
        let bus = place.open().await;
        for i in 0..20 {
            bus.publish(event(&format!("{i:02}.jpg")), vec!["thumbs".into()])
                .await
                .unwrap();
        }
        for _ in 0..5 {
            let d = bus.next("thumbs").await.unwrap();
            bus.ack(&d).await.unwrap();
        }
        let late = bus.next("thumbs").await.unwrap();
        bus.retry(&late, Duration::from_secs(3600)).await.unwrap();
        // Five acked, one waiting an hour, four held and never finished, ten never delivered.
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(bus.next("thumbs").await.unwrap());
        }
        bus.close().await;
        assert!(matches!(bus.next("thumbs").await, Err(BusError::Closed)));
        assert!(matches!(
            bus.publish(event("x"), vec![]).await,
            Err(BusError::Closed)
        ));
        assert!(matches!(bus.depth().await, Err(BusError::Closed)));
    }
    let bus = place.open().await;
    let (mut keys, mut held) = (Vec::new(), Vec::new());
    // JetStream gives back what a closed consumer held once its ack wait is over (1 s here).
    // Each delivery is held (a dropped one would come back after the ack wait).
    while let Ok(d) = timeout(place.unit() * 12, bus.next("thumbs")).await {
        let d = d.unwrap();
        keys.push(d.event.object.key.clone());
        held.push(d);
    }
    keys.sort();
    let want: Vec<String> = (6..20).map(|i| format!("{i:02}.jpg")).collect();
    assert_eq!(
        keys, want,
        "the held and the undelivered; the retry not yet"
    );
    bus.close().await;
}

/// A pair held longer than a delivery's lease (JetStream's ack wait, 1 s here) is not given to
/// anyone else while its holder works: a long invocation is not run twice.
async fn a_held_pair_is_not_delivered_again(imp: Impl) {
    let place = Place::new(imp);
    let bus = place.open().await;
    bus.publish(event("long.mp4"), vec!["frames".into()])
        .await
        .unwrap();
    let d = bus.next("frames").await.unwrap();
    nothing_for(&*bus, "frames", place.unit() * 16).await;
    bus.ack(&d).await.unwrap();
    nothing_for(&*bus, "frames", place.unit() * 8).await;
    assert_eq!(bus.depth().await.unwrap(), 0);
    bus.close().await;
}

/// `next_batch` takes up to `max` due pairs at once, never one already held, and together they
/// are every pair once.
async fn a_batch_takes_up_to_max_pairs_each_once(imp: Impl) {
    let place = Place::new(imp);
    let bus = place.open().await;
    for i in 0..5 {
        bus.publish(event(&format!("{i}.jpg")), vec!["f".into()])
            .await
            .unwrap();
    }
    let first = bus.next_batch("f", 3).await.unwrap();
    assert!((1..=3).contains(&first.len()), "{} pairs", first.len());
    let mut held = first;
    while held.len() < 5 {
        let more = timeout(place.unit() * 8, bus.next_batch("f", 10))
            .await
            .expect("the rest of the pairs")
            .unwrap();
        held.extend(more);
    }
    let mut keys: Vec<String> = held.iter().map(|d| d.event.object.key.clone()).collect();
    keys.sort();
    assert_eq!(keys, ["0.jpg", "1.jpg", "2.jpg", "3.jpg", "4.jpg"]);
    nothing_for(&*bus, "f", place.unit() * 4).await;
    for d in &held {
        bus.ack(d).await.unwrap();
    }
    assert_eq!(bus.depth().await.unwrap(), 0);
    bus.close().await;
}

async fn close_wakes_waiting_consumers(imp: Impl) {
    let place = Place::new(imp);
    let bus = place.open().await;
    let waiting = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.next("thumbs").await })
    };
    tokio::time::sleep(place.unit()).await;
    bus.close().await;
    let r = timeout(place.unit() * 4, waiting).await.unwrap().unwrap();
    assert!(matches!(r, Err(BusError::Closed)), "{r:?}");
}

/// Every case for one implementation, on the runtime it needs: paused time for a bus whose
/// clock is tokio's, real time (several threads) for a server that keeps its own.
/// An open bus is ready; a closed one says it is not (readiness probes ask `ready`).
async fn ready_until_closed(imp: Impl) {
    let place = Place::new(imp);
    let bus = place.open().await;
    bus.ready().await.expect("an open bus is ready");
    bus.close().await;
    let r = bus.ready().await;
    assert!(matches!(r, Err(BusError::Closed)), "{r:?}");
}

macro_rules! suite {
    ($module:ident, $imp:expr, #[$runtime:meta]) => {
        mod $module {
            use super::Impl;
            macro_rules! case {
                ($case:ident) => {
                    #[$runtime]
                    async fn $case() {
                        super::$case($imp).await;
                    }
                };
            }
            case!(each_function_gets_each_event_until_it_acks);
            case!(ready_until_closed);
            case!(an_event_published_twice_is_one_pair_per_function);
            case!(dead_letters_are_shown_and_removed_by_id);
            case!(a_waiting_consumer_wakes_on_publish);
            case!(retries_back_off_then_dead_letter_with_the_reason);
            case!(a_postponed_pair_spends_no_attempt);
            case!(dead_letters_page_newest_first);
            case!(a_restart_delivers_every_unacked_pair_again);
            case!(close_wakes_waiting_consumers);
            case!(a_held_pair_is_not_delivered_again);
            case!(a_batch_takes_up_to_max_pairs_each_once);

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_consumers_never_share_a_pair() {
                super::concurrent_consumers_never_share_a_pair($imp).await;
            }
        }
    };
}

suite!(embedded, Impl::Embedded, #[tokio::test(start_paused = true)]);
suite!(jetstream, Impl::JetStream, #[tokio::test(flavor = "multi_thread", worker_threads = 2)]);

/// Four consumers of one function take and ack 400 pairs while more are published: each pair
/// is delivered exactly once.
async fn concurrent_consumers_never_share_a_pair(imp: Impl) {
    const N: usize = 400;
    let place = Place::new(imp);
    let bus = place.open().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let (bus, seen) = (bus.clone(), seen.clone());
            tokio::spawn(async move {
                while let Ok(Ok(d)) = timeout(Duration::from_secs(3), bus.next("f")).await {
                    seen.lock().unwrap().push(d.event.object.key.clone());
                    tokio::task::yield_now().await;
                    bus.ack(&d).await.unwrap();
                }
            })
        })
        .collect();
    let publishers: Vec<_> = (0..N)
        .map(|i| {
            let bus = bus.clone();
            tokio::spawn(async move { bus.publish(event(&i.to_string()), vec!["f".into()]).await })
        })
        .collect();
    for p in publishers {
        p.await.unwrap().unwrap();
    }
    for c in consumers {
        c.await.unwrap();
    }
    let mut seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), N, "every pair once");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), N, "no pair twice");
    assert_eq!(bus.depth().await.unwrap(), 0);
    bus.close().await;
}

/// JetStream: a delivery dropped without its outcome (the server did not confirm it) is no
/// longer kept alive, and comes back within the ack wait (1 s here) instead of never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_a_dropped_delivery_comes_back_within_the_ack_wait() {
    let place = Place::new(Impl::JetStream);
    let bus = place.open().await;
    bus.publish(event("lost.jpg"), vec!["thumbs".into()])
        .await
        .unwrap();
    drop(bus.next("thumbs").await.unwrap());
    let again = timeout(Duration::from_secs(5), bus.next("thumbs"))
        .await
        .expect("delivered again within 5 s")
        .unwrap();
    assert_eq!(again.event.object.key, "lost.jpg");
    assert_eq!(again.attempts, 0, "a lost outcome spends no attempt");
    bus.ack(&again).await.unwrap();
    bus.close().await;
}

/// A JetStream that never answers ends the start after `start_wait`, with an error that names
/// the URL, rather than a node that waits forever or starts without its bus.
#[tokio::test]
async fn jetstream_that_never_answers_fails_the_start_naming_the_url() {
    let url = format!("nats://127.0.0.1:{}", common::free_port());
    let settings = JetStreamSettings {
        url: url.clone(),
        stream: "weir".into(),
        replicas: 1,
        ack_wait: Duration::from_secs(1),
        credentials: None,
        token: None,
        start_wait: Duration::from_secs(1),
    };
    let started = Instant::now();
    let opened = timeout(
        Duration::from_secs(20),
        JetStreamBus::open(settings, Arc::new(TokioClock::new())),
    )
    .await
    .expect("gave up within 20 s");
    let err = opened.expect_err("nothing listens there").to_string();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "it waited before giving up"
    );
    assert!(err.contains(&url), "names the URL: {err}");
    assert!(err.contains("did not answer"), "says why: {err}");
}
