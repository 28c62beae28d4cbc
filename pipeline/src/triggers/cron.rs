//! The cron trigger: `- cron: { schedule: "*/5 * * * *", timezone: UTC, payload: ... }`. At
//! each slot the schedule names (5 fields, or 6 with seconds first; Vixie cron's rules, read on
//! the time zone's wall clock) it records one event for its function on the bus, carrying the
//! payload, so a firing is durable, retried and dead-lettered as an upload's event is.
//!
//! What it has covered is kept in `<data>/cron.redb` (the latest slot fired, or the start of a
//! trigger never fired), so a server that was down over several slots fires once on start, for
//! the latest of them, never once per missed slot. An event's id is the same for one slot on
//! every node (`weir:cron`, the rule, the slot), so nodes sharing a JetStream bus, which each
//! run the schedule, record it once within the stream's duplicate window.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use metrics::counter;
use redb::{Database, ReadableDatabase, TableDefinition};
use tokio::sync::watch;

use super::poller::Sink;
use crate::bus::Clock;
use crate::events::{Event, ObjectRef, stable_id};
use crate::metric_names as m;

/// (rule, schedule, time zone) → the latest slot covered, in ms since the epoch. A changed
/// schedule is a new row: it starts afresh rather than firing for the old one's slots.
const COVERED: TableDefinition<&str, u64> = TableDefinition::new("covered");

/// A parsed `schedule` in its `timezone`.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    zone: chrono_tz::Tz,
}

impl Schedule {
    /// The error says which of the two is wrong and why.
    pub fn parse(schedule: &str, timezone: &str) -> Result<Schedule, String> {
        let cron = schedule.parse::<croner::Cron>().map_err(|e| {
            format!("expected a cron schedule such as \"*/5 * * * *\" (5 fields, or 6 with seconds first), got {schedule:?}: {e}")
        })?;
        let zone = timezone.parse::<chrono_tz::Tz>().map_err(|_| {
            format!("expected an IANA time zone such as UTC or Europe/Berlin, got {timezone:?}")
        })?;
        Ok(Schedule { cron, zone })
    }

    /// The first slot strictly after `t`.
    pub fn after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.zone);
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        Some(next.with_timezone(&Utc))
    }

    /// The latest slot at or before `t`.
    pub fn latest(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.zone);
        let prev = self.cron.find_previous_occurrence(&local, true).ok()?;
        Some(prev.with_timezone(&Utc))
    }
}

/// The slot to fire now, if any: the latest one due that is newer than what was covered. Slots
/// passed while the server was down (or stalled) collapse into that one.
pub fn due(
    schedule: &Schedule,
    covered: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    schedule.latest(now).filter(|slot| *slot > covered)
}

/// One `cron` trigger of one function.
pub struct CronTask {
    pub function: String,
    /// `<function>-cron-<index>`: the event's rule, as handlers see it.
    pub rule: String,
    pub schedule: Schedule,
    /// Its key in the state: the rule with the schedule and time zone as written.
    pub state_key: String,
    pub payload: serde_json::Value,
    pub state: Arc<Database>,
    pub sink: Arc<dyn Sink>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, thiserror::Error)]
#[error("the cron state {path}: {message}")]
pub struct CronStateError {
    path: String,
    message: String,
}

/// Open (or create) `<data>/cron.redb`.
pub fn open_state(data_dir: &Path) -> Result<Arc<Database>, CronStateError> {
    let path = data_dir.join("cron.redb");
    let fail = |e: redb::Error| CronStateError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let db = Database::create(&path).map_err(|e| fail(e.into()))?;
    let tx = db.begin_write().map_err(|e| fail(e.into()))?;
    tx.open_table(COVERED).map_err(|e| fail(e.into()))?;
    tx.commit().map_err(|e| fail(e.into()))?;
    Ok(Arc::new(db))
}

impl CronTask {
    /// Fire at every slot until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let now = self.now();
        let mut covered = match self.covered() {
            Ok(Some(c)) => c,
            // Never run: nothing before now was missed.
            Ok(None) => {
                self.save(now);
                now
            }
            Err(e) => {
                tracing::error!(function = %self.function, rule = %self.rule, error = %e, "cannot read the cron state; starting from now");
                now
            }
        };
        let mut starting = true;
        loop {
            let now = self.now();
            if let Some(slot) = due(&self.schedule, covered, now) {
                // At start, or after a stall over several slots, the slot is a late one.
                let missed = starting || self.schedule.after(covered) != Some(slot);
                match self.sink.emit(vec![self.event(slot)]).await {
                    Ok(()) => {
                        let when = if missed { "missed" } else { "on_time" };
                        counter!(m::CRON_FIRED, "function" => self.function.clone(), "when" => when)
                            .increment(1);
                        tracing::info!(function = %self.function, rule = %self.rule, slot = %slot, missed, "cron fired");
                        covered = slot;
                        self.save(slot);
                    }
                    Err(e) => {
                        // Tried again in a moment, for the latest slot due then.
                        tracing::error!(function = %self.function, rule = %self.rule, error = %e, "cannot record a cron event");
                        counter!(m::CRON_FAILED, "function" => self.function.clone()).increment(1);
                        if sleep_or_stop(Duration::from_secs(1), &mut stop).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            starting = false;
            let Some(next) = self.schedule.after(covered.max(now)) else {
                tracing::warn!(function = %self.function, rule = %self.rule, "the schedule names no later time");
                let _ = stop.wait_for(|v| *v).await;
                return;
            };
            let wait = (next - self.now()).to_std().unwrap_or(Duration::ZERO);
            if sleep_or_stop(wait, &mut stop).await {
                return;
            }
        }
    }

    fn now(&self) -> DateTime<Utc> {
        let ms = i64::try_from(self.clock.now_ms()).unwrap_or(i64::MAX);
        DateTime::from_timestamp_millis(ms).unwrap_or_default()
    }

    /// The event for `slot`: its payload inline, its key `<rule>/<slot>` for output templates.
    fn event(&self, slot: DateTime<Utc>) -> Event {
        let time = slot.to_rfc3339_opts(SecondsFormat::Secs, true);
        Event {
            id: stable_id(&["weir:cron", &self.rule, &time]),
            source: "weir:cron".into(),
            name: "weir:Scheduled".into(),
            object: ObjectRef {
                bucket: String::new(),
                key: format!("{}/{}", self.rule, slot.format("%Y%m%dT%H%M%SZ")),
                size: None,
                etag: None,
                version: None,
            },
            time,
            payload: Some(self.payload.clone()),
            request: None,
        }
    }

    fn covered(&self) -> Result<Option<DateTime<Utc>>, redb::Error> {
        let tx = self.state.begin_read()?;
        let table = tx.open_table(COVERED)?;
        let ms = table.get(self.state_key.as_str())?.map(|v| v.value());
        Ok(ms.and_then(|ms| DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)))
    }

    /// A failed write is logged: at worst the next start fires the latest slot once more (the
    /// same event id, which the bus records once while it is pending).
    fn save(&self, covered: DateTime<Utc>) {
        let ms = u64::try_from(covered.timestamp_millis()).unwrap_or(0);
        let write = || -> Result<(), redb::Error> {
            let tx = self.state.begin_write()?;
            tx.open_table(COVERED)?
                .insert(self.state_key.as_str(), ms)?;
            tx.commit()?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::error!(function = %self.function, rule = %self.rule, error = %e, "cannot save the cron state");
        }
    }
}

/// True when `stop` turned true first.
async fn sleep_or_stop(wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = stop.wait_for(|v| *v) => true,
    };
    stopped || *stop.borrow()
}

#[cfg(test)]
#[path = "cron_tests.rs"]
mod tests;
