//! Every heartbeat, on PostgreSQL: keeps this replica's sessions and leases in step with
//! the database, and forgets what dead replicas left (their leases at once; their
//! session rows once the session would have ended anyway, so that until then they
//! answer 410).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use runbox_core::Config;
use runbox_store::{Backend, Store};
use tokio_util::sync::CancellationToken;

use crate::cluster::session_directory::SessionDirectory;
use crate::error::RuntimeError;
use crate::sessions::Sessions;

/// What the upkeep looks after.
pub(crate) struct Upkeep {
    pub config: Arc<Config>,
    pub store: Store,
    pub sessions: Sessions,
    pub directory: SessionDirectory,
}

impl Upkeep {
    /// Runs every `cluster.heartbeat` until `stop` (nothing on SQLite: one replica).
    pub(crate) fn spawn(self, stop: CancellationToken) {
        if self.store.backend() != Backend::Postgres {
            return;
        }
        let every = self.config.cluster.heartbeat.get();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(every) => {}
                }
                if let Err(err) = self.once().await {
                    tracing::warn!(error = %err, "cluster upkeep failed");
                }
            }
        });
    }

    async fn once(&self) -> Result<(), RuntimeError> {
        self.directory.upkeep(&self.sessions).await?;
        let now = Utc::now();
        let alive_since = now - chrono_duration(self.config.cluster.dead_after.get());
        self.store.forget_lapsed_leases(alive_since).await?;
        self.store
            .forget_sessions_of_dead_owners(
                alive_since,
                now - chrono_duration(self.config.sessions.max_lifetime.get()),
            )
            .await?;
        Ok(())
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}
