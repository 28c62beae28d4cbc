//! Pool behaviour with stand-in functions (the real thumbnail runs through the HTTP tests).

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use weir_functions::{ErrorKind, ExecCtx, FnError, Function, Input, Limits, Output};

use super::*;

/// Echoes its inputs; blocks every call until opened; fails `bad` and panics on `boom`.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
    seen: Mutex<Vec<String>>,
}

impl Gate {
    fn opened() -> Arc<Self> {
        let g = Arc::new(Gate::default());
        g.release();
        g
    }
    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Function for Gate {
    fn kind(&self) -> &'static str {
        "gate"
    }
    fn limits(&self) -> Limits {
        Limits {
            max_batch: 8,
            gpu_capable: false,
            streams_input: false,
            max_decode_bytes: 0,
        }
    }
    fn call(&self, batch: &[Input], _ctx: &ExecCtx) -> Vec<Result<Output, FnError>> {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
        drop(open);
        let texts: Vec<String> = batch
            .iter()
            .map(|i| String::from_utf8_lossy(&i.bytes).into_owned())
            .collect();
        self.seen.lock().unwrap().extend(texts.iter().cloned());
        assert!(!texts.iter().any(|t| t == "boom"), "boom");
        texts
            .into_iter()
            .map(|t| match t.as_str() {
                "bad" => Err(FnError::bad_input("bad on purpose")),
                _ => Ok(Output::new(vec![], serde_json::json!({ "echo": t }))),
            })
            .collect()
    }
}

fn pool(
    gate: &Arc<Gate>,
    workers: usize,
    max_batch: usize,
    max_queue: usize,
    timeout_ms: u64,
) -> Pool {
    let mut cfg = PoolConfig::new("t");
    cfg.workers = workers;
    cfg.max_batch = max_batch;
    cfg.max_queue = max_queue;
    cfg.max_delay = Duration::from_millis(1);
    cfg.timeout = Duration::from_millis(timeout_ms);
    cfg.max_input = 16;
    Pool::new(gate.clone(), cfg, cpu_pool(2))
}

async fn until_idle(p: &Pool) {
    for _ in 0..500 {
        if p.stats().in_flight == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("pool never drained: {:?}", p.stats());
}

fn invoke(p: &Pool, text: &str) -> tokio::task::JoinHandle<Result<Output, FnError>> {
    let adm = p.try_admit().expect("admitted");
    let input = Input::new(text.as_bytes().to_vec());
    tokio::spawn(adm.run(input))
}

#[tokio::test]
async fn a_full_pool_refuses_at_once_and_serves_what_it_admitted() {
    let gate = Arc::new(Gate::default());
    let p = pool(&gate, 1, 1, 1, 10_000);
    assert_eq!(p.stats().capacity, 2);
    let a = invoke(&p, "a");
    let b = invoke(&p, "b");
    let err = p.try_admit().err().expect("third refused");
    assert_eq!(err.kind(), ErrorKind::Overloaded);
    assert_eq!(err.kind().http_status(), 429);
    gate.release();
    assert_eq!(a.await.unwrap().unwrap().summary["echo"], "a");
    assert_eq!(b.await.unwrap().unwrap().summary["echo"], "b");
    until_idle(&p).await;
    assert!(p.try_admit().is_ok());
}

#[tokio::test]
async fn a_timed_out_invocation_holds_its_place_until_the_work_ends() {
    let gate = Arc::new(Gate::default());
    let p = pool(&gate, 1, 1, 0, 50);
    let err = invoke(&p, "slow").await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    // The work is still running on the CPU pool: admission still counts it.
    assert_eq!(p.stats().in_flight, 1);
    assert_eq!(
        p.try_admit().err().map(|e| e.kind()),
        Some(ErrorKind::Overloaded)
    );
    gate.release();
    until_idle(&p).await;
    assert_eq!(gate.seen(), vec!["slow"]);
}

#[tokio::test]
async fn inputs_that_expire_in_the_queue_never_run() {
    let gate = Arc::new(Gate::default());
    let p = pool(&gate, 1, 1, 1, 50);
    let first = invoke(&p, "first");
    let second = invoke(&p, "second");
    assert_eq!(
        second.await.unwrap().unwrap_err().kind(),
        ErrorKind::Timeout
    );
    assert_eq!(first.await.unwrap().unwrap_err().kind(), ErrorKind::Timeout);
    gate.release();
    until_idle(&p).await;
    assert_eq!(gate.seen(), vec!["first"]);
}

/// Work a queue consumer admitted waits behind a busy worker for longer than the timeout and
/// still runs: its clock starts with its batch. A run that overstays the timeout still fails.
#[tokio::test]
async fn consumer_work_times_its_run_not_its_wait() {
    let gate = Arc::new(Gate::default());
    let p = pool(&gate, 1, 1, 1, 200);
    let first = tokio::spawn(p.admit().await.unwrap().run(Input::new(b"first".to_vec())));
    let second = tokio::spawn(p.admit().await.unwrap().run(Input::new(b"second".to_vec())));
    assert_eq!(
        first.await.unwrap().unwrap_err().kind(),
        ErrorKind::Timeout,
        "ran too long"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    gate.release();
    let out = second
        .await
        .unwrap()
        .expect("waited 500 ms behind a 200 ms timeout, then ran");
    assert_eq!(out.summary["echo"], "second");
}

#[tokio::test]
async fn one_bad_input_does_not_fail_its_batch_neighbours() {
    let gate = Arc::new(Gate::default());
    let p = pool(&gate, 1, 8, 8, 10_000);
    let handles: Vec<_> = ["x", "bad", "y"].iter().map(|t| invoke(&p, t)).collect();
    gate.release();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    assert_eq!(results[0].as_ref().unwrap().summary["echo"], "x");
    assert_eq!(results[1].as_ref().unwrap_err().kind(), ErrorKind::BadInput);
    assert_eq!(results[2].as_ref().unwrap().summary["echo"], "y");
}

#[tokio::test]
async fn a_crashing_function_is_an_error_and_the_pool_keeps_serving() {
    let gate = Gate::opened();
    let p = pool(&gate, 1, 1, 4, 10_000);
    let err = invoke(&p, "boom").await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert!(err.reason().contains("crashed"), "{err}");
    assert_eq!(
        invoke(&p, "ok").await.unwrap().unwrap().summary["echo"],
        "ok"
    );
}

#[tokio::test]
async fn oversized_inputs_and_closed_pools_are_refused_with_their_kind() {
    let gate = Gate::opened();
    let p = pool(&gate, 1, 1, 4, 10_000);
    let err = invoke(&p, "far more than sixteen bytes")
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    until_idle(&p).await;
    p.close();
    assert_eq!(
        p.try_admit().err().map(|e| e.kind()),
        Some(ErrorKind::Unavailable)
    );
    assert!(gate.seen().is_empty());
}

/// Background work takes a place only while a worker would sit idle: it never queues ahead of
/// live work, and leaves the queue's places to HTTP callers.
#[tokio::test]
async fn spare_work_waits_for_an_idle_worker_and_leaves_the_queue_free() {
    let gate = Arc::new(Gate::default());
    let p = pool(&gate, 1, 1, 4, 5_000);
    let spare = p
        .admit_spare()
        .await
        .expect("an idle pool admits spare work");
    let first = tokio::spawn(spare.run(Input::new(b"job-1".to_vec())));
    // The one worker is busy: the next spare admission waits, while live callers still get in.
    let waiting = tokio::spawn({
        let p = p.clone();
        async move { p.admit_spare().await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "no spare worker yet");
    let live = invoke(&p, "live");
    assert_eq!(
        p.stats().in_flight,
        2,
        "the queue's places stay open to live work"
    );
    gate.release();
    first.await.unwrap().unwrap();
    live.await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("admitted once the worker was free")
        .unwrap()
        .unwrap();
    p.close();
    assert_eq!(
        p.admit_spare().await.err().map(|e| e.kind()),
        Some(ErrorKind::Unavailable)
    );
}
