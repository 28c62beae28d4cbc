//! Connecting to JetStream at start: waiting for it to answer (a cluster may still be
//! electing), and making the work and dead-letter streams or checking the ones there.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use tokio::sync::watch;

use super::{Inner, JetStreamBus, JetStreamSettings, held};
use crate::bus::{BusError, Clock};

impl JetStreamBus {
    /// Connect, waiting up to `start_wait` for JetStream to answer, and create the streams when
    /// missing or check them when present: a stream made for something else is an error, never
    /// silently reconfigured.
    pub async fn open(
        settings: JetStreamSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<JetStreamBus, BusError> {
        let deadline = tokio::time::Instant::now() + settings.start_wait;
        let mut pause = Duration::from_millis(100);
        let (js, pulls) = loop {
            match Self::connect(&settings).await {
                Ok(both) => break both,
                Err(Refused::Mismatch(e)) => return Err(BusError::Store(e)),
                Err(Refused::NotYet(e)) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::info!(error = %e, "waiting for JetStream");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(Refused::NotYet(e)) => {
                    return Err(BusError::Store(format!(
                        "JetStream at {} did not answer within {:?}: {e}",
                        settings.url, settings.start_wait
                    )));
                }
            }
        };
        let (closed, held) = (watch::channel(false).0, Arc::default());
        held::keep_alive(Arc::clone(&held), settings.ack_wait / 3, closed.subscribe());
        Ok(JetStreamBus(Arc::new(Inner {
            js,
            pulls,
            settings,
            clock,
            consumers: tokio::sync::Mutex::default(),
            held,
            closed,
        })))
    }

    /// The publishing context, and the consuming one on a second connection.
    async fn connect(
        settings: &JetStreamSettings,
    ) -> Result<(jetstream::Context, jetstream::Context), Refused> {
        use Refused::NotYet;
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None);
        if let Some(path) = &settings.credentials {
            options = options.credentials_file(path).await.map_err(|e| {
                Refused::Mismatch(format!("the credentials file {}: {e}", path.display()))
            })?;
        }
        if let Some(token) = &settings.token {
            options = options.token(token.clone());
        }
        let servers: Vec<&str> = settings.url.split(',').map(str::trim).collect();
        let client = options
            .clone()
            .connect(servers.clone())
            .await
            .map_err(|e| NotYet(e.to_string()))?;
        // The consumers' pulls and acks on a connection of their own: the server reads each
        // connection in order, so on a shared one they queued behind every publish of a burst of
        // notifications, and the consumers stood idle until it ended.
        let consuming = options
            .connect(servers)
            .await
            .map_err(|e| NotYet(e.to_string()))?;
        let js = jetstream::new(client);
        let name = &settings.stream;
        let work = stream::Config {
            name: name.clone(),
            subjects: vec![format!("{name}.fn.>")],
            retention: stream::RetentionPolicy::WorkQueue,
            num_replicas: settings.replicas,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let dead = stream::Config {
            name: format!("{name}-dead"),
            subjects: vec![format!("{name}.dead")],
            num_replicas: settings.replicas,
            ..Default::default()
        };
        for want in [work, dead] {
            let mut s = js
                .get_or_create_stream(want.clone())
                .await
                .map_err(|e| NotYet(format!("the stream {}: {e}", want.name)))?;
            let have = s
                .info()
                .await
                .map_err(|e| NotYet(format!("the stream {}: {e}", want.name)))?
                .config
                .clone();
            if let Some(what) = stream_mismatch(&have, &want) {
                // Not a connection problem: waiting will not fix it.
                return Err(Refused::Mismatch(format!(
                    "the stream {} exists with {what}; Weir needs it as it makes it (remove it, or \
                     name another stream in bus.stream)",
                    want.name
                )));
            }
        }
        Ok((js, jetstream::new(consuming)))
    }
}

/// Why a connection attempt failed: not answering yet (retried until `start_wait`), or a
/// mismatch that waiting cannot fix.
enum Refused {
    NotYet(String),
    Mismatch(String),
}

/// What differs between an existing stream and the one Weir would make, if anything it relies on.
fn stream_mismatch(have: &stream::Config, want: &stream::Config) -> Option<String> {
    if have.subjects != want.subjects {
        return Some(format!("subjects {:?}", have.subjects));
    }
    if have.retention != want.retention {
        return Some(format!("retention {:?}", have.retention));
    }
    if have.num_replicas != want.num_replicas {
        return Some(format!("{} replicas", have.num_replicas));
    }
    None
}
