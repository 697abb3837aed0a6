//! What runbox's figures are divided by: the engine's own container churn, `docker run
//! --rm` as a user would type it, and the memory an idle pooled sandbox holds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use runbox_core::Config;
use runbox_sandbox::baseline::{churn_once, container_memory, list_containers, ContainerMemory};
use runbox_sandbox::{ContainerKind, Docker, Sandboxes};
use serde::Serialize;

use super::load::{closed_loop, operation};
use super::stats::{round, Figures, Tally};

/// `requests` bare containers (create, start, wait, remove) by `concurrency` workers.
pub async fn churn(
    docker: &Docker,
    config: &Arc<Config>,
    image: &str,
    instance: &str,
    concurrency: usize,
    requests: usize,
    bar: &ProgressBar,
) -> Tally {
    let docker = docker.clone();
    let config = config.clone();
    let image: Arc<str> = image.into();
    let instance: Arc<str> = instance.into();
    let op = operation(move || {
        let (docker, config, image, instance) = (
            docker.clone(),
            config.clone(),
            image.clone(),
            instance.clone(),
        );
        async move {
            churn_once(&docker, &config, &image, &instance)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    });
    closed_loop(concurrency, requests, None, bar, op).await
}

/// `docker run --rm IMAGE python3 -c 'print(1)'`, one after the other, timed from
/// outside the CLI.
pub async fn docker_run(image: &str, requests: usize, bar: &ProgressBar) -> Figures {
    let image: Arc<str> = image.into();
    let op = operation(move || {
        let image = image.clone();
        async move {
            let output = tokio::process::Command::new("docker")
                .args(["run", "--rm", &image, "python3", "-c", "print(1)"])
                // An interrupted bench does not leave the CLI running.
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|e| format!("cannot run the docker CLI: {e}"))?;
            if output.status.success() && output.stdout == b"1\n" {
                Ok(())
            } else {
                Err(format!(
                    "docker run failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ))
            }
        }
    });
    closed_loop(1, requests, None, bar, op).await.figures(false)
}

#[derive(Clone, Debug, Serialize)]
pub struct IdleMemory {
    pub preload: Vec<String>,
    pub sandboxes: usize,
    /// Per sandbox, MiB: the mean and the largest of the idle pooled containers.
    pub working_set_mib: f64,
    pub working_set_max_mib: f64,
    pub anon_mib: f64,
    pub usage_mib: f64,
    pub error: Option<String>,
}

/// Starts a pool of `count` sandboxes preloading `preload`, waits until it is full and
/// idle, and reads each container's memory from the engine. The pool is removed after.
pub async fn idle_memory(
    docker: &Docker,
    config: &Config,
    image: &str,
    instance: &str,
    preload: &[String],
    count: usize,
    bar: &ProgressBar,
) -> IdleMemory {
    let mut config = config.clone();
    config.sandbox.pool.size = count;
    config.sandbox.pool.images.clear();
    config.sandbox.preload = preload.to_vec();
    let mut report = IdleMemory {
        preload: preload.to_vec(),
        sandboxes: 0,
        working_set_mib: 0.0,
        working_set_max_mib: 0.0,
        anon_mib: 0.0,
        usage_mib: 0.0,
        error: None,
    };
    let sandboxes = match Sandboxes::start(
        Arc::new(config),
        docker.clone(),
        image.to_string(),
        instance.to_string(),
    )
    .await
    {
        Ok(sandboxes) => sandboxes,
        Err(err) => {
            report.error = Some(err.to_string());
            return report;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while sandboxes
        .status()
        .pools
        .iter()
        .map(|p| p.ready)
        .sum::<usize>()
        < count
    {
        if Instant::now() > deadline {
            report.error = Some("the pool did not fill within 120 s".into());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let start-up work (page faults, the refill's last writes) settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut samples: Vec<ContainerMemory> = Vec::new();
    match list_containers(docker, Some(instance), Some(ContainerKind::Pool)).await {
        Ok(ids) => {
            for id in ids {
                match container_memory(docker, &id).await {
                    Ok(sample) => samples.push(sample),
                    Err(err) => report.error = Some(err.to_string()),
                }
                bar.inc(1);
            }
        }
        Err(err) => report.error = Some(err.to_string()),
    }
    sandboxes.shutdown().await;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let mean = |f: fn(&ContainerMemory) -> u64| {
        if samples.is_empty() {
            0.0
        } else {
            round(samples.iter().map(|s| mib(f(s))).sum::<f64>() / samples.len() as f64)
        }
    };
    report.sandboxes = samples.len();
    report.working_set_mib = mean(|s| s.working_set);
    report.anon_mib = mean(|s| s.anon);
    report.usage_mib = mean(|s| s.usage);
    report.working_set_max_mib = round(
        samples
            .iter()
            .map(|s| mib(s.working_set))
            .fold(0.0, f64::max),
    );
    report
}

pub fn short_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{:08x}{:04x}", nanos, std::process::id() & 0xffff)
}
