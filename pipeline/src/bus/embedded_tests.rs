//! The bus on a real redb file: delivery per function, ack, retry, dead letters, and replay of
//! everything unacknowledged after the bus is dropped and opened again (a restart).

use super::*;
use crate::events::ObjectRef;

fn event(key: &str) -> Event {
    let object = ObjectRef {
        bucket: "uploads".into(),
        key: key.into(),
        size: Some(1),
        etag: None,
        version: None,
    };
    Event {
        id: key.into(),
        source: "test".into(),
        time: String::new(),
        name: "s3:ObjectCreated:Put".into(),
        object,
    }
}

#[tokio::test]
async fn each_function_gets_each_event_until_it_acknowledges() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::open(&dir.path().join("bus.redb")).unwrap();
    bus.publish(event("a.jpg"), vec!["thumbs".into(), "labels".into()])
        .await
        .unwrap();
    bus.publish(event("b.jpg"), vec!["thumbs".into()])
        .await
        .unwrap();
    bus.publish(event("nobody.txt"), vec![]).await.unwrap();
    assert_eq!(bus.depth().unwrap(), 3);
    let t = bus.claim("thumbs", 10).unwrap();
    assert_eq!(
        t.iter()
            .map(|d| d.event.object.key.as_str())
            .collect::<Vec<_>>(),
        ["a.jpg", "b.jpg"]
    );
    assert!(
        bus.claim("thumbs", 10).unwrap().is_empty(),
        "leased pairs are not handed out twice"
    );
    let l = bus.claim("labels", 10).unwrap();
    assert_eq!(l.len(), 1);
    bus.ack(&t[0]).await.unwrap();
    bus.ack(&t[1]).await.unwrap();
    assert_eq!(bus.depth().unwrap(), 1, "labels still owes a.jpg");
    bus.ack(&l[0]).await.unwrap();
    assert_eq!(bus.depth().unwrap(), 0);
}

#[tokio::test]
async fn retries_wait_their_turn_and_dead_letters_keep_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::open(&dir.path().join("bus.redb")).unwrap();
    bus.publish(event("x y+z.png"), vec!["thumbs".into()])
        .await
        .unwrap();
    let d = bus.claim("thumbs", 1).unwrap().remove(0);
    bus.retry(&d, now_ms() + 60_000).await.unwrap();
    assert!(bus.claim("thumbs", 1).unwrap().is_empty(), "not due yet");
    bus.retry(&d, 0).await.unwrap();
    let d = bus.claim("thumbs", 1).unwrap().remove(0);
    assert_eq!(d.attempts, 1);
    bus.dead_letter(
        &d,
        "bad_input",
        "the JPEG data stops before its end (truncated file)",
    )
    .await
    .unwrap();
    assert_eq!(bus.depth().unwrap(), 0);
    let dead = bus.dead_letters(100, None).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].key.as_str(),
            dead[0].kind.as_str(),
            dead[0].attempts
        ),
        ("x y+z.png", "bad_input", 2)
    );
    assert!(dead[0].reason.contains("truncated"));
}

#[tokio::test]
async fn a_postponed_pair_comes_back_later_without_spending_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::open(&dir.path().join("bus.redb")).unwrap();
    bus.publish(event("big.png"), vec!["thumbs".into()])
        .await
        .unwrap();
    let d = bus.claim("thumbs", 1).unwrap().remove(0);
    bus.postpone(&d, now_ms() + 60_000).await.unwrap();
    assert!(bus.claim("thumbs", 1).unwrap().is_empty(), "not due yet");
    bus.postpone(&d, 0).await.unwrap();
    let d = bus.claim("thumbs", 1).unwrap().remove(0);
    assert_eq!(d.attempts, 0);
}

#[tokio::test]
async fn a_restart_delivers_every_unacknowledged_pair_again_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus.redb");
    {
        let bus = Bus::open(&path).unwrap();
        for i in 0..50 {
            bus.publish(event(&format!("{i}.jpg")), vec!["thumbs".into()])
                .await
                .unwrap();
        }
        let claimed = bus.claim("thumbs", 10).unwrap();
        for d in &claimed[..5] {
            bus.ack(d).await.unwrap();
        }
        // Five acknowledged, five leased but never finished, forty never claimed.
        bus.close().await;
    }
    let bus = Bus::open(&path).unwrap();
    let again = bus.claim("thumbs", 100).unwrap();
    assert_eq!(again.len(), 45);
    assert_eq!(again[0].event.object.key, "5.jpg");
}

#[tokio::test]
async fn concurrent_publishes_are_grouped_and_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::open(&dir.path().join("bus.redb")).unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let bus = bus.clone();
            tokio::spawn(async move { bus.publish(event(&format!("{i}")), vec!["f".into()]).await })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().unwrap());
    }
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 200, "every publish got its own sequence number");
    assert_eq!(bus.depth().unwrap(), 200);
}
