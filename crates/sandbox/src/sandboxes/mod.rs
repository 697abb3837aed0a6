//! `Sandboxes`: the one handle the rest of runbox uses to run code. It owns the pools,
//! the cold path, the start-up sweep, the janitor and shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runbox_core::{Config, ErrorKind, ExecEvent, ExecOutcome, ExecRequest, Isolation};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, EngineHealth};
use crate::containers::Containers;
use crate::environment::{self, BuildFailure, BuildReport, DependencySet, EnvironmentPlan};
use crate::host_firewall::{self, FirewallState};
use crate::in_use::InUse;
use crate::labels::ContainerKind;
use crate::network::ensure_sandbox_network;
use crate::placement::Placement;
use crate::pool::{Pool, PoolStatus};
use crate::ports::PortLeases;
use crate::sandbox::{Launcher, Sandbox};
use crate::seccomp::Seccomp;
use crate::session::SessionSandbox;
use crate::spec::uses_http;
use crate::sweep;
use crate::SandboxError;

/// How often a run is tried when its sandbox turns out to have died before it began.
const DIED_BEFORE_USE_ATTEMPTS: usize = 3;

/// What a run may carry besides the request.
#[derive(Default)]
pub struct RunOptions {
    /// Run in this image instead of the default sandbox image (function environments).
    pub image: Option<String>,
    /// Streamed output goes here as it happens.
    pub events: Option<mpsc::Sender<ExecEvent>>,
    /// Fires to stop the run early (a cancelled task): the container is killed.
    pub cancel: Option<CancellationToken>,
    /// Told once the run has its sandbox and the code starts (a task turns RUNNING).
    pub started: Option<oneshot::Sender<()>>,
}

/// Figures for /health, /metrics and `runbox doctor`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SandboxesStatus {
    pub pools: Vec<PoolStatus>,
    /// Sandboxes running code right now (one-shot runs and open sessions).
    pub in_use: usize,
    pub port_leases: usize,
    /// Containers runbox owns right now (pooled, running, being removed).
    pub live_containers: usize,
}

#[derive(Clone)]
pub struct Sandboxes {
    inner: Arc<Shared>,
}

struct Shared {
    launcher: Arc<Launcher>,
    default_image: String,
    pools: HashMap<Placement, Arc<Pool>>,
    /// The OCI runtimes the engine has registered, as last asked.
    offered: std::sync::Mutex<Vec<String>>,
    cancel: CancellationToken,
    /// Fired when shutdown stops waiting for runs: each ends with `ShuttingDown`.
    runs_stopped: CancellationToken,
    in_use: Arc<AtomicUsize>,
    /// How the host was found closed (or not) to the sandboxes at start.
    firewall: FirewallState,
}

/// Beyond `sandbox.startup_timeout` (the agent's start), how long creating, attaching
/// and starting a sandbox may take before the engine counts as not answering.
const LAUNCH_MARGIN: Duration = Duration::from_secs(10);

impl Sandboxes {
    /// Removes what an earlier run of this instance left, then starts the pools and the
    /// janitor. `image` is the default sandbox image (see `image::ensure_image`).
    pub async fn start(
        config: Arc<Config>,
        engine: Arc<dyn Backend>,
        image: String,
        instance: String,
    ) -> Result<Self, SandboxError> {
        // A profile that cannot be read fails start-up, not every sandbox after it.
        let seccomp = Seccomp::from_config(&config)?;
        sweep::sweep_instance(engine.as_ref(), &instance).await?;
        let firewall = if uses_http(&config) {
            ensure_sandbox_network(engine.as_ref()).await?;
            let state = host_firewall::close(&instance).await;
            if let FirewallState::Open { why, fix } = &state {
                if !config.sandbox.allow_host_network_access {
                    return Err(SandboxError::HostOpen {
                        why: why.clone(),
                        fix: fix.clone(),
                    });
                }
                tracing::warn!(%why, "the host is open to the http transport's sandboxes (sandbox.allow_host_network_access)");
            }
            state
        } else {
            FirewallState::NotNeeded
        };
        let http_client = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| SandboxError::Protocol(format!("cannot build the HTTP client: {e}")))?;
        let containers = Containers::new(engine.clone());
        let tracker = containers.tracker().clone();
        let launcher = Arc::new(Launcher {
            containers,
            ports: PortLeases::new(config.sandbox.port_range),
            instance: instance.clone(),
            http_client,
            config: config.clone(),
            seccomp,
        });
        let cancel = CancellationToken::new();
        let offered = crate::backend::docker_runtimes(engine.as_ref()).await;
        let standard = config.sandbox.runtime.clone();
        let mut pools = HashMap::new();
        let mut targets = vec![(
            Placement::new(image.clone(), standard.clone()),
            config.sandbox.pool.size,
        )];
        for (extra_image, size) in &config.sandbox.pool.images {
            if *extra_image != image {
                targets.push((Placement::new(extra_image.clone(), standard.clone()), *size));
            }
        }
        let strong = config.sandbox.strong_runtime.trim();
        if config.sandbox.pool.strong_size > 0 && offered.iter().any(|r| r == strong) {
            targets.push((
                Placement::new(image.clone(), strong),
                config.sandbox.pool.strong_size,
            ));
        }
        for (placement, size) in targets {
            let pool = Pool::new(
                launcher.clone(),
                placement.clone(),
                size,
                config.sandbox.preload.clone(),
            );
            tracker.spawn(pool.clone().refill_loop(cancel.clone()));
            pools.insert(placement, pool);
        }
        tracker.spawn(sweep::janitor_loop(engine, instance, cancel.clone()));
        Ok(Sandboxes {
            inner: Arc::new(Shared {
                launcher,
                default_image: image,
                pools,
                offered: std::sync::Mutex::new(offered),
                cancel,
                runs_stopped: CancellationToken::new(),
                in_use: Arc::new(AtomicUsize::new(0)),
                firewall,
            }),
        })
    }

    pub fn default_image(&self) -> &str {
        &self.inner.default_image
    }

    pub fn config(&self) -> &Config {
        &self.inner.launcher.config
    }

    /// Runs `request` in a sandbox nobody else has used and removes it afterwards. The
    /// wall-clock limit is `request.timeout`; when it passes, the container is killed and
    /// removed before this returns, and the outcome is a `timeout` error.
    pub async fn run(
        &self,
        request: &ExecRequest,
        mut options: RunOptions,
    ) -> Result<ExecOutcome, SandboxError> {
        let image = options
            .image
            .clone()
            .unwrap_or_else(|| self.inner.default_image.clone());
        let placement = Placement::new(image, self.runtime_for(&request.isolation).await?);
        let mut started = options.started.take();
        let mut attempt = 1;
        loop {
            match self
                .run_once(&placement, request, &options, &mut started)
                .await
            {
                // Nothing ran: another sandbox gets the request.
                Err(SandboxError::DiedBeforeUse) if attempt < DIED_BEFORE_USE_ATTEMPTS => {
                    tracing::warn!("a sandbox died before its run began; using another");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn run_once(
        &self,
        placement: &Placement,
        request: &ExecRequest,
        options: &RunOptions,
        started: &mut Option<oneshot::Sender<()>>,
    ) -> Result<ExecOutcome, SandboxError> {
        let acquiring = Instant::now();
        let mut sandbox = self.acquire(placement).await?;
        let _in_use = InUse::enter(&self.inner.in_use);
        if let Some(started) = started.take() {
            let _ = started.send(());
        }
        let caps = self.inner.launcher.caps();
        let cancel = options.cancel.clone().unwrap_or_default();
        let started = Instant::now();
        let acquired_us = started.duration_since(acquiring).as_micros() as u64;
        let ran = tokio::select! {
            ran = sandbox.exec(request, caps, false, options.events.as_ref()) => ran,
            () = cancel.cancelled() => {
                sandbox.remove().await;
                let mut outcome = ExecOutcome::failed(ErrorKind::Killed, "the run was cancelled");
                outcome.execution_time = started.elapsed();
                return Ok(outcome);
            }
            () = self.inner.runs_stopped.cancelled() => {
                sandbox.remove().await;
                return Err(SandboxError::ShuttingDown);
            }
        };
        match ran {
            Ok(outcome) => {
                tracing::debug!(
                    container = %sandbox.id(),
                    acquired_us,
                    exec_us = started.elapsed().as_micros() as u64,
                    agent_us = outcome.execution_time.as_micros() as u64,
                    "run finished"
                );
                let timed_out = outcome
                    .error
                    .as_ref()
                    .is_some_and(|e| e.kind == ErrorKind::Timeout);
                if timed_out {
                    // Whether the agent stopped the code at the limit or runbox gave up
                    // on the agent, the sandbox is gone before the client hears of it.
                    sandbox.remove().await;
                } else if sandbox.seems_alive() {
                    sandbox.finish();
                } else {
                    sandbox.discard();
                }
                Ok(outcome)
            }
            Err(err) => {
                sandbox.discard();
                Err(err)
            }
        }
    }

    /// Builds the dependency environment `plan` on top of the default sandbox image (see
    /// `environment.rs`). Callers make sure that one set is built once at a time.
    pub async fn build_environment(
        &self,
        deps: &DependencySet,
        plan: &EnvironmentPlan,
        timeout: Duration,
    ) -> Result<BuildReport, BuildFailure> {
        if self.inner.cancel.is_cancelled() {
            return Err(BuildFailure {
                message: SandboxError::ShuttingDown.to_string(),
                log: String::new(),
                by_engine: true,
            });
        }
        environment::build(
            &self.inner.launcher,
            &self.inner.default_image,
            deps,
            plan,
            timeout,
        )
        .await
    }

    /// The environment a dependency set needs on top of the default sandbox image.
    pub fn plan_environment(&self, deps: &DependencySet) -> EnvironmentPlan {
        environment::plan_environment(&self.inner.launcher.config, &self.inner.default_image, deps)
    }

    /// Whether an image is present on the engine.
    pub async fn image_exists(&self, image: &str) -> Result<bool, SandboxError> {
        crate::image::image_exists(self.inner.launcher.engine(), image).await
    }

    /// A dedicated sandbox for a stateful session, of the isolation it asks for.
    pub async fn open_session(
        &self,
        isolation: &Isolation,
    ) -> Result<SessionSandbox, SandboxError> {
        let placement = Placement::new(
            self.inner.default_image.clone(),
            self.runtime_for(isolation).await?,
        );
        let sandbox = self.acquire(&placement).await?;
        Ok(SessionSandbox::new(
            sandbox,
            self.inner.launcher.caps(),
            InUse::enter(&self.inner.in_use),
        ))
    }

    /// A pooled sandbox when one is ready, else a new one (the cold path, which never
    /// waits behind the refill).
    async fn acquire(&self, placement: &Placement) -> Result<Sandbox, SandboxError> {
        if self.inner.cancel.is_cancelled() || self.inner.runs_stopped.is_cancelled() {
            return Err(SandboxError::ShuttingDown);
        }
        let started = Instant::now();
        let pool = self.inner.pools.get(placement);
        if let Some(pool) = pool {
            if let Some(sandbox) = pool.take().await {
                metrics::histogram!("runbox_sandbox_acquire_seconds", "source" => "pool")
                    .record(started.elapsed().as_secs_f64());
                return Ok(sandbox);
            }
        }
        // Each engine call waits up to the client's own (long) timeout: an engine that
        // stops answering must not hold the request that long. What was made so far
        // is removed by its guard; a container the engine makes after this, by the
        // janitor (created, never started).
        let bound = self.inner.launcher.config.sandbox.startup_timeout.get() + LAUNCH_MARGIN;
        let launch = self
            .inner
            .launcher
            .launch(placement, ContainerKind::OnDemand, &[]);
        let launched = match tokio::time::timeout(bound, launch).await {
            Ok(launched) => launched,
            Err(_) => Err(SandboxError::DockerUnavailable(format!(
                "the engine did not start a sandbox within {} s",
                bound.as_secs()
            ))),
        };
        match &launched {
            Ok(_) => {
                metrics::histogram!("runbox_sandbox_acquire_seconds", "source" => "cold")
                    .record(started.elapsed().as_secs_f64());
                if let Some(pool) = pool {
                    pool.docker_recovered();
                }
            }
            Err(_) => metrics::counter!("runbox_sandbox_launch_failures_total").increment(1),
        }
        launched
    }

    /// The OCI runtime a run of `isolation` gets ("" for the engine's default), or why
    /// there is none: a tier nobody offers is refused, never downgraded.
    pub async fn runtime_for(&self, isolation: &Isolation) -> Result<String, SandboxError> {
        let config = &self.inner.launcher.config.sandbox;
        let wanted = match isolation {
            Isolation::Standard => return Ok(config.runtime.trim().to_string()),
            Isolation::Strong => config.strong_runtime.trim().to_string(),
            Isolation::Runtime(name) => name.clone(),
        };
        if self.offers(&wanted).await {
            return Ok(wanted);
        }
        Err(SandboxError::IsolationUnavailable {
            asked: isolation.name().to_string(),
            runtime: wanted,
            offered: self.offered_runtimes(),
        })
    }

    /// Whether the engine has `runtime` registered, asking it again when the answer
    /// was no (an operator may have added it since).
    async fn offers(&self, runtime: &str) -> bool {
        if runtime.is_empty() {
            return false;
        }
        if self.offered_runtimes().iter().any(|r| r == runtime) {
            return true;
        }
        let fresh = crate::backend::docker_runtimes(self.engine()).await;
        let found = fresh.iter().any(|r| r == runtime);
        *self
            .inner
            .offered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        found
    }

    /// The OCI runtimes the engine has registered, as last asked.
    pub fn offered_runtimes(&self) -> Vec<String> {
        self.inner
            .offered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn status(&self) -> SandboxesStatus {
        let mut pools: Vec<PoolStatus> = self.inner.pools.values().map(|p| p.status()).collect();
        pools.sort_by(|a, b| a.image.cmp(&b.image));
        SandboxesStatus {
            pools,
            in_use: self.inner.in_use.load(Ordering::SeqCst),
            port_leases: self.inner.launcher.ports.in_use(),
            live_containers: self.inner.launcher.containers.live(),
        }
    }

    /// Whether the engine answers, and its version.
    pub async fn docker_status(&self) -> EngineHealth {
        self.inner.launcher.engine().health().await
    }

    /// Removes this instance's leftovers now, as the janitor does every 30 s (stopped
    /// sandboxes, ones created but never started): for when the engine answers again
    /// after it was away, and what could not be removed meanwhile is still there.
    pub async fn sweep_leftovers(&self) {
        sweep::janitor_pass(self.engine(), &self.inner.launcher.instance).await;
    }

    /// The engine the sandboxes run on.
    pub fn engine(&self) -> &dyn Backend {
        self.inner.launcher.engine()
    }

    /// Ends every run still going (its sandbox is removed; the caller gets
    /// `ShuttingDown`) and refuses new ones: for a shutdown whose grace has expired.
    pub fn stop_runs(&self) {
        self.inner.runs_stopped.cancel();
    }

    /// Stops the refill, removes the pools and waits for every removal runbox started.
    /// Sandboxes still running code are removed when their requests end (their guards);
    /// callers cancel those requests first.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        let pools: Vec<Arc<Pool>> = self.inner.pools.values().cloned().collect();
        futures::future::join_all(pools.iter().map(|p| p.drain())).await;
        let launcher = &self.inner.launcher;
        if !launcher
            .containers
            .wait_removals(Duration::from_secs(30))
            .await
        {
            tracing::warn!("some sandboxes were still being removed at shutdown");
        }
        // Whatever is left (a removal that failed) goes now, by label.
        if let Err(err) = sweep::sweep_instance(launcher.engine(), &launcher.instance).await {
            tracing::warn!(error = %err, "final sweep failed");
        }
        // This server's rules go with its sandboxes; another server's stay.
        if self.inner.firewall == FirewallState::Closed {
            host_firewall::reopen(&launcher.instance).await;
        }
    }

    /// Whether the host is closed to the sandboxes now (runbox's rules may have been
    /// flushed since start).
    pub async fn host_firewall(&self) -> FirewallState {
        match &self.inner.firewall {
            FirewallState::Closed
                if !host_firewall::is_closed(Some(&self.inner.launcher.instance)).await =>
            {
                FirewallState::Open {
                    why: "runbox's netfilter rules have been removed since it started".into(),
                    fix: host_firewall::manual_fix(),
                }
            }
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
