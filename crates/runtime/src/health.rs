//! How this server is doing, as `/health` shows it: whether the engine and the
//! database answer, whether the configured OCI runtime is there, the warm pools, and
//! what runs now.

use std::time::Duration;

use runbox_core::Isolation;
use runbox_sandbox::host_firewall::FirewallState;
use runbox_sandbox::{docker_runtimes, EngineStatus, PoolStatus};
use serde::Serialize;
use utoipa::ToSchema;

use crate::functions::EngineFailure;
use crate::replica::ReplicaView;
use crate::runtime::Runtime;

/// How long the engine gets to list its runtimes.
const RUNTIME_PROBE: Duration = Duration::from_secs(3);

/// `GET /health`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Health)]
pub struct HealthReport {
    /// `ok`, or `degraded` (answered with 503) when Docker or the database is not answering.
    #[schema(pattern = "^(ok|degraded)$")]
    pub status: String,
    pub docker: DockerHealth,
    pub database: DatabaseHealth,
    pub pool: PoolHealth,
    pub runtime: RuntimeHealth,
    /// Host ports leased to sandboxes (http transport).
    pub port_leases: u64,
    /// Runs executing now.
    pub running: u64,
    /// Live sessions.
    pub sessions: u64,
    /// The sandbox image.
    pub image: String,
    pub version: String,
    pub builds: BuildsHealth,
    pub host_firewall: HostFirewallHealth,
    pub isolation: IsolationHealth,
    pub cluster: ClusterHealth,
    /// The Docker engines this replica runs sandboxes on (one, the local engine, unless
    /// `sandbox.engines` lists several).
    pub engines: Vec<EngineView>,
}

/// One engine of this replica.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineView {
    pub name: String,
    /// Where it listens (`unix:///…` or `tcp://HOST:PORT`; no secrets).
    pub address: String,
    pub reachable: bool,
    #[schema(required = true)]
    pub version: Option<String>,
    #[schema(required = true)]
    pub error: Option<String>,
    /// Sandboxes it holds at once; `null`: no limit of runbox's (the one local engine).
    #[schema(required = true)]
    pub capacity: Option<u64>,
    /// Sandboxes running code on it now.
    pub in_use: u64,
    /// The OCI runtimes it has registered.
    pub runtimes: Vec<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

impl From<EngineStatus> for EngineView {
    fn from(engine: EngineStatus) -> Self {
        EngineView {
            name: engine.name,
            address: engine.address,
            reachable: engine.reachable,
            version: engine.version,
            error: engine.error,
            capacity: engine.capacity.map(|c| c as u64),
            in_use: engine.in_use as u64,
            runtimes: engine.runtimes,
            labels: engine.labels,
        }
    }
}

/// This replica and its peers, as the registry they share in the database knows them.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterHealth {
    /// This replica's id.
    pub replica: String,
    /// Where its peers reach it.
    pub address: String,
    /// Every replica registered, this one included; empty when the database does not
    /// answer.
    pub replicas: Vec<ReplicaView>,
}

/// The isolation tiers and the OCI runtimes that serve them.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IsolationHealth {
    /// The OCI runtimes the engine has registered.
    pub offered: Vec<String>,
    pub standard: TierHealth,
    /// Runs that ask for it are refused (503) while it is not available.
    pub strong: TierHealth,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierHealth {
    /// The runtime that serves the tier (`default`: the engine's own).
    pub runtime: String,
    pub available: bool,
}

/// Whether the http transport's sandboxes are kept from the host's services (by
/// runbox's netfilter rules).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostFirewallHealth {
    /// `not_needed` (the stdio transport: no network at all), `closed`, or `open`
    /// (`degraded`, unless `accepted`).
    #[schema(pattern = "^(not_needed|closed|open)$")]
    pub state: String,
    /// `sandbox.allow_host_network_access`: the operator accepts an open host.
    pub accepted: bool,
    /// Why it is open.
    #[schema(required = true)]
    pub why: Option<String>,
    /// What closes it.
    #[schema(required = true)]
    pub fix: Option<String>,
}

impl HostFirewallHealth {
    fn of(state: FirewallState, accepted: bool) -> Self {
        let (name, why, fix) = match state {
            FirewallState::NotNeeded => ("not_needed", None, None),
            FirewallState::Closed => ("closed", None, None),
            FirewallState::Open { why, fix } => ("open", Some(why), Some(fix)),
        };
        HostFirewallHealth {
            state: name.to_string(),
            accepted,
            why,
            fix,
        }
    }

    fn unaccepted_open(&self) -> bool {
        self.state == "open" && !self.accepted
    }
}

impl HealthReport {
    pub fn healthy(&self) -> bool {
        self.status == "ok"
    }
}

/// Dependency environments.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildsHealth {
    /// The Docker engine's last failure to build an environment (answered 503 to its
    /// registration or call), until a build works again; `null` when there is none.
    #[schema(required = true)]
    pub engine_failure: Option<EngineFailure>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerHealth {
    pub reachable: bool,
    #[schema(required = true)]
    pub version: Option<String>,
    #[schema(required = true)]
    pub api_version: Option<String>,
    #[schema(required = true)]
    pub error: Option<String>,
}

/// The OCI runtime of the sandboxes (`sandbox.runtime`).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeHealth {
    /// `default`, or the configured runtime (e.g. `runsc`).
    pub name: String,
    /// Whether the engine has the configured runtime (null when it did not say in time);
    /// absent for the default runtime. `false` makes the status `degraded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<bool>)]
    pub installed: Option<Option<bool>>,
    /// The runtimes the engine has; absent for the default runtime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known: Option<Vec<String>>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseHealth {
    pub ok: bool,
    /// `sqlite` or `postgres`.
    pub backend: String,
    #[schema(required = true)]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolHealth {
    /// Warm sandboxes ready, over every pool.
    pub ready: u64,
    pub target: u64,
    /// Sandboxes running code now.
    pub in_use: u64,
    /// Containers this server owns now: pooled, running, starting or being removed.
    pub live_containers: u64,
    pub pools: Vec<PoolState>,
}

/// One warm pool (one per image).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolState {
    /// The engine its sandboxes run on.
    pub engine: String,
    pub image: String,
    /// The OCI runtime of its sandboxes (empty: the engine's default).
    pub runtime: String,
    pub ready: u64,
    /// Ready sandboxes that have the configured modules (`sandbox.preload`) imported.
    pub preloaded: u64,
    pub target: u64,
    pub starting: u64,
    /// In the last few seconds a request found the pool empty, or took its last sandbox
    /// while another was in use; refills skip the preload until the pressure is over.
    pub under_pressure: bool,
    /// The last refill failure while the pool is failing.
    #[schema(required = true)]
    pub last_error: Option<String>,
}

impl From<&PoolStatus> for PoolState {
    fn from(pool: &PoolStatus) -> Self {
        PoolState {
            engine: pool.engine.clone(),
            image: pool.image.clone(),
            runtime: pool.runtime.clone(),
            ready: pool.ready as u64,
            preloaded: pool.preloaded as u64,
            target: pool.target as u64,
            starting: pool.starting as u64,
            under_pressure: pool.under_pressure,
            last_error: pool.last_error.clone(),
        }
    }
}

impl Runtime {
    /// Asks the engine and the database, and reads the pools and what runs.
    pub async fn health(&self) -> HealthReport {
        let sandboxes = &self.runner.sandboxes;
        let store = &self.runner.store;
        let (docker, database, runtime, firewall, engines) = tokio::join!(
            sandboxes.docker_status(),
            store.ping(),
            self.runtime_health(),
            sandboxes.host_firewall(),
            sandboxes.engines()
        );
        let host_firewall = HostFirewallHealth::of(
            firewall,
            self.runner.config.sandbox.allow_host_network_access,
        );
        let engine = sandboxes.status();
        let (ready, target) = engine.pools.iter().fold((0, 0), |(ready, target), pool| {
            (ready + pool.ready, target + pool.target)
        });
        // A configured runtime the engine does not have fails every sandbox.
        let runtime_ok = !docker.reachable || runtime.installed != Some(Some(false));
        let healthy =
            docker.reachable && database.is_ok() && runtime_ok && !host_firewall.unaccepted_open();
        HealthReport {
            status: if healthy { "ok" } else { "degraded" }.to_string(),
            docker: DockerHealth {
                reachable: docker.reachable,
                version: docker.version,
                api_version: docker.api_version,
                error: docker.error,
            },
            database: DatabaseHealth {
                ok: database.is_ok(),
                backend: store.backend().as_str().to_string(),
                error: database.err().map(|e| e.to_string()),
            },
            pool: PoolHealth {
                ready: ready as u64,
                target: target as u64,
                in_use: engine.in_use as u64,
                live_containers: engine.live_containers as u64,
                pools: engine.pools.iter().map(PoolState::from).collect(),
            },
            runtime,
            port_leases: engine.port_leases as u64,
            running: self.runner.admission.running() as u64,
            sessions: self.sessions.live() as u64,
            image: sandboxes.default_image().to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            builds: BuildsHealth {
                engine_failure: self.functions.engine_failure(),
            },
            host_firewall,
            isolation: self.isolation_health().await,
            cluster: self.cluster_health().await,
            engines: engines.into_iter().map(EngineView::from).collect(),
        }
    }

    async fn cluster_health(&self) -> ClusterHealth {
        let dead_after = self.runner.config.cluster.dead_after.get();
        let replicas = self
            .runner
            .store
            .replicas()
            .await
            .unwrap_or_default()
            .iter()
            .map(|record| ReplicaView::of(record, &self.replica.id, dead_after))
            .collect();
        ClusterHealth {
            replica: self.replica.id.clone(),
            address: self.replica.address.clone(),
            replicas,
        }
    }

    /// Which tier runs where, and whether the engine offers it.
    async fn isolation_health(&self) -> IsolationHealth {
        let sandboxes = &self.runner.sandboxes;
        let tier = |isolation: Isolation| async move {
            match sandboxes.runtime_for(&isolation).await {
                Ok(runtime) if runtime.is_empty() => TierHealth {
                    runtime: "default".into(),
                    available: true,
                },
                Ok(runtime) => TierHealth {
                    runtime,
                    available: true,
                },
                Err(_) => TierHealth {
                    runtime: match isolation {
                        Isolation::Strong => self.runner.config.sandbox.strong_runtime.clone(),
                        other => other.name().to_string(),
                    },
                    available: false,
                },
            }
        };
        let (standard, strong) = tokio::join!(tier(Isolation::Standard), tier(Isolation::Strong));
        IsolationHealth {
            offered: sandboxes.offered_runtimes(),
            standard,
            strong,
        }
    }

    /// `sandbox.runtime` and whether the engine knows it (asked only when one is set).
    async fn runtime_health(&self) -> RuntimeHealth {
        let configured = self.runner.config.sandbox.runtime.trim();
        if configured.is_empty() {
            return RuntimeHealth {
                name: "default".into(),
                installed: None,
                known: None,
            };
        }
        let engine = self.runner.sandboxes.engine();
        match tokio::time::timeout(RUNTIME_PROBE, docker_runtimes(engine)).await {
            Ok(known) => RuntimeHealth {
                name: configured.to_string(),
                installed: Some(Some(known.iter().any(|name| name == configured))),
                known: Some(known),
            },
            Err(_) => RuntimeHealth {
                name: configured.to_string(),
                installed: Some(None),
                known: None,
            },
        }
    }
}
