//! Where a sandbox comes from: with one engine, its pool or a new container; with
//! `sandbox.engines`, the best engine first (see `engine::order`) and the next ones
//! when it cannot give one.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::engine::{self, Candidate, EnginePart};
use super::images::ensure_image_on;
use super::Sandboxes;
use crate::in_use::InUse;
use crate::labels::ContainerKind;
use crate::placement::Placement;
use crate::sandbox::Sandbox;
use crate::SandboxError;

/// Beyond `sandbox.startup_timeout` (the agent's start), how long creating, attaching
/// and starting a sandbox may take before the engine counts as not answering.
const LAUNCH_MARGIN: Duration = Duration::from_secs(10);

impl Sandboxes {
    /// A sandbox for `placement` on the engine placement picks, counted in use (in all
    /// and on its engine) while the returned guard lives. With several engines, a
    /// launch that fails is tried on the next engine: no user code has run yet.
    pub(super) async fn acquire(
        &self,
        placement: &Placement,
    ) -> Result<(Arc<EnginePart>, Sandbox, InUse), SandboxError> {
        if self.inner.cancel.is_cancelled() || self.inner.runs_stopped.is_cancelled() {
            return Err(SandboxError::ShuttingDown);
        }
        let engines = &self.inner.engines;
        if !self.inner.configured {
            let part = &engines[0];
            let sandbox = self.acquire_on(part, placement).await?;
            let in_use = InUse::enter(&self.inner.in_use).and(&part.in_use);
            return Ok((part.clone(), sandbox, in_use));
        }
        let order = self.order(&placement.runtime, &placement.image);
        if order.is_empty() {
            return Err(SandboxError::DockerUnavailable(
                self.why_no_engine(&placement.runtime),
            ));
        }
        let mut failure = None;
        for index in order {
            let part = &engines[index];
            let capacity = part.capacity.unwrap_or(usize::MAX);
            let Some(room) = InUse::try_enter(&part.in_use, capacity) else {
                continue;
            };
            let acquired = match ensure_image_on(part, engines, &placement.image).await {
                Ok(()) => self.acquire_on(part, placement).await,
                Err(err) => Err(err),
            };
            match acquired {
                Ok(sandbox) => return Ok((part.clone(), sandbox, room.and(&self.inner.in_use))),
                Err(SandboxError::ShuttingDown) => return Err(SandboxError::ShuttingDown),
                Err(err) => {
                    tracing::warn!(engine = part.name(), error = %err, "no sandbox from this engine; trying another");
                    if matches!(err, SandboxError::ImageMissing(_)) {
                        part.note_image(&placement.image, false);
                    }
                    if matches!(err, SandboxError::DockerUnavailable(_)) {
                        part.reachable.store(false, Ordering::SeqCst);
                    }
                    failure = Some(err);
                }
            }
        }
        Err(failure.unwrap_or_else(|| {
            SandboxError::DockerUnavailable(self.why_no_engine(&placement.runtime))
        }))
    }

    /// The configured engines to try for a run of `image` under `runtime`, best first.
    pub(super) fn order(&self, runtime: &str, image: &str) -> Vec<usize> {
        let candidates: Vec<Candidate> = self
            .inner
            .engines
            .iter()
            .map(|part| Candidate {
                usable: part.is_ready() && part.reachable.load(Ordering::SeqCst),
                offers: part.offers(runtime),
                has_image: part.has_image(image),
                in_use: part.in_use(),
                capacity: part.capacity.unwrap_or(usize::MAX),
            })
            .collect();
        engine::order(&candidates, self.inner.turn.fetch_add(1, Ordering::Relaxed))
    }

    fn why_no_engine(&self, runtime: &str) -> String {
        let states: Vec<String> = self
            .inner
            .engines
            .iter()
            .map(|part| {
                let state = if !part.reachable.load(Ordering::SeqCst) || !part.is_ready() {
                    "not answering".to_string()
                } else if !part.offers(runtime) {
                    format!("no runtime {runtime}")
                } else {
                    format!(
                        "full ({} of {})",
                        part.in_use(),
                        part.capacity.unwrap_or(usize::MAX)
                    )
                };
                format!("{}: {state}", part.name())
            })
            .collect();
        format!("no engine can take a sandbox now ({})", states.join("; "))
    }

    /// A pooled sandbox of `part` when one is ready, else a new one (the cold path,
    /// which never waits behind the refill).
    async fn acquire_on(
        &self,
        part: &EnginePart,
        placement: &Placement,
    ) -> Result<Sandbox, SandboxError> {
        let started = Instant::now();
        let pool = part.pools.get().and_then(|pools| pools.get(placement));
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
        let bound = part.launcher.config.sandbox.startup_timeout.get() + LAUNCH_MARGIN;
        let launch = part
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
            Err(_) => metrics::counter!("runbox_sandbox_launch_failures_total", "engine" => part.name().to_string()).increment(1),
        }
        launched
    }
}
