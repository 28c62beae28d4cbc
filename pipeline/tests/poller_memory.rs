//! Polling a 100,000-object listing keeps memory bounded: the poller holds one page and its
//! state's matching range, never the listing. Heap use is measured by a counting allocator in
//! this test binary. The listing is generated page by page behind the `ObjectStore` seam (writing
//! 100,000 real objects takes minutes on this machine); the state is the real redb file.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use weir_functions::Source;
use weir_pipeline::config::PollTrigger;
use weir_pipeline::events::Event;
use weir_pipeline::store::{
    Fetched, Head, ObjectInfo, ObjectStore, Page, PageRequest, PutOptions, StoreError,
};
use weir_pipeline::triggers::poll_state::PollState;
use weir_pipeline::triggers::poller::{Poller, Sink};

struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const OBJECTS: u64 = 100_000;

/// A bucket of `OBJECTS` keys of ~70 bytes, listed as S3 lists them; `generation` changes the
/// etags of every tenth object.
#[derive(Debug)]
struct Generated {
    generation: AtomicU64,
}

fn key(i: u64) -> String {
    format!(
        "archive/2026/camera-{:02}/frames/{i:08}-a-long-descriptive-name.jpg",
        i % 7
    )
}

#[async_trait::async_trait]
impl ObjectStore for Generated {
    async fn ensure_bucket(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn get(&self, _: &str, _: &str, _: u64) -> Result<Fetched<Bytes>, StoreError> {
        unreachable!("the poller only lists")
    }
    async fn open(&self, _: &str, _: &str, _: u64) -> Result<Fetched<Arc<dyn Source>>, StoreError> {
        unreachable!("the poller only lists")
    }
    async fn put(
        &self,
        _: &str,
        _: &str,
        _: Bytes,
        _: &PutOptions,
    ) -> Result<ObjectInfo, StoreError> {
        unreachable!("the poller only lists")
    }
    async fn head(&self, _: &str, _: &str) -> Result<Head, StoreError> {
        unreachable!("the poller only lists")
    }
    async fn delete(&self, _: &str, _: &str) -> Result<(), StoreError> {
        unreachable!("the poller only lists")
    }
    async fn list(&self, _: &str, request: &PageRequest) -> Result<Page, StoreError> {
        let g = self.generation.load(Ordering::Relaxed);
        let mut at = match &request.start_after {
            None => Some(0),
            Some(k) => after(index(k)),
        };
        let mut objects = Vec::with_capacity(request.max);
        while let Some(i) = at {
            if objects.len() == request.max {
                break;
            }
            let etag = if i % 10 == 0 {
                format!("{i:x}-{g}")
            } else {
                format!("{i:x}")
            };
            objects.push(ObjectInfo {
                key: key(i),
                size: 1000,
                etag,
                modified_ms: 1,
            });
            at = after(i);
        }
        let next = at.and(objects.last().map(|o| o.key.clone()));
        Ok(Page { objects, next })
    }
}

/// The index a generated key was made from.
fn index(key: &str) -> u64 {
    let tail = key.split("/frames/").nth(1).unwrap();
    tail[..8].parse().unwrap()
}

/// The next index in key order: keys sort by camera folder (`i % 7`), then by index.
fn after(i: u64) -> Option<u64> {
    if i + 7 < OBJECTS {
        Some(i + 7)
    } else {
        let camera = i % 7 + 1;
        (camera < 7).then_some(camera)
    }
}

/// Counts what would go on the bus.
#[derive(Default)]
struct Counter(AtomicU64);

#[async_trait::async_trait]
impl Sink for Counter {
    async fn emit(&self, events: Vec<Event>) -> Result<(), String> {
        self.0.fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_100k_object_listing_is_polled_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Generated {
        generation: AtomicU64::new(0),
    });
    let sink = Arc::new(Counter::default());
    let poller = Poller {
        function: "frames".into(),
        trigger: PollTrigger {
            bucket: "archive".into(),
            prefix: None,
            suffix: vec![".jpg".into()],
            interval: std::time::Duration::from_secs(30),
        },
        store: store.clone(),
        state: PollState::open(&dir.path().join("pollers.redb")).unwrap(),
        sink: sink.clone(),
        page: 1000,
    };
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let first = poller.round(&stopped).await.unwrap();
    assert_eq!(
        (first.listed, first.emitted),
        (OBJECTS, OBJECTS),
        "all new at first"
    );
    store.generation.store(1, Ordering::Relaxed);
    let second = poller.round(&stopped).await.unwrap();
    assert_eq!(second.emitted, OBJECTS / 10, "only the changed tenth");
    let third = poller.round(&stopped).await.unwrap();
    assert_eq!(third.emitted, 0);
    assert_eq!(sink.0.load(Ordering::Relaxed), OBJECTS + OBJECTS / 10);
    let peak = PEAK.load(Ordering::Relaxed) - base;
    // The listing held whole would be ~100,000 × (70-byte key + etag + bookkeeping) > 15 MB.
    let whole: usize = (0..OBJECTS).map(|i| key(i).len() + 64).sum();
    eprintln!("peak heap growth {peak} bytes; the whole listing would hold {whole}");
    assert!(peak < 4 << 20, "peak heap growth {peak} bytes");
    assert!(peak < whole / 3, "peak {peak} vs whole listing {whole}");
}
