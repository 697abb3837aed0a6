//! The background task that keeps the database from growing without bound.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::Store;

/// Revocations are kept this long past their token's expiry: JWT validation usually
/// accepts a token a little after `exp` (jsonwebtoken's default leeway is 60 s) and
/// replicas' clocks differ, and a revocation swept too early would let a revoked token
/// back in during that window.
const REVOCATION_GRACE: Duration = Duration::from_secs(10 * 60);
/// `tokio::time::interval` panics on a zero period, and a sweep every few milliseconds
/// would be a busy loop against the database.
const MIN_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How long the sweep keeps what.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Images are deleted this long after they were stored.
    pub images: Duration,
    /// Finished tasks are deleted this long after they finished.
    pub tasks: Duration,
}

/// Spawns a task that sweeps once right away and then every `every`: it deletes images
/// and finished tasks older than their `retention` and revocations of long-expired
/// tokens. Failures are logged and the next round tries again. The task ends when
/// `cancel` fires, also mid-sweep.
pub fn spawn_retention_sweep(
    store: Store,
    retention: Retention,
    every: Duration,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let every = every.max(MIN_SWEEP_INTERVAL);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        // After a slow sweep, wait a full period instead of sweeping twice in a row.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                _ = ticker.tick() => {}
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = sweep_once(&store, retention, Utc::now()) => {}
            }
        }
        tracing::debug!("retention sweep stopped");
    })
}

async fn sweep_once(store: &Store, retention: Retention, now: DateTime<Utc>) {
    // A retention too long to subtract from now means nothing is old enough yet.
    if let Some(cutoff) = earlier(now, retention.images) {
        match store.delete_images_older_than(cutoff).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, %cutoff, "retention sweep deleted images"),
            Err(error) => tracing::error!(%error, "retention sweep could not delete images"),
        }
    }
    if let Some(cutoff) = earlier(now, retention.tasks) {
        match store.delete_tasks_finished_before(cutoff).await {
            Ok(0) => {}
            Ok(deleted) => {
                tracing::info!(deleted, %cutoff, "retention sweep deleted finished tasks")
            }
            Err(error) => tracing::error!(%error, "retention sweep could not delete tasks"),
        }
    }
    if let Some(cutoff) = earlier(now, REVOCATION_GRACE) {
        match store.delete_expired_revocations(cutoff).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "retention sweep deleted expired revocations"),
            Err(error) => {
                tracing::error!(%error, "retention sweep could not delete expired revocations")
            }
        }
    }
}

fn earlier(now: DateTime<Utc>, by: Duration) -> Option<DateTime<Utc>> {
    chrono::Duration::from_std(by)
        .ok()
        .and_then(|by| now.checked_sub_signed(by))
}
