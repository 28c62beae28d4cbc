//! What only the embedded bus promises (the shared promises are in `pipeline/tests/bus.rs`):
//! concurrent writers share commits, and each publish is durable when it returns.

use super::*;
use crate::bus::TokioClock;
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
        ..Default::default()
    }
}

#[tokio::test]
async fn concurrent_publishes_are_grouped_and_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus.redb");
    let bus = EmbeddedBus::open(&path, Arc::new(TokioClock::new())).unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let bus = bus.clone();
            tokio::spawn(async move { bus.publish(event(&format!("{i}")), vec!["f".into()]).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(bus.depth().await.unwrap(), 200);
    bus.close().await;
    drop(bus);
    let again = EmbeddedBus::open(&path, Arc::new(TokioClock::new())).unwrap();
    assert_eq!(again.depth().await.unwrap(), 200, "all durable");
}
