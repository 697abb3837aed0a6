//! What a replica that died leaves: its running tasks end FAILED with reason
//! `interrupted` (they ran in sandboxes that are gone with it; its queued tasks were never
//! its own and stay in the queue). On PostgreSQL every replica watches the registry and
//! the one that removes a silent replica's row fails its tasks in the same transaction,
//! so exactly one does it; on SQLite, with one replica only, the server does it for its
//! predecessors when it starts.

use std::time::Duration;

use chrono::Utc;
use runbox_store::{Backend, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::replica::Replica;

/// At start-up, once this replica is registered: what earlier runs of this server left
/// unfinished (on SQLite, every earlier server: only one runs on a file).
pub(crate) async fn recover_interrupted(
    store: &Store,
    replica: &Replica,
) -> Result<(), StoreError> {
    let mut tasks = store.fail_interrupted_tasks(&replica.instance).await?;
    match store.backend() {
        Backend::Sqlite => store.forget_replicas_except(&replica.id).await?,
        Backend::Postgres => {
            // A replica of this instance is an earlier run of this server: two live
            // servers never share an instance (each removes the other's containers).
            for earlier in store.replicas().await? {
                if earlier.instance == replica.instance && earlier.id != replica.id {
                    tasks += store
                        .take_over_replica(&earlier.id, None)
                        .await?
                        .unwrap_or(0);
                }
            }
        }
    }
    tasks += store.fail_orphaned_tasks().await?;
    if tasks > 0 {
        tracing::warn!(
            tasks,
            "tasks of an earlier run were interrupted; marked FAILED"
        );
    }
    let builds = store.fail_interrupted_builds(&replica.instance).await?;
    if builds > 0 {
        tracing::warn!(
            builds,
            "environment builds of an earlier run were interrupted"
        );
    }
    Ok(())
}

/// Every `every` until `stop`: takes over the replicas silent for longer than
/// `dead_after`. Only where replicas share the store (PostgreSQL).
pub(crate) fn spawn_takeover(
    store: Store,
    this: String,
    every: Duration,
    dead_after: Duration,
    stop: CancellationToken,
) {
    if store.backend() != Backend::Postgres {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(err) = take_over_the_dead(&store, &this, dead_after).await {
                tracing::warn!(error = %err, "cannot look for dead replicas");
            }
        }
    });
}

async fn take_over_the_dead(
    store: &Store,
    this: &str,
    dead_after: Duration,
) -> Result<(), StoreError> {
    let Ok(dead_after) = chrono::Duration::from_std(dead_after) else {
        return Ok(());
    };
    let silent_since = Utc::now() - dead_after;
    for replica in store.replicas().await? {
        if replica.id == this || replica.heartbeat_at >= silent_since {
            continue;
        }
        if let Some(tasks) = store
            .take_over_replica(&replica.id, Some(silent_since))
            .await?
        {
            tracing::warn!(
                replica = %replica.id,
                address = %replica.address,
                silent_s = (Utc::now() - replica.heartbeat_at).num_seconds(),
                tasks,
                "a replica is dead: took it out of the registry; its running tasks are FAILED (interrupted)"
            );
        }
    }
    let orphans = store.fail_orphaned_tasks().await?;
    if orphans > 0 {
        tracing::warn!(
            tasks = orphans,
            "tasks of a runner no replica knows are FAILED (interrupted)"
        );
    }
    Ok(())
}
