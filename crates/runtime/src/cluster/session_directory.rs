//! The sessions of this replica as the cluster sees them: a row per session naming this
//! replica as its owner (so that the others forward its requests here), and a lease per
//! live session against its subject's cap across the cluster. Kept in step with the
//! local registry at every upkeep: rows of sessions this replica no longer remembers are
//! forgotten, leases of sessions that ended are given back, uses are recorded.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use runbox_store::{SessionRecord, Store};

use crate::cluster::leases::{ClusterLeases, Lease};
use crate::error::RuntimeError;
use crate::sessions::Sessions;

#[derive(Clone)]
pub(crate) struct SessionDirectory {
    store: Store,
    owner: Arc<str>,
    leases: ClusterLeases,
    max_per_subject: usize,
    inner: Arc<Mutex<Held>>,
}

#[derive(Default)]
struct Held {
    /// The lease of each live session of this replica, and of each being opened.
    leases: HashMap<String, Lease>,
    /// Sessions whose lease is taken and whose sandbox is being started.
    opening: HashSet<String>,
    /// When each session's use was last recorded.
    recorded_use: HashMap<String, DateTime<Utc>>,
}

impl SessionDirectory {
    pub(crate) fn new(
        store: Store,
        owner: &str,
        leases: ClusterLeases,
        max_per_subject: usize,
    ) -> Self {
        SessionDirectory {
            store,
            owner: owner.into(),
            leases,
            max_per_subject,
            inner: Arc::default(),
        }
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the lease of session `id` against `subject`'s cap across the cluster (429
    /// when the subject holds its most there already). The leases of sessions that
    /// ended here since the last upkeep go back first.
    pub(crate) async fn admit(
        &self,
        sessions: &Sessions,
        subject: &str,
        id: &str,
    ) -> Result<(), RuntimeError> {
        let live: HashSet<String> = sessions
            .all()
            .iter()
            .filter(|s| s.info().alive)
            .map(|s| s.id.clone())
            .collect();
        {
            let mut held = self.held();
            let Held {
                leases, opening, ..
            } = &mut *held;
            leases.retain(|id, _| live.contains(id) || opening.contains(id));
        }
        let lease = self
            .leases
            .acquire(id, &ClusterLeases::sessions(subject), self.max_per_subject)
            .await?
            .ok_or(RuntimeError::TooManySessions {
                max: self.max_per_subject,
                retry_after: 1,
            })?;
        let mut held = self.held();
        held.leases.insert(id.to_string(), lease);
        held.opening.insert(id.to_string());
        Ok(())
    }

    /// Session `id` could not be opened after all: its lease goes back.
    pub(crate) fn abandon(&self, id: &str) {
        let mut held = self.held();
        held.leases.remove(id);
        held.opening.remove(id);
    }

    /// Records session `id`, just opened here.
    pub(crate) async fn opened(
        &self,
        id: &str,
        subject: &str,
        at: DateTime<Utc>,
    ) -> Result<(), RuntimeError> {
        self.store
            .record_session(&SessionRecord {
                id: id.to_string(),
                owner: self.owner.to_string(),
                subject: subject.to_string(),
                created_at: at,
                last_used_at: at,
            })
            .await?;
        let mut held = self.held();
        held.opening.remove(id);
        held.recorded_use.insert(id.to_string(), at);
        Ok(())
    }

    /// Session `id` was deleted: nobody finds it any more.
    pub(crate) async fn deleted(&self, id: &str) {
        let lease = {
            let mut held = self.held();
            held.recorded_use.remove(id);
            held.leases.remove(id)
        };
        if let Some(lease) = lease {
            lease.release().await;
        }
        if let Err(err) = self.store.forget_session(id).await {
            tracing::warn!(session = %id, error = %err, "cannot forget a deleted session");
        }
    }

    /// The owner and subject of session `id`, wherever it lives.
    pub(crate) async fn find(&self, id: &str) -> Result<Option<SessionRecord>, RuntimeError> {
        Ok(self.store.session_record(id).await?)
    }

    /// The replicas that hold sessions of `subject`.
    pub(crate) async fn owners_for(&self, subject: &str) -> Result<Vec<String>, RuntimeError> {
        Ok(self.store.session_owners_for(subject).await?)
    }

    /// Brings the rows and leases in step with `sessions`, this replica's registry.
    pub(crate) async fn upkeep(&self, sessions: &Sessions) -> Result<(), RuntimeError> {
        let known = sessions.all();
        let ids: HashSet<&str> = known.iter().map(|s| s.id.as_str()).collect();
        let mut used = Vec::new();
        {
            let mut held = self.held();
            let live: HashSet<&str> = known
                .iter()
                .filter(|s| s.info().alive)
                .map(|s| s.id.as_str())
                .collect();
            let Held {
                leases, opening, ..
            } = &mut *held;
            leases.retain(|id, _| live.contains(id.as_str()) || opening.contains(id));
            held.recorded_use.retain(|id, _| ids.contains(id.as_str()));
            for session in &known {
                let last_used = session.info().last_used_at;
                if let Some(recorded) = held.recorded_use.get_mut(&session.id) {
                    if *recorded < last_used {
                        *recorded = last_used;
                        used.push(session.id.clone());
                    }
                }
            }
        }
        for id in self.store.session_ids_of(&self.owner).await? {
            if !ids.contains(id.as_str()) {
                self.store.forget_session(&id).await?;
            }
        }
        for id in used {
            self.store.touch_session(&id).await?;
        }
        Ok(())
    }

    /// Shutdown: this replica's sessions have ended; forget them and their leases.
    pub(crate) async fn leave(&self) {
        {
            let mut held = self.held();
            held.leases.clear();
            held.recorded_use.clear();
        }
        let ids = self
            .store
            .session_ids_of(&self.owner)
            .await
            .unwrap_or_default();
        for id in ids {
            if let Err(err) = self.store.forget_session(&id).await {
                tracing::debug!(session = %id, error = %err, "cannot forget a session");
            }
        }
        if let Err(err) = self.store.release_leases_of(&self.owner).await {
            tracing::debug!(error = %err, "cannot give this replica's leases back");
        }
    }
}
