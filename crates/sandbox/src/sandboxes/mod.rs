//! `Sandboxes`: the one handle the rest of runbox uses to run code. It owns the pools,
//! the cold path, the start-up sweep, the janitor and shutdown.

mod acquire;
mod engine;
mod images;
mod start;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runbox_core::{Config, ErrorKind, ExecEvent, ExecOutcome, ExecRequest, Isolation};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, EngineHealth};
use crate::environment::{self, BuildFailure, BuildReport, DependencySet, EnvironmentPlan};
use crate::host_firewall::{self, FirewallState};
use crate::placement::Placement;
use crate::pool::{Pool, PoolStatus};
use crate::sandboxes::engine::{lock, EnginePart};
use crate::sandboxes::images::ensure_image_on;
use crate::session::SessionSandbox;
use crate::sweep;
use crate::SandboxError;

pub use self::engine::{EngineLoad, EngineSet, EngineSpec, EngineStatus};

/// How often a run is tried when its sandbox turns out to have died before it began.
const DIED_BEFORE_USE_ATTEMPTS: usize = 3;
/// How often each engine of `sandbox.engines` is asked whether it answers.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// How long a probe waits for an engine's answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long shutdown waits for the last sweep of one engine.
const FINAL_SWEEP_TIMEOUT: Duration = Duration::from_secs(15);

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
    config: Arc<Config>,
    instance: String,
    default_image: String,
    /// At least one; the first is the one builds and `engine()` use when nothing else
    /// decides.
    engines: Vec<Arc<EnginePart>>,
    /// From `sandbox.engines`: placement weighs health and room; engines are probed.
    configured: bool,
    /// Turns round among engines with equal room.
    turn: AtomicUsize,
    cancel: CancellationToken,
    /// Fired when shutdown stops waiting for runs: each ends with `ShuttingDown`.
    runs_stopped: CancellationToken,
    in_use: Arc<AtomicUsize>,
    /// How the host was found closed (or not) to the sandboxes at start.
    firewall: FirewallState,
}

impl Sandboxes {
    pub fn default_image(&self) -> &str {
        &self.inner.default_image
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
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
        let (part, mut sandbox, _in_use) = self.acquire(placement).await?;
        if let Some(started) = started.take() {
            let _ = started.send(());
        }
        let caps = part.launcher.caps();
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
                    engine = part.name(),
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
        // Built on the engine with the most room; copied to the others when a run
        // there first needs it (and at once, in the background, where they answer).
        let part = self.build_engine();
        let report = environment::build(
            &part.launcher,
            &self.inner.default_image,
            deps,
            plan,
            timeout,
        )
        .await?;
        part.note_image(&plan.image, true);
        if self.inner.configured {
            let sandboxes = self.clone();
            let image = plan.image.clone();
            tokio::spawn(async move { sandboxes.spread_image(&image).await });
        }
        Ok(report)
    }

    /// The engine an environment is built on: a ready one with the most room.
    fn build_engine(&self) -> Arc<EnginePart> {
        let engines = &self.inner.engines;
        self.order("", &self.inner.default_image)
            .first()
            .map(|&i| engines[i].clone())
            .unwrap_or_else(|| engines[0].clone())
    }

    /// Copies `image` to every ready engine that lacks it.
    async fn spread_image(&self, image: &str) {
        let engines = &self.inner.engines;
        let copies = engines
            .iter()
            .filter(|part| part.is_ready() && part.reachable.load(Ordering::SeqCst))
            .map(|part| async move {
                tokio::select! {
                    () = self.inner.cancel.cancelled() => {}
                    copied = ensure_image_on(part, engines, image) => {
                        if let Err(err) = copied {
                            tracing::warn!(engine = part.name(), image, error = %err, "cannot copy an environment image");
                        }
                    }
                }
            });
        futures::future::join_all(copies).await;
    }

    /// The environment a dependency set needs on top of the default sandbox image.
    pub fn plan_environment(&self, deps: &DependencySet) -> EnvironmentPlan {
        environment::plan_environment(&self.inner.config, &self.inner.default_image, deps)
    }

    /// Whether an image is present on the engine (on one of the engines, which copy it
    /// among themselves when a run needs it).
    pub async fn image_exists(&self, image: &str) -> Result<bool, SandboxError> {
        if !self.inner.configured {
            return crate::image::image_exists(self.engine(), image).await;
        }
        let mut last_error = None;
        for part in self
            .inner
            .engines
            .iter()
            .filter(|p| p.reachable.load(Ordering::SeqCst))
        {
            if part.has_image(image) {
                return Ok(true);
            }
            match crate::image::image_exists(part.engine(), image).await {
                Ok(true) => {
                    part.note_image(image, true);
                    return Ok(true);
                }
                Ok(false) => {}
                Err(err) => last_error = Some(err),
            }
        }
        last_error.map_or(Ok(false), Err)
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
        let (part, sandbox, in_use) = self.acquire(&placement).await?;
        Ok(SessionSandbox::new(
            sandbox,
            part.launcher.caps(),
            in_use,
            part.name().to_string(),
        ))
    }

    /// The OCI runtime a run of `isolation` gets ("" for the engine's default), or why
    /// there is none: a tier no engine offers is refused, never downgraded.
    pub async fn runtime_for(&self, isolation: &Isolation) -> Result<String, SandboxError> {
        let config = &self.inner.config.sandbox;
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

    /// Whether an engine has `runtime` registered, asking them again when the answer
    /// was no (an operator may have added it since).
    async fn offers(&self, runtime: &str) -> bool {
        if runtime.is_empty() {
            return false;
        }
        let engines = &self.inner.engines;
        if engines.iter().any(|part| part.offers(runtime)) {
            return true;
        }
        let asked = engines
            .iter()
            .filter(|part| part.reachable.load(Ordering::SeqCst))
            .map(|part| async move {
                let fresh = crate::backend::docker_runtimes(part.engine()).await;
                let found = fresh.iter().any(|r| r == runtime);
                *lock(&part.offered) = fresh;
                found
            });
        futures::future::join_all(asked)
            .await
            .into_iter()
            .any(|found| found)
    }

    /// The OCI runtimes the engines have registered, as last asked (all engines').
    pub fn offered_runtimes(&self) -> Vec<String> {
        let mut offered: Vec<String> = self
            .inner
            .engines
            .iter()
            .flat_map(|part| part.offered())
            .collect();
        offered.sort();
        offered.dedup();
        offered
    }

    pub fn status(&self) -> SandboxesStatus {
        let engines = &self.inner.engines;
        let mut pools: Vec<PoolStatus> = engines
            .iter()
            .filter_map(|part| part.pools.get())
            .flat_map(|pools| pools.values().map(|p| p.status()))
            .collect();
        pools.sort_by(|a, b| (&a.engine, &a.image).cmp(&(&b.engine, &b.image)));
        SandboxesStatus {
            pools,
            in_use: self.inner.in_use.load(Ordering::SeqCst),
            port_leases: engines[0].launcher.ports.in_use(),
            live_containers: engines.iter().map(|p| p.launcher.containers.live()).sum(),
        }
    }

    /// Each engine's load as last known (no engine is asked): for /metrics.
    pub fn engine_loads(&self) -> Vec<EngineLoad> {
        self.inner
            .engines
            .iter()
            .map(|part| EngineLoad {
                name: part.name().to_string(),
                in_use: part.in_use(),
                capacity: part.capacity,
                reachable: part.reachable.load(Ordering::SeqCst),
            })
            .collect()
    }

    /// Each engine: where it is, whether it answers, its room and runtimes.
    pub async fn engines(&self) -> Vec<EngineStatus> {
        let asked = self.inner.engines.iter().map(|part| async move {
            let health = part.engine().health().await;
            if self.inner.configured && !health.reachable {
                part.reachable.store(false, Ordering::SeqCst);
            }
            part.status(health)
        });
        futures::future::join_all(asked).await
    }

    /// Whether the engine answers, and its version; with several engines, whether any
    /// answers (the first that does gives the version).
    pub async fn docker_status(&self) -> EngineHealth {
        if !self.inner.configured {
            return self.engine().health().await;
        }
        let healths =
            futures::future::join_all(self.inner.engines.iter().map(|part| part.engine().health()))
                .await;
        if let Some(up) = healths.iter().find(|h| h.reachable) {
            return up.clone();
        }
        let why: Vec<String> = self
            .inner
            .engines
            .iter()
            .zip(&healths)
            .map(|(part, h)| format!("{}: {}", part.name(), h.error.clone().unwrap_or_default()))
            .collect();
        EngineHealth::unreachable(why.join("; "))
    }

    /// Removes this instance's leftovers on every engine now, as the janitor does every
    /// 30 s (stopped sandboxes, ones created but never started): for when an engine
    /// answers again after it was away, and what could not be removed meanwhile is
    /// still there.
    pub async fn sweep_leftovers(&self) {
        let passes = self
            .inner
            .engines
            .iter()
            .map(|part| sweep::janitor_pass(part.engine(), &part.launcher.instance));
        futures::future::join_all(passes).await;
    }

    /// The engine the sandboxes run on (the first, with several).
    pub fn engine(&self) -> &dyn Backend {
        self.inner.engines[0].engine()
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
        let engines = &self.inner.engines;
        futures::future::join_all(engines.iter().map(|part| self.shutdown_engine(part))).await;
        // This server's rules go with its sandboxes; another server's stay.
        if self.inner.firewall == FirewallState::Closed {
            host_firewall::reopen(&self.inner.instance).await;
        }
    }

    async fn shutdown_engine(&self, part: &EnginePart) {
        let pools: Vec<Arc<Pool>> = part
            .pools
            .get()
            .map(|pools| pools.values().cloned().collect())
            .unwrap_or_default();
        futures::future::join_all(pools.iter().map(|p| p.drain())).await;
        let launcher = &part.launcher;
        if !launcher
            .containers
            .wait_removals(Duration::from_secs(30))
            .await
        {
            tracing::warn!(
                engine = part.name(),
                "some sandboxes were still being removed at shutdown"
            );
        }
        // Whatever is left (a removal that failed) goes now, by label; an engine that
        // does not answer is not waited for long.
        let sweep = sweep::sweep_instance(launcher.engine(), &launcher.instance);
        match tokio::time::timeout(FINAL_SWEEP_TIMEOUT, sweep).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                tracing::warn!(engine = part.name(), error = %err, "final sweep failed")
            }
            Err(_) => tracing::warn!(engine = part.name(), "final sweep did not finish in time"),
        }
    }

    /// Whether the host is closed to the sandboxes now (runbox's rules may have been
    /// flushed since start).
    pub async fn host_firewall(&self) -> FirewallState {
        match &self.inner.firewall {
            FirewallState::Closed
                if !host_firewall::is_closed(Some(&self.inner.instance)).await =>
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
mod engine_tests;
#[cfg(test)]
mod tests;
