//! Containers that a crashed run of this instance left behind are removed at start-up;
//! while running, a janitor removes this instance's containers that stopped and were not
//! removed (for instance because the engine was restarting when their guard tried).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, ContainerFilter, ContainerStatus, ListedContainer};
use crate::guard::remove_container;
use crate::labels::{self, ContainerKind};
use crate::SandboxError;

const JANITOR_EVERY: Duration = Duration::from_secs(30);
/// A container is started moments after it is created; one still `created` after this
/// was lost on the way.
const NEVER_STARTED_AFTER: Duration = Duration::from_secs(60);

fn runbox_filter(instance: Option<&str>, kind: Option<ContainerKind>) -> ContainerFilter {
    let mut labels = vec![(labels::MANAGED.to_string(), "true".to_string())];
    if let Some(instance) = instance {
        labels.push((labels::INSTANCE.to_string(), instance.to_string()));
    }
    if let Some(kind) = kind {
        labels.push((labels::KIND.to_string(), kind.as_str().to_string()));
    }
    ContainerFilter {
        labels,
        statuses: Vec::new(),
    }
}

async fn list_instance(
    engine: &dyn Backend,
    instance: &str,
    statuses: &[ContainerStatus],
) -> Result<Vec<ListedContainer>, SandboxError> {
    let filter = ContainerFilter {
        statuses: statuses.to_vec(),
        ..runbox_filter(Some(instance), None)
    };
    engine
        .list(&filter)
        .await
        .map_err(SandboxError::docker("listing sandboxes"))
}

/// Containers of runbox on this engine: of `instance` when given, of `kind` when given.
pub async fn list_containers(
    engine: &dyn Backend,
    instance: Option<&str>,
    kind: Option<ContainerKind>,
) -> Result<Vec<String>, SandboxError> {
    let containers = engine
        .list(&runbox_filter(instance, kind))
        .await
        .map_err(SandboxError::docker("listing sandboxes"))?;
    Ok(containers.into_iter().map(|c| c.id).collect())
}

/// This instance's containers that no sandbox can be using: stopped ones, and ones
/// created long ago but never started (the engine created them, but the answer that
/// named them was lost, so no guard owns them).
async fn leftovers(engine: &dyn Backend, instance: &str) -> Result<Vec<String>, SandboxError> {
    let stopped = [ContainerStatus::Exited, ContainerStatus::Dead];
    let mut ids: Vec<String> = list_instance(engine, instance, &stopped)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let now = unix_now();
    for container in list_instance(engine, instance, &[ContainerStatus::Created]).await? {
        let old = container.created.is_some_and(|created| {
            now.saturating_sub(created) >= NEVER_STARTED_AFTER.as_secs() as i64
        });
        if old {
            ids.push(container.id);
        }
    }
    Ok(ids)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Removes every container of `instance`: at start-up none of them can be in use.
/// Returns how many were removed.
pub async fn sweep_instance(engine: &dyn Backend, instance: &str) -> Result<usize, SandboxError> {
    let ids: Vec<String> = list_instance(engine, instance, &[])
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let count = ids.len();
    futures::future::join_all(ids.iter().map(|id| remove_container(engine, id))).await;
    if count > 0 {
        tracing::info!(count, instance, "removed containers left by an earlier run");
    }
    Ok(count)
}

/// One round of the janitor: removes this instance's leftovers. A live sandbox is
/// always running, so a stopped one is a leftover, and so is one that was never started.
pub(crate) async fn janitor_pass(engine: &dyn Backend, instance: &str) {
    match leftovers(engine, instance).await {
        Ok(ids) => {
            for id in ids {
                tracing::info!(container = %id, "removing a leftover sandbox");
                remove_container(engine, &id).await;
            }
        }
        Err(err) => tracing::debug!(error = %err, "janitor could not list sandboxes"),
    }
}

/// Every 30 s, a `janitor_pass`, until `cancel` fires.
pub async fn janitor_loop(
    engine: std::sync::Arc<dyn Backend>,
    instance: String,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(JANITOR_EVERY) => {}
        }
        janitor_pass(engine.as_ref(), &instance).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeBackend;

    fn of(instance: &str) -> [(&'static str, &str); 2] {
        [(labels::MANAGED, "true"), (labels::INSTANCE, instance)]
    }

    #[tokio::test]
    async fn the_start_up_sweep_removes_every_container_of_its_instance_only() {
        let engine = FakeBackend::new();
        let young = Duration::ZERO;
        let running = engine.add_leftover(&of("unit"), ContainerStatus::Running, young);
        let exited = engine.add_leftover(&of("unit"), ContainerStatus::Exited, young);
        let other = engine.add_leftover(&of("other"), ContainerStatus::Exited, young);
        let unmanaged = engine.add_leftover(
            &[(labels::INSTANCE, "unit")],
            ContainerStatus::Exited,
            young,
        );
        let removed = sweep_instance(engine.as_ref(), "unit")
            .await
            .expect("the engine lists");
        assert_eq!(removed, 2);
        assert!(!engine.exists(&running) && !engine.exists(&exited));
        assert!(engine.exists(&other), "another instance's container stays");
        assert!(engine.exists(&unmanaged), "what runbox did not label stays");
    }

    #[tokio::test]
    async fn the_janitor_removes_stopped_and_never_started_leftovers_of_its_instance() {
        let engine = FakeBackend::new();
        let young = Duration::ZERO;
        let old = NEVER_STARTED_AFTER + Duration::from_secs(5);
        let running = engine.add_leftover(&of("unit"), ContainerStatus::Running, old);
        let starting = engine.add_leftover(&of("unit"), ContainerStatus::Created, young);
        let exited = engine.add_leftover(&of("unit"), ContainerStatus::Exited, young);
        let dead = engine.add_leftover(&of("unit"), ContainerStatus::Dead, young);
        let lost = engine.add_leftover(&of("unit"), ContainerStatus::Created, old);
        let others = engine.add_leftover(&of("other"), ContainerStatus::Exited, old);

        janitor_pass(engine.as_ref(), "unit").await;

        assert!(engine.exists(&running), "a running sandbox may be in use");
        assert!(engine.exists(&starting), "a fresh one is about to start");
        for gone in [&exited, &dead, &lost] {
            assert!(!engine.exists(gone), "{gone} is a leftover");
        }
        assert!(engine.exists(&others), "another instance's container stays");
    }

    #[tokio::test]
    async fn an_unreachable_engine_fails_the_sweep() {
        let engine = FakeBackend::new();
        engine.set_faults(|f| f.unavailable = true);
        let swept = sweep_instance(engine.as_ref(), "unit").await;
        assert!(matches!(swept, Err(SandboxError::Docker { .. })));
    }
}
