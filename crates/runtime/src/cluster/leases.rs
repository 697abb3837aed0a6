//! Limits that hold across the replicas: a function's `max_concurrency` and a subject's
//! live sessions. Each replica checks its own count first (in memory, exact); on
//! PostgreSQL it then takes a lease in the database, counted against every replica's
//! leases whose holder is alive. A lease is given back when what holds it ends; one of a
//! replica that died stops counting once its heartbeat is older than
//! `cluster.dead_after`. On SQLite there is one replica and the local count is all.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use runbox_store::{Backend, Store};

use crate::error::RuntimeError;

#[derive(Clone)]
pub struct ClusterLeases {
    store: Store,
    holder: Arc<str>,
    dead_after: Duration,
}

/// A lease held until dropped (on SQLite it holds nothing: the local count is all).
pub struct Lease {
    held: Option<(Store, String)>,
}

impl Lease {
    /// Gives the lease back now (dropping it gives it back soon after).
    pub async fn release(mut self) {
        if let Some((store, id)) = self.held.take() {
            if let Err(err) = store.release_lease(&id).await {
                tracing::warn!(lease = %id, error = %err, "cannot give a lease back");
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some((store, id)) = self.held.take() else {
            return;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(err) = store.release_lease(&id).await {
                    // It lapses with this replica's heartbeat at worst.
                    tracing::warn!(lease = %id, error = %err, "cannot give a lease back");
                }
            });
        }
    }
}

impl ClusterLeases {
    pub fn new(store: Store, holder: &str, dead_after: Duration) -> Self {
        ClusterLeases {
            store,
            holder: holder.into(),
            dead_after,
        }
    }

    /// A lease `id` on `name`, or `None` when `limit` are held across the cluster already.
    /// Always granted on SQLite (one replica: its local count is the whole count).
    pub async fn acquire(
        &self,
        id: &str,
        name: &str,
        limit: usize,
    ) -> Result<Option<Lease>, RuntimeError> {
        if self.store.backend() != Backend::Postgres {
            return Ok(Some(Lease { held: None }));
        }
        let alive_since = Utc::now()
            - chrono::Duration::from_std(self.dead_after).unwrap_or(chrono::Duration::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let taken = self
            .store
            .acquire_lease(id, name, &self.holder, limit, alive_since)
            .await?;
        Ok(taken.then(|| Lease {
            held: Some((self.store.clone(), id.to_string())),
        }))
    }

    /// The lease name of function `name`'s calls.
    pub fn function(name: &str) -> String {
        format!("function:{name}")
    }

    /// The lease name of `subject`'s live sessions.
    pub fn sessions(subject: &str) -> String {
        format!("sessions:{subject}")
    }
}
