//! Scale to zero: a function whose `resources.workers.min` is zero is told, every moment, how
//! long it may go without work (`idle_after`); a kind that holds a model lets it go once it has
//! gone unused that long, and takes it again on its next call (a cold start). `process`
//! functions tend their own workers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use weir_functions::Function;

use crate::config::Config;

/// Start the sweep; it ends when `stop` turns true.
pub(super) fn spawn(config: &Config, mut stop: watch::Receiver<bool>) {
    let idle: Vec<(Arc<dyn Function>, Duration)> = config
        .functions
        .iter()
        .filter(|f| f.spec.resources.workers.min == 0)
        .map(|f| (f.function.clone(), f.spec.resources.workers.idle_after))
        .collect();
    let Some(every) = idle.iter().map(|(_, after)| *after / 4).min() else {
        return;
    };
    let every = every.clamp(Duration::from_millis(100), Duration::from_secs(5));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            for (f, after) in &idle {
                let (f, after) = (f.clone(), *after);
                // Dropping a model frees its memory, which takes a moment: off the runtime.
                let _ = tokio::task::spawn_blocking(move || f.idle(after)).await;
            }
        }
    });
}
