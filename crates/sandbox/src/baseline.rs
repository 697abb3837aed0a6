//! What `runbox bench` compares runbox against, measured through the same engine
//! connection: the bare cost of a container (create, start, wait, remove) and the memory
//! an idle container holds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::container::{
    CreateContainerOptions, ListContainersOptions, StatsOptions, WaitContainerOptions,
};
use bollard::container::{MemoryStatsStats, StartContainerOptions};
use bollard::Docker;
use futures::StreamExt;
use runbox_core::Config;

use crate::guard::remove_container;
use crate::labels::{self, ContainerKind};
use crate::spec::SandboxSpec;
use crate::SandboxError;

/// One container of the spec runbox gives its stdio sandboxes (same image, limits,
/// mounts, user, no network) running `python3 -c 'print(1)'` instead of the agent:
/// what the engine alone costs per fresh sandbox.
pub async fn churn_once(
    docker: &Docker,
    config: &Config,
    image: &str,
    instance: &str,
) -> Result<Duration, SandboxError> {
    let started = Instant::now();
    let spec = SandboxSpec {
        config,
        image,
        instance,
        kind: ContainerKind::Baseline,
        preload: &[],
        http: None,
    };
    let mut container = spec.container_config();
    container.cmd = Some(vec!["python3".into(), "-c".into(), "print(1)".into()]);
    container.attach_stdin = Some(false);
    container.attach_stdout = Some(false);
    container.attach_stderr = Some(false);
    container.open_stdin = Some(false);
    let name = format!(
        "runbox-baseline-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: name.as_str(),
                platform: None,
            }),
            container,
        )
        .await
        .map_err(SandboxError::docker("creating a baseline container"))?;
    let ran = async {
        docker
            .start_container(&created.id, None::<StartContainerOptions<String>>)
            .await
            .map_err(SandboxError::docker("starting a baseline container"))?;
        let mut wait = docker.wait_container(&created.id, None::<WaitContainerOptions<String>>);
        match wait.next().await {
            Some(Ok(_)) | None => Ok(()),
            // A non-zero exit arrives as an error; print(1) has none, so it is one.
            Some(Err(err)) => Err(SandboxError::docker("waiting for a baseline container")(
                err,
            )),
        }
    }
    .await;
    remove_container(docker, &created.id).await;
    ran.map(|()| started.elapsed())
}

/// Memory of one idle container, from the engine's stats (cgroup v1 or v2).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ContainerMemory {
    /// What `docker stats` shows: usage less the inactive page cache.
    pub working_set: u64,
    /// Anonymous memory of the processes (rss on cgroup v1, anon on v2).
    pub anon: u64,
    /// The cgroup's whole charge, page cache included.
    pub usage: u64,
}

pub async fn container_memory(docker: &Docker, id: &str) -> Result<ContainerMemory, SandboxError> {
    let mut stats = docker.stats(
        id,
        Some(StatsOptions {
            stream: false,
            one_shot: true,
        }),
    );
    let sample = stats
        .next()
        .await
        .ok_or_else(|| SandboxError::Protocol(format!("no stats for container {id}")))?
        .map_err(SandboxError::docker("reading container stats"))?;
    let memory = sample.memory_stats;
    let usage = memory.usage.unwrap_or_default();
    let (inactive_file, anon) = match memory.stats {
        Some(MemoryStatsStats::V1(v1)) => (v1.total_inactive_file, v1.total_rss),
        Some(MemoryStatsStats::V2(v2)) => (v2.inactive_file, v2.anon),
        None => (0, 0),
    };
    Ok(ContainerMemory {
        working_set: usage.saturating_sub(inactive_file),
        anon,
        usage,
    })
}

/// Containers of runbox on this engine: of `instance` when given, of `kind` when given.
pub async fn list_containers(
    docker: &Docker,
    instance: Option<&str>,
    kind: Option<ContainerKind>,
) -> Result<Vec<String>, SandboxError> {
    let mut label_filters = vec![format!("{}=true", labels::MANAGED)];
    if let Some(instance) = instance {
        label_filters.push(format!("{}={instance}", labels::INSTANCE));
    }
    if let Some(kind) = kind {
        label_filters.push(format!("{}={}", labels::KIND, kind.as_str()));
    }
    let options = ListContainersOptions {
        all: true,
        filters: HashMap::from([("label".to_string(), label_filters)]),
        ..Default::default()
    };
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(SandboxError::docker("listing sandboxes"))?;
    Ok(containers.into_iter().filter_map(|c| c.id).collect())
}
