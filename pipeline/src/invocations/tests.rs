use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

/// A clock the test moves by hand.
#[derive(Debug, Default)]
struct Hand(AtomicU64);

impl Clock for Hand {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn open(dir: &Path, keep: Keep) -> (Results, Arc<Hand>) {
    let clock = Arc::new(Hand::default());
    clock.0.store(1_000_000, Ordering::SeqCst);
    let r = Results::open(&dir.join("invocations.redb"), keep, clock.clone()).unwrap();
    (r, clock)
}

const ROOMY: Keep = Keep {
    keep: Duration::from_secs(3600),
    max_results: 1000,
    max_bytes: 1 << 30,
};

fn ok(body: &[u8]) -> Outcome {
    Outcome::Succeeded {
        status: 200,
        content_type: "application/json".into(),
        body: body.to_vec(),
    }
}

#[tokio::test]
async fn a_queued_invocation_ends_with_its_reply_or_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = open(dir.path(), ROOMY);
    assert_eq!(r.get("a").await.unwrap(), None);
    r.queued("a", "labels").await.unwrap();
    let (rec, body) = r.get("a").await.unwrap().unwrap();
    assert_eq!(
        (rec.status, rec.function.as_str()),
        (Status::Queued, "labels")
    );
    assert!(body.is_empty());
    r.finish("a", "labels", ok(b"{\"x\":1}")).await.unwrap();
    let (rec, body) = r.get("a").await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Succeeded);
    assert_eq!(rec.reply_status, Some(200));
    assert_eq!(body, b"{\"x\":1}");
    let failed = Outcome::Failed {
        kind: "bad_input".into(),
        reason: "not an image".into(),
    };
    r.finish("b", "labels", failed).await.unwrap();
    // The run beat the submitter's record: the record is not set back to queued.
    r.queued("b", "labels").await.unwrap();
    let (rec, _) = r.get("b").await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Failed);
    assert_eq!(rec.error, Some(("bad_input".into(), "not an image".into())));
}

#[tokio::test]
async fn results_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (r, _) = open(dir.path(), ROOMY);
        r.finish("a", "f", ok(b"[1]")).await.unwrap();
    }
    let (r, _) = open(dir.path(), ROOMY);
    assert_eq!(r.get("a").await.unwrap().unwrap().1, b"[1]");
}

#[tokio::test]
async fn the_oldest_finished_go_past_the_count_or_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let keep = Keep {
        max_results: 3,
        ..ROOMY
    };
    let (r, clock) = open(dir.path(), keep);
    for i in 0..5 {
        clock.0.fetch_add(1, Ordering::SeqCst);
        r.finish(&format!("r{i}"), "f", ok(b"{}")).await.unwrap();
    }
    for (i, kept) in [false, false, true, true, true].into_iter().enumerate() {
        assert_eq!(
            r.get(&format!("r{i}")).await.unwrap().is_some(),
            kept,
            "r{i}"
        );
    }
    // Bytes: each holds its 1,000-byte body and its record; three do not fit in 2,500.
    let dir = tempfile::tempdir().unwrap();
    let keep = Keep {
        max_bytes: 2_500,
        ..ROOMY
    };
    let (r, clock) = open(dir.path(), keep);
    for i in 0..3 {
        clock.0.fetch_add(1, Ordering::SeqCst);
        r.finish(&format!("b{i}"), "f", ok(&[b' '; 1000]))
            .await
            .unwrap();
    }
    assert!(r.get("b0").await.unwrap().is_none());
    assert!(r.get("b1").await.unwrap().is_some() && r.get("b2").await.unwrap().is_some());
    // The same invocation ending twice (run again after a restart) is counted once.
    for _ in 0..3 {
        r.finish("b2", "f", ok(&[b' '; 1000])).await.unwrap();
    }
    assert!(r.get("b1").await.unwrap().is_some());
}

#[tokio::test]
async fn a_result_past_keep_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let keep = Keep {
        keep: Duration::from_secs(60),
        ..ROOMY
    };
    let (r, clock) = open(dir.path(), keep);
    r.finish("old", "f", ok(b"1")).await.unwrap();
    r.queued("waiting", "f").await.unwrap();
    clock.0.fetch_add(61_000, Ordering::SeqCst);
    assert!(r.get("old").await.unwrap().is_none(), "expired");
    // A waiting one expires from when it came: its run may have ended on another node.
    assert!(r.get("waiting").await.unwrap().is_none());
    r.finish("new", "f", ok(b"2")).await.unwrap();
    assert!(r.get("new").await.unwrap().is_some());
    // The write removed both: a result for "waiting" now starts afresh.
    r.finish("waiting", "f", ok(b"3")).await.unwrap();
    assert_eq!(r.get("waiting").await.unwrap().unwrap().1, b"3");
}

#[tokio::test]
async fn a_reply_larger_than_max_bytes_is_a_failure_not_a_result() {
    let dir = tempfile::tempdir().unwrap();
    let keep = Keep {
        max_bytes: 100,
        ..ROOMY
    };
    let (r, _) = open(dir.path(), keep);
    r.finish("big", "f", ok(&[b' '; 500])).await.unwrap();
    let (rec, body) = r.get("big").await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Failed);
    assert_eq!(rec.error.unwrap().0, "too_large");
    assert!(body.is_empty());
}
