//! The one door every trigger's events go through: the webhook, the built-in S3 endpoint and the
//! bucket pollers all call `Ingress`, which routes and records on the bus.

use std::sync::Arc;

use metrics::counter;

use crate::bus::Bus;
use crate::config::S3Trigger;
use crate::metric_names as m;
use crate::router;

/// Where every trigger hands its events: routed to the functions that want them (or given to
/// one function, for a trigger of its own) and recorded on the bus, durable on return.
pub struct Ingress {
    pub bus: Arc<dyn Bus>,
    /// Each function's S3 triggers.
    pub routes: Vec<(String, Vec<S3Trigger>)>,
}

impl Ingress {
    /// Route an accepted event and record it on the bus for every function that wants it;
    /// durable when this returns. Returns how many functions it was routed to.
    pub async fn record(&self, event: crate::events::Event) -> Result<usize, crate::bus::BusError> {
        let functions: Vec<String> = self
            .routes
            .iter()
            .filter(|(_, triggers)| triggers.iter().any(|t| router::matches(t, &event)))
            .map(|(f, _)| f.clone())
            .collect();
        self.record_to(event, functions).await
    }

    /// Record an event for the given functions (a trigger that belongs to one function, such as
    /// a bucket poller); durable when this returns.
    pub async fn record_to(
        &self,
        event: crate::events::Event,
        functions: Vec<String>,
    ) -> Result<usize, crate::bus::BusError> {
        counter!(m::EVENTS_ACCEPTED).increment(1);
        self.bus.publish(event, functions.clone()).await?;
        for f in &functions {
            counter!(m::EVENTS_ROUTED, "function" => f.clone()).increment(1);
        }
        Ok(functions.len())
    }
}
