//! Containers that a crashed run of this instance left behind are removed at start-up;
//! while running, a janitor removes this instance's containers that stopped and were not
//! removed (for instance because the engine was restarting when their guard tried).

use std::collections::HashMap;
use std::time::Duration;

use bollard::container::ListContainersOptions;
use bollard::models::ContainerSummary;
use bollard::Docker;
use tokio_util::sync::CancellationToken;

use crate::guard::remove_container;
use crate::labels;
use crate::SandboxError;

const JANITOR_EVERY: Duration = Duration::from_secs(30);
/// A container is started moments after it is created; one still `created` after this
/// was lost on the way.
const NEVER_STARTED_AFTER: Duration = Duration::from_secs(60);

fn instance_filter(instance: &str, statuses: &[&str]) -> HashMap<String, Vec<String>> {
    let mut filters = HashMap::from([(
        "label".to_string(),
        vec![
            format!("{}=true", labels::MANAGED),
            format!("{}={instance}", labels::INSTANCE),
        ],
    )]);
    if !statuses.is_empty() {
        filters.insert(
            "status".to_string(),
            statuses.iter().map(|s| s.to_string()).collect(),
        );
    }
    filters
}

async fn list(
    docker: &Docker,
    instance: &str,
    statuses: &[&str],
) -> Result<Vec<String>, SandboxError> {
    Ok(list_summaries(docker, instance, statuses)
        .await?
        .into_iter()
        .filter_map(|c| c.id)
        .collect())
}

async fn list_summaries(
    docker: &Docker,
    instance: &str,
    statuses: &[&str],
) -> Result<Vec<ContainerSummary>, SandboxError> {
    let options = ListContainersOptions {
        all: true,
        filters: instance_filter(instance, statuses),
        ..Default::default()
    };
    docker
        .list_containers(Some(options))
        .await
        .map_err(SandboxError::docker("listing sandboxes"))
}

/// This instance's containers that no sandbox can be using: stopped ones, and ones
/// created long ago but never started (the engine created them, but the answer that
/// named them was lost, so no guard owns them).
async fn leftovers(docker: &Docker, instance: &str) -> Result<Vec<String>, SandboxError> {
    let mut ids = list(docker, instance, &["exited", "dead"]).await?;
    let now = unix_now();
    for container in list_summaries(docker, instance, &["created"]).await? {
        let old = container.created.is_some_and(|created| {
            now.saturating_sub(created) >= NEVER_STARTED_AFTER.as_secs() as i64
        });
        if let (true, Some(id)) = (old, container.id) {
            ids.push(id);
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
pub async fn sweep_instance(docker: &Docker, instance: &str) -> Result<usize, SandboxError> {
    let ids = list(docker, instance, &[]).await?;
    let count = ids.len();
    futures::future::join_all(ids.iter().map(|id| remove_container(docker, id))).await;
    if count > 0 {
        tracing::info!(count, instance, "removed containers left by an earlier run");
    }
    Ok(count)
}

/// Every 30 s, removes this instance's leftovers: a live sandbox is always running, so
/// a stopped one is a leftover, and so is one that was never started.
pub async fn janitor_loop(docker: Docker, instance: String, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(JANITOR_EVERY) => {}
        }
        match leftovers(&docker, &instance).await {
            Ok(ids) => {
                for id in ids {
                    tracing::info!(container = %id, "removing a leftover sandbox");
                    remove_container(&docker, &id).await;
                }
            }
            Err(err) => tracing::debug!(error = %err, "janitor could not list sandboxes"),
        }
    }
}
