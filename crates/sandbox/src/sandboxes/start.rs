//! Starting the sandboxes: each engine swept, given the sandbox image and its pools;
//! with `sandbox.engines`, each engine probed every 2 s and brought in when it answers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use runbox_core::Config;
use tokio_util::sync::CancellationToken;

use super::engine::{lock, EnginePart, EngineSet};
use super::images::ensure_image_on;
use super::{Sandboxes, Shared, PROBE_EVERY, PROBE_TIMEOUT};
use crate::containers::Containers;
use crate::host_firewall::{self, FirewallState};
use crate::network::ensure_sandbox_network;
use crate::placement::Placement;
use crate::pool::Pool;
use crate::ports::PortLeases;
use crate::sandbox::Launcher;
use crate::seccomp::Seccomp;
use crate::spec::uses_http;
use crate::sweep;
use crate::SandboxError;

impl Sandboxes {
    /// Removes what an earlier run of this instance left, then starts the pools and the
    /// janitor of each engine. `image` is the default sandbox image (see
    /// `image::ensure_image`), present on the first engine at least; the others get a
    /// copy. `engines` is the one local engine (an `Arc<dyn Backend>`) or
    /// `EngineSet::configured`.
    pub async fn start(
        config: Arc<Config>,
        engines: impl Into<EngineSet>,
        image: String,
        instance: String,
    ) -> Result<Self, SandboxError> {
        let set: EngineSet = engines.into();
        if set.engines.is_empty() {
            return Err(SandboxError::DockerUnavailable(
                "no engine is configured".into(),
            ));
        }
        // A profile that cannot be read fails start-up, not every sandbox after it.
        let seccomp = Seccomp::from_config(&config)?;
        if !set.configured {
            for spec in &set.engines {
                sweep::sweep_instance(spec.backend.as_ref(), &instance).await?;
            }
        }
        let firewall = if uses_http(&config) {
            for spec in &set.engines {
                match ensure_sandbox_network(spec.backend.as_ref()).await {
                    Ok(()) => {}
                    Err(err) if set.configured => {
                        tracing::warn!(engine = spec.backend.name(), error = %err, "cannot make the sandbox network");
                    }
                    Err(err) => return Err(err),
                }
            }
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
        // The http transport's ports are the local host's, whichever engine (on a unix
        // socket) publishes them.
        let ports = PortLeases::new(config.sandbox.port_range);
        let engines: Vec<Arc<EnginePart>> = set
            .engines
            .into_iter()
            .map(|spec| {
                Arc::new(EnginePart {
                    address: spec.address,
                    capacity: spec.capacity,
                    pool_size: spec.pool_size,
                    labels: spec.labels,
                    launcher: Arc::new(Launcher {
                        containers: Containers::new(spec.backend),
                        ports: ports.clone(),
                        instance: instance.clone(),
                        http_client: http_client.clone(),
                        config: config.clone(),
                        seccomp: seccomp.clone(),
                    }),
                    pools: OnceLock::new(),
                    offered: std::sync::Mutex::new(Vec::new()),
                    in_use: Arc::new(AtomicUsize::new(0)),
                    reachable: AtomicBool::new(!set.configured),
                    told_away: AtomicBool::new(false),
                    images: std::sync::Mutex::new(HashSet::new()),
                    copying: tokio::sync::Mutex::new(()),
                })
            })
            .collect();
        let sandboxes = Sandboxes {
            inner: Arc::new(Shared {
                config,
                instance,
                default_image: image,
                engines,
                configured: set.configured,
                turn: AtomicUsize::new(0),
                cancel: CancellationToken::new(),
                runs_stopped: CancellationToken::new(),
                in_use: Arc::new(AtomicUsize::new(0)),
                firewall,
            }),
        };
        if sandboxes.inner.configured {
            // Each engine that answers now is made ready now; the probe brings in the
            // others when they answer.
            let engines = sandboxes.inner.engines.clone();
            futures::future::join_all(engines.iter().map(|part| sandboxes.probe(part))).await;
            tokio::spawn(sandboxes.clone().probe_loop());
        } else {
            let part = &sandboxes.inner.engines[0];
            part.note_image(&sandboxes.inner.default_image, true);
            sandboxes.start_pools(part).await;
        }
        Ok(sandboxes)
    }

    /// Starts the engine's pools (once) and its janitor.
    async fn start_pools(&self, part: &Arc<EnginePart>) {
        let offered = crate::backend::docker_runtimes(part.engine()).await;
        *lock(&part.offered) = offered.clone();
        let config = &self.inner.config;
        let image = &self.inner.default_image;
        let standard = config.sandbox.runtime.clone();
        let mut targets = vec![(
            Placement::new(image.clone(), standard.clone()),
            part.pool_size.unwrap_or(config.sandbox.pool.size),
        )];
        for (extra_image, size) in &config.sandbox.pool.images {
            if extra_image != image {
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
        let launcher = &part.launcher;
        let tracker = launcher.containers.tracker().clone();
        let cancel = &self.inner.cancel;
        let mut pools = HashMap::new();
        for (placement, size) in targets {
            let pool = Pool::new(
                launcher.clone(),
                placement.clone(),
                size,
                config.sandbox.preload.clone(),
            );
            pools.insert(placement, pool);
        }
        if part.pools.set(pools).is_ok() {
            for pool in part.pools.get().into_iter().flat_map(HashMap::values) {
                tracker.spawn(pool.clone().refill_loop(cancel.clone()));
            }
            tracker.spawn(sweep::janitor_loop(
                launcher.containers.engine().clone(),
                launcher.instance.clone(),
                cancel.clone(),
            ));
        }
    }

    /// Asks a configured engine whether it answers; the first time it does, removes
    /// what an earlier run left on it, makes sure it has the sandbox image (a copy from
    /// another engine) and starts its pools.
    async fn probe(&self, part: &Arc<EnginePart>) {
        let answered = tokio::time::timeout(PROBE_TIMEOUT, part.engine().ping())
            .await
            .map_err(|_| "no answer within 3 s".to_string())
            .and_then(|pinged| pinged.map_err(|e| e.to_string()));
        if let Err(why) = answered {
            part.reachable.store(false, Ordering::SeqCst);
            // Said once per absence, not at every probe.
            if !part.told_away.swap(true, Ordering::SeqCst) {
                tracing::warn!(engine = part.name(), %why, "engine does not answer; runs go to the others");
            }
            return;
        }
        part.told_away.store(false, Ordering::SeqCst);
        if !part.is_ready() {
            if let Err(err) = sweep::sweep_instance(part.engine(), &self.inner.instance).await {
                tracing::warn!(engine = part.name(), error = %err, "cannot sweep the engine");
                return;
            }
            let image = &self.inner.default_image;
            if let Err(err) = ensure_image_on(part, &self.inner.engines, image).await {
                tracing::warn!(engine = part.name(), error = %err, "the engine has no sandbox image and none could be copied to it");
                return;
            }
            self.start_pools(part).await;
            tracing::info!(engine = part.name(), "engine ready");
        } else if !part.reachable.load(Ordering::SeqCst) {
            tracing::info!(engine = part.name(), "engine answers again");
        }
        part.reachable.store(true, Ordering::SeqCst);
    }

    /// Probes every configured engine every `PROBE_EVERY` until shutdown.
    async fn probe_loop(self) {
        loop {
            tokio::select! {
                () = self.inner.cancel.cancelled() => return,
                () = tokio::time::sleep(PROBE_EVERY) => {}
            }
            let engines = self.inner.engines.clone();
            futures::future::join_all(engines.iter().map(|part| self.probe(part))).await;
        }
    }
}
