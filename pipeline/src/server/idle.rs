//! Scale to zero: a function whose `resources.workers.min` is zero is told, every moment, how
//! long it may go without work (`idle_after`); a kind that holds a model lets it go once it has
//! gone unused that long, and takes it again on its next call (a cold start). `process`
//! functions tend their own workers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use weir_functions::Function;
use weir_workers::Pool;

use crate::config::Config;

/// Start the sweep; it ends when `stop` turns true. A function with work in its pool (admitted,
/// not yet at its model) is passed over.
pub(super) fn spawn(
    config: &Config,
    pools: &HashMap<String, Pool>,
    mut stop: watch::Receiver<bool>,
) {
    let idle: Vec<(Arc<dyn Function>, Pool, Duration)> = config
        .functions
        .iter()
        .filter(|f| f.spec.resources.workers.min == 0)
        .filter_map(|f| {
            let pool = pools.get(&f.spec.name)?.clone();
            Some((
                f.function.clone(),
                pool,
                f.spec.resources.workers.idle_after,
            ))
        })
        .collect();
    let Some(every) = idle.iter().map(|(_, _, after)| *after / 4).min() else {
        return;
    };
    let every = every.clamp(Duration::from_millis(100), Duration::from_secs(5));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            for (f, pool, after) in &idle {
                if pool.stats().in_flight > 0 {
                    continue;
                }
                let (f, after) = (f.clone(), *after);
                // Dropping a model frees its memory, which takes a moment: off the runtime.
                let _ = tokio::task::spawn_blocking(move || f.idle(after)).await;
            }
        }
    });
}
