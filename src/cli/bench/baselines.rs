//! What runbox's figures are divided by: the engine's own container churn, `docker run
//! --rm` as a user would type it, and the memory an idle pooled sandbox holds, all
//! measured through the same engine connection as runbox itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::ProgressBar;
use runbox_core::Config;
use runbox_sandbox::{
    list_containers, stdio_sandbox_spec, Backend, ContainerKind, ContainerMemory, Containers,
    Sandboxes,
};
use serde::Serialize;

use super::load::{closed_loop, operation};
use super::stats::{round, Figures, Tally};

/// `requests` bare containers (create, start, wait, remove) by `concurrency` workers.
pub async fn churn(
    containers: &Containers,
    config: &Arc<Config>,
    image: &str,
    instance: &str,
    concurrency: usize,
    requests: usize,
    bar: &ProgressBar,
) -> Tally {
    let containers = containers.clone();
    let config = config.clone();
    let image: Arc<str> = image.into();
    let instance: Arc<str> = instance.into();
    let op = operation(move || {
        let (containers, config, image, instance) = (
            containers.clone(),
            config.clone(),
            image.clone(),
            instance.clone(),
        );
        async move {
            churn_once(&containers, &config, &image, &instance)
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:#}"))
        }
    });
    closed_loop(concurrency, requests, None, bar, op).await
}

/// One container of the spec runbox gives its stdio sandboxes (same image, limits,
/// mounts, user, no network) running `python3 -c 'print(1)'` instead of the agent:
/// what the engine alone costs per fresh sandbox.
async fn churn_once(
    containers: &Containers,
    config: &Config,
    image: &str,
    instance: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut spec = stdio_sandbox_spec(config, image, instance, ContainerKind::Baseline)?;
    spec.cmd = Some(vec!["python3".into(), "-c".into(), "print(1)".into()]);
    spec.attach_stdin = Some(false);
    spec.attach_stdout = Some(false);
    spec.attach_stderr = Some(false);
    spec.open_stdin = Some(false);
    let guard = containers.create(ContainerKind::Baseline, spec).await?;
    let engine = containers.engine();
    let ran = async {
        engine
            .start(guard.id())
            .await
            .context("starting a baseline container")?;
        let code = engine
            .wait(guard.id())
            .await
            .context("waiting for a baseline container")?;
        // print(1) exits with 0; anything else is a failure of the baseline.
        anyhow::ensure!(code == 0, "a baseline container exited with {code}");
        Ok(())
    }
    .await;
    guard.remove().await;
    ran.map(|()| started.elapsed())
}

/// `docker run --rm IMAGE python3 -c 'print(1)'` (under `runtime`, without a network,
/// when one is named), one after the other, timed from outside the CLI.
pub async fn docker_run(image: &str, runtime: &str, requests: usize, bar: &ProgressBar) -> Figures {
    let mut args: Vec<String> = ["run", "--rm"].map(String::from).to_vec();
    if !runtime.is_empty() {
        args.extend(["--runtime", runtime, "--network", "none"].map(String::from));
    }
    args.extend([image, "python3", "-c", "print(1)"].map(String::from));
    let args: Arc<[String]> = args.into();
    let op = operation(move || {
        let args = args.clone();
        async move {
            let output = tokio::process::Command::new("docker")
                .args(args.iter())
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
    engine: &Arc<dyn Backend>,
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
        engine.clone(),
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
    match list_containers(engine.as_ref(), Some(instance), Some(ContainerKind::Pool)).await {
        Ok(ids) => {
            for id in ids {
                match engine.memory(&id).await {
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
