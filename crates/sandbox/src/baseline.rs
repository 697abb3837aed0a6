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

/// The body runbox sends the engine to create a one-shot stdio sandbox of `image` (what
/// `runbox image spec` prints): every limit a sandbox gets, for an audit, and what a
/// script that measures bare containers starts from rather than restating it.
pub fn stdio_sandbox_body(
    config: &Config,
    image: &str,
    instance: &str,
) -> Result<serde_json::Value, SandboxError> {
    let spec = SandboxSpec {
        config,
        image,
        instance,
        kind: ContainerKind::OnDemand,
        preload: &[],
        http: None,
    };
    serde_json::to_value(spec.container_config())
        .map_err(|err| SandboxError::Protocol(format!("cannot encode the container spec: {err}")))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_spec_is_the_engine_api_body_of_a_sandbox() {
        let config = Config::defaults();
        let body = stdio_sandbox_body(&config, "img", "audit").expect("encodes");
        assert_eq!(body["Image"], "img");
        assert_eq!(body["User"], "1000:1000");
        assert_eq!(body["Cmd"][0], "python3");
        assert_eq!(body["OpenStdin"], true);
        assert_eq!(body["StdinOnce"], true);
        assert_eq!(body["Labels"][labels::INSTANCE], "audit");
        let host = &body["HostConfig"];
        assert_eq!(host["Memory"], 512 * 1024 * 1024);
        assert_eq!(host["NetworkMode"], "none");
        assert_eq!(host["ReadonlyRootfs"], true);
        assert_eq!(host["CapDrop"][0], "ALL");
        assert_eq!(host["LogConfig"]["Type"], "none");
    }
}
