//! Containers that a crashed run of this instance left behind are removed at start-up;
//! while running, a janitor removes this instance's containers that stopped and were not
//! removed (for instance because the engine was restarting when their guard tried).

use std::collections::HashMap;
use std::time::Duration;

use bollard::container::ListContainersOptions;
use bollard::Docker;
use tokio_util::sync::CancellationToken;

use crate::guard::remove_container;
use crate::labels;
use crate::SandboxError;

const JANITOR_EVERY: Duration = Duration::from_secs(30);

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
    let options = ListContainersOptions {
        all: true,
        filters: instance_filter(instance, statuses),
        ..Default::default()
    };
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(SandboxError::docker("listing sandboxes"))?;
    Ok(containers.into_iter().filter_map(|c| c.id).collect())
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

/// Every 30 s, removes this instance's containers that have stopped: a live sandbox is
/// always running, so a stopped one is a leftover.
pub async fn janitor_loop(docker: Docker, instance: String, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(JANITOR_EVERY) => {}
        }
        match list(&docker, &instance, &["exited", "dead"]).await {
            Ok(ids) => {
                for id in ids {
                    tracing::info!(container = %id, "removing a stopped sandbox");
                    remove_container(&docker, &id).await;
                }
            }
            Err(err) => tracing::debug!(error = %err, "janitor could not list sandboxes"),
        }
    }
}
