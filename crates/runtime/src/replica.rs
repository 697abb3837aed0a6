//! This server as one replica of a service: its place in the registry the replicas share
//! in the database (address, capacity, load, heartbeat), what it finds there about its
//! peers, and the guard that keeps two servers off one SQLite file (SQLite is for one
//! replica; several share PostgreSQL).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use runbox_core::Config;
use runbox_sandbox::Sandboxes;
use runbox_store::{ReplicaRecord, Store, StoreError};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::admission::Admission;

/// Why this server cannot be a replica here.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(
        "another runbox server already runs on the SQLite database {path}: several replicas \
         need PostgreSQL (database.url: postgres://…); a second server on SQLite needs a \
         database of its own (data_dir)"
    )]
    SqliteTaken { path: PathBuf },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Held while the server runs on a SQLite file: a second server on it is refused.
#[derive(Debug)]
pub struct SqliteClaim {
    _file: File,
}

/// Claims `database` for this server when it is a SQLite file.
pub fn claim_sqlite(database: Option<&Path>) -> Result<Option<SqliteClaim>, ReplicaError> {
    let Some(database) = database else {
        return Ok(None);
    };
    let mut name = database.as_os_str().to_owned();
    name.push(".runbox-lock");
    let path = PathBuf::from(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| ReplicaError::Lock {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(SqliteClaim { _file: file })),
        Err(TryLockError::WouldBlock) => Err(ReplicaError::SqliteTaken {
            path: database.to_path_buf(),
        }),
        Err(TryLockError::Error(source)) => Err(ReplicaError::Lock { path, source }),
    }
}

/// This replica's identity.
#[derive(Debug)]
pub struct Replica {
    pub id: String,
    pub address: String,
    pub instance: String,
    pub started_at: DateTime<Utc>,
    /// Whether its engine answered at the last heartbeat: while it does not, this
    /// replica sends its runs to peers.
    pub engine_answers: AtomicBool,
}

impl Replica {
    pub fn new(config: &Config, public_url: &str, instance: &str) -> Self {
        let advertised = config.cluster.advertise_url.trim().trim_end_matches('/');
        Replica {
            id: uuid::Uuid::new_v4().to_string(),
            address: if advertised.is_empty() {
                public_url.to_string()
            } else {
                advertised.to_string()
            },
            instance: instance.to_string(),
            started_at: Utc::now(),
            engine_answers: AtomicBool::new(true),
        }
    }
}

/// A replica as `/health` shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicaView {
    pub id: String,
    pub address: String,
    /// Runs it executes at once.
    pub capacity: i64,
    /// Runs executing at its last heartbeat.
    pub running: i64,
    /// `alive` (takes work), `unavailable` (its engine does not answer) or `dead` (no
    /// heartbeat within `cluster.dead_after`).
    #[schema(pattern = "^(alive|unavailable|dead)$")]
    pub state: String,
    /// Seconds since its last heartbeat.
    pub heartbeat_age: f64,
    /// This server.
    pub this: bool,
}

impl ReplicaView {
    pub(crate) fn of(record: &ReplicaRecord, this: &str, dead_after: Duration) -> Self {
        let age = (Utc::now() - record.heartbeat_at)
            .to_std()
            .unwrap_or_default();
        let state = if age > dead_after {
            "dead"
        } else if record.available {
            "alive"
        } else {
            "unavailable"
        };
        ReplicaView {
            id: record.id.clone(),
            address: record.address.clone(),
            capacity: record.capacity,
            running: record.running,
            state: state.to_string(),
            heartbeat_age: age.as_secs_f64(),
            this: record.id == this,
        }
    }
}

/// How often this replica asks its engine whether it answers, between heartbeats: an
/// engine that stops answering shows in the registry within this and the probe's own
/// bound (3 s), not a whole heartbeat later; one that answers again, as soon.
const ENGINE_WATCH: Duration = Duration::from_secs(1);

/// Records this replica's load and that it is alive, once, with whether its engine
/// answered at the last probe.
pub(crate) async fn beat(
    replica: &Replica,
    config: &Config,
    store: &Store,
    admission: &Admission,
) -> Result<(), StoreError> {
    let record = ReplicaRecord {
        id: replica.id.clone(),
        address: replica.address.clone(),
        instance: replica.instance.clone(),
        capacity: config.admission.max_concurrent_runs as i64,
        running: admission.running() as i64,
        available: replica.engine_answers.load(Ordering::Relaxed),
        started_at: replica.started_at,
        heartbeat_at: Utc::now(),
    };
    store.heartbeat(&record).await
}

/// Asks the engine whether it answers (bounded: a frozen engine is a no) and records
/// it; true when that changed.
pub(crate) async fn probe_engine(replica: &Replica, sandboxes: &Sandboxes) -> bool {
    let answers = sandboxes.docker_status().await.reachable;
    replica.engine_answers.swap(answers, Ordering::Relaxed) != answers
}

/// Records this replica's load every `cluster.heartbeat` until `stop`, then leaves the
/// registry; watches its engine every second meanwhile, and records at once when the
/// engine stops or starts answering (peers stop or start sending it work; while it is
/// away this replica sends its own runs to them and claims no task). When the engine
/// is back, what it could not remove meanwhile goes. The first heartbeat is the
/// caller's (`beat`, before the replica claims any work), so this one waits a period
/// first.
pub(crate) fn spawn_heartbeat(
    replica: Arc<Replica>,
    config: Arc<Config>,
    store: Store,
    sandboxes: Sandboxes,
    admission: Admission,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    // The engine is watched on its own: a slow probe (up to its 3 s bound) must never
    // hold a heartbeat back, or a replica under load would look dead.
    let changed = Arc::new(Notify::new());
    tokio::spawn(watch_engine(
        replica.clone(),
        sandboxes,
        changed.clone(),
        stop.clone(),
    ));
    tokio::spawn(async move {
        let every = config.cluster.heartbeat.get();
        let mut beats = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        beats.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = beats.tick() => {}
                () = changed.notified() => {}
            }
            if let Err(err) = beat(&replica, &config, &store, &admission).await {
                tracing::warn!(error = %err, "cannot record this replica's heartbeat");
            }
        }
        if let Err(err) = store.remove_replica(&replica.id).await {
            tracing::debug!(error = %err, "this replica could not leave the registry");
        }
    })
}

/// Asks the engine every second whether it answers until `stop`; rings `changed` when
/// that changes. When the engine is back, what it could not remove meanwhile goes.
async fn watch_engine(
    replica: Arc<Replica>,
    sandboxes: Sandboxes,
    changed: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut watch = tokio::time::interval(ENGINE_WATCH);
    watch.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = watch.tick() => {}
        }
        if !probe_engine(&replica, &sandboxes).await {
            continue;
        }
        changed.notify_one();
        if replica.engine_answers.load(Ordering::Relaxed) {
            tracing::info!("the engine answers again: this replica takes work again");
            sandboxes.sweep_leftovers().await;
        } else {
            tracing::warn!(
                "the engine does not answer: this replica is unavailable and sends its runs to its peers"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_server_on_one_sqlite_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = dir.path().join("runbox.db");
        let first = claim_sqlite(Some(&database)).expect("the first claims it");
        assert!(first.is_some());
        let second = claim_sqlite(Some(&database));
        assert!(
            matches!(&second, Err(ReplicaError::SqliteTaken { .. })),
            "{second:?}"
        );
        drop(first);
        assert!(
            claim_sqlite(Some(&database)).is_ok(),
            "free again once the first is gone"
        );
        assert!(
            claim_sqlite(None).expect("PostgreSQL").is_none(),
            "nothing to claim"
        );
    }
}
