//! `runbox bench --cluster`: replicas of this binary on one PostgreSQL schema, and what
//! being several costs and gives: the warm latency a forwarding hop adds, how a burst
//! sent to one replica spreads over all, and what fails while one is SIGKILLed.

mod burst;
mod calls;
mod hop;
mod kill;
mod replicas;

use std::time::Duration;

use clap::Args;
use runbox_core::Config;
use runbox_sandbox::connect_docker;
use serde::Serialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use self::replicas::{Cluster, Plan, TearDown};
use crate::cli::bench::baselines::short_id;
use crate::cli::bench::record::{build_profile, load_average, source_state, write};
use crate::cli::image::ensure_sandbox_image;

/// The options of `runbox bench` that the cluster mode reads too.
pub struct Shared {
    pub server: bool,
    pub transport: Option<runbox_core::config::Transport>,
    pub runtime: Vec<String>,
    pub pool_size: Option<usize>,
    pub out: std::path::PathBuf,
}

#[derive(Args)]
pub struct ClusterArgs {
    /// Measure replicas instead of one server: starts `--replicas` processes of this
    /// binary on one fresh schema of `--postgres-url` and measures a forwarding hop, a
    /// burst's spread and a replica killed under load.
    #[arg(long)]
    cluster: bool,
    /// PostgreSQL server of the replicas (--cluster): they share a new schema of it,
    /// dropped at the end.
    #[arg(long, env = "RUNBOX_BENCH_POSTGRES_URL", hide_env_values = true)]
    postgres_url: Option<String>,
    /// Replicas to start (--cluster).
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Run slots of each replica, `admission.max_concurrent_runs` (--cluster).
    #[arg(long, default_value_t = 2)]
    replica_slots: usize,
    /// Measured pairs of a warm run through a hop and one at the peer directly
    /// (--cluster). Each waits for a warm sandbox: the pools' refill sets the pace.
    #[arg(long, default_value_t = 50)]
    hop_pairs: usize,
    /// Pairs before those, not counted (--cluster).
    #[arg(long, default_value_t = 5)]
    hop_warmup: usize,
    /// The pairs stop after this many seconds, however many were measured (--cluster).
    #[arg(long, default_value_t = 75)]
    hop_seconds: u64,
    /// Runs of the burst sent to one replica (--cluster).
    #[arg(long, default_value_t = 60)]
    burst_requests: usize,
    /// Seconds of load before a replica is killed (--cluster).
    #[arg(long, default_value_t = 4)]
    kill_after: u64,
}

impl ClusterArgs {
    pub fn enabled(&self) -> bool {
        self.cluster
    }
}

/// The cluster bench's JSON.
#[derive(Serialize)]
struct ClusterReport {
    commit: String,
    dirty: bool,
    started_at: String,
    build: &'static str,
    /// Seconds the whole bench took, replicas' start and stop included.
    took_s: f64,
    host: Value,
    config: Value,
    hop: Option<hop::HopReport>,
    burst: Option<burst::BurstReport>,
    kill: Option<kill::KillReport>,
    /// Containers removed after the replicas stopped, and anything that went wrong.
    tear_down: TearDown,
    /// Measurements that could not be made, and why.
    errors: Vec<String>,
}

pub async fn run(
    mut config: Config,
    cluster_args: &ClusterArgs,
    args: Shared,
) -> anyhow::Result<()> {
    let Some(postgres_url) = cluster_args
        .postgres_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
    else {
        anyhow::bail!(
            "--cluster needs PostgreSQL, which the replicas share: pass --postgres-url \
             postgres://USER@HOST:PORT/DB or set RUNBOX_BENCH_POSTGRES_URL (the bench creates \
             a schema of its own there and drops it afterwards)"
        );
    };
    anyhow::ensure!(
        postgres_url.starts_with("postgres://") || postgres_url.starts_with("postgresql://"),
        "--postgres-url must be a postgres:// URL"
    );
    anyhow::ensure!(
        !args.server,
        "--cluster starts its own replicas: no --server"
    );
    anyhow::ensure!(
        cluster_args.replicas >= 2,
        "--cluster needs at least 2 replicas"
    );
    anyhow::ensure!(
        cluster_args.replica_slots >= 1,
        "--replica-slots must be at least 1"
    );
    anyhow::ensure!(
        args.runtime.len() <= 1,
        "--cluster measures under one runtime at a time"
    );
    if let Some(transport) = args.transport {
        config.sandbox.transport = transport;
    }
    if let Some(runtime) = args.runtime.first().filter(|r| !r.trim().is_empty()) {
        config.sandbox.runtime = runtime.trim().to_string();
    }
    // Pools of 3: a pair takes two warm sandboxes of one peer.
    let pool_size = args.pool_size.unwrap_or(3);

    let docker = connect_docker().await?;
    let image = ensure_sandbox_image(docker.as_ref(), &config, false).await?;
    let began = std::time::Instant::now();
    let (commit, dirty) = source_state();
    let started_at = chrono::Utc::now().to_rfc3339();
    let load_before = load_average();
    // Not `bench-…`: the instances of a cluster bench are told apart from a plain one's.
    let prefix = format!("cluster-bench-{}", short_id());
    let slots = cluster_args.replica_slots;
    let heartbeat = config.cluster.heartbeat.0;
    let dead_after = config.cluster.dead_after.0;
    let settings = json!({
        "replicas": cluster_args.replicas,
        "replica_slots": slots,
        "pool_size": pool_size,
        "transport": config.sandbox.transport,
        "runtime": if config.sandbox.runtime.is_empty() { "default" } else { config.sandbox.runtime.as_str() },
        "image": image,
        "heartbeat": config.cluster.heartbeat,
        "dead_after": config.cluster.dead_after,
        "hop_pairs": cluster_args.hop_pairs,
        "hop_warmup": cluster_args.hop_warmup,
        "hop_seconds": cluster_args.hop_seconds,
        "burst_requests": cluster_args.burst_requests,
        "kill_after_s": cluster_args.kill_after,
        "database": "a fresh schema of one PostgreSQL server, on this host",
    });

    eprintln!(
        "starting {} replicas (instances {prefix}-r0…)",
        cluster_args.replicas
    );
    let mut cluster = Cluster::start(
        Plan {
            config: &config,
            postgres_url,
            replicas: cluster_args.replicas,
            slots,
            pool_size,
            prefix: &prefix,
        },
        docker.as_ref(),
    )
    .await?;

    // Interrupted, the replicas stop and every container of theirs goes all the same.
    let interrupted = CancellationToken::new();
    tokio::spawn(crate::cli::serve::stop_on_signal(interrupted.clone()));
    let mut report = ClusterReport {
        commit,
        dirty,
        started_at,
        build: build_profile(),
        took_s: 0.0,
        host: Value::Null,
        config: settings,
        hop: None,
        burst: None,
        kill: None,
        tear_down: TearDown::default(),
        errors: Vec::new(),
    };
    let phases = Phases {
        hop_pairs: cluster_args.hop_pairs,
        hop_warmup: cluster_args.hop_warmup,
        hop_within: Duration::from_secs(cluster_args.hop_seconds),
        burst_requests: cluster_args.burst_requests,
        kill_after: Duration::from_secs(cluster_args.kill_after),
        slots,
        pool_size,
        max_timeout: config.limits.max_timeout.0,
        // The dead replica's task ends after `dead_after`, at the next look of a survivor.
        give_up_after: dead_after + heartbeat * 3 + Duration::from_secs(10),
    };
    let measured = tokio::select! {
        () = measure(&mut cluster, &phases, &mut report) => true,
        () = interrupted.cancelled() => false,
    };
    eprintln!("stopping the replicas");
    report.tear_down = cluster.tear_down(docker.as_ref()).await;
    if !measured {
        anyhow::bail!("the bench was interrupted; no figures were written");
    }
    report.took_s = (began.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    report.host = json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "load_before": load_before,
        "load_after": load_average(),
        "docker": docker.health().await.version,
    });
    println!("\n{}", table(&report));
    write(&args.out, &report, &report.commit, report.dirty)
}

struct Phases {
    hop_pairs: usize,
    hop_warmup: usize,
    hop_within: Duration,
    burst_requests: usize,
    kill_after: Duration,
    slots: usize,
    pool_size: usize,
    max_timeout: Duration,
    give_up_after: Duration,
}

/// The three measurements, in order; one that fails is noted and the next goes on.
async fn measure(cluster: &mut Cluster, phases: &Phases, report: &mut ClusterReport) {
    let replicas = cluster.replicas.len();
    match hop::measure(
        cluster,
        phases.hop_pairs,
        phases.hop_warmup,
        phases.slots,
        phases.pool_size,
        phases.max_timeout,
        phases.hop_within,
    )
    .await
    {
        Ok(hop) => report.hop = Some(hop),
        Err(err) => report.errors.push(format!("hop: {err:#}")),
    }
    match burst::measure(cluster, phases.burst_requests, replicas * phases.slots).await {
        Ok(burst) => report.burst = Some(burst),
        Err(err) => report.errors.push(format!("burst: {err:#}")),
    }
    let plan = kill::KillPlan {
        concurrency: replicas * phases.slots,
        kill_after: phases.kill_after,
        give_up_after: phases.give_up_after,
    };
    match kill::measure(cluster, plan).await {
        Ok(kill) => report.kill = Some(kill),
        Err(err) => report.errors.push(format!("kill: {err:#}")),
    }
}

/// What the terminal shows: the figures of the JSON, one line each.
fn table(report: &ClusterReport) -> String {
    let mut lines = vec![format!(
        "cluster of {} replicas, {} build, {} s in all",
        report.config["replicas"], report.build, report.took_s
    )];
    if let Some(hop) = &report.hop {
        lines.push(format!(
            "hop ({} pairs{}): through the hop p50 {} ms p99 {} ms | at the peer directly p50 {} ms p99 {} ms | added p50 {} ms p99 {} ms (target ≤ {} ms: {})",
            hop.pairs,
            if hop.cut_short { ", cut short by --hop-seconds" } else { "" },
            hop.through_hop.p50_ms,
            hop.through_hop.p99_ms,
            hop.direct.p50_ms,
            hop.direct.p99_ms,
            hop.added_p50_ms,
            hop.added_p99_ms,
            hop.target_added_p50_ms,
            if hop.met { "met" } else { "MISSED" },
        ));
    }
    if let Some(burst) = &report.burst {
        let shares: Vec<String> = burst
            .served_by
            .iter()
            .map(|(id, n)| {
                let entry = if *id == burst.entry { " (entry)" } else { "" };
                format!("{}{entry} {n}", short(id))
            })
            .collect();
        lines.push(format!(
            "burst at one replica ({} runs, c={}): served {} | p50 {} ms p99 {} ms, {} errors",
            burst.figures.requests,
            burst.concurrency,
            shares.join(", "),
            burst.figures.p50_ms,
            burst.figures.p99_ms,
            burst.figures.errors
        ));
    }
    if let Some(kill) = &report.kill {
        let errors = |phase: &kill::Phase| {
            if phase.errors_by_status.is_empty() {
                "none".to_string()
            } else {
                phase
                    .errors_by_status
                    .iter()
                    .map(|(status, n)| format!("{n}× {status}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        lines.push(format!(
            "kill at {} s: before {} runs ({} errors: {}); in flight {} ({}); after {} runs ({}), p50 {} ms p99 {} ms; {} refused connections; last failure {}",
            kill.killed_after_s,
            kill.before.figures.requests,
            kill.before.figures.errors,
            errors(&kill.before),
            kill.across.figures.requests,
            errors(&kill.across),
            kill.after.figures.requests,
            errors(&kill.after),
            kill.after.figures.p50_ms,
            kill.after.figures.p99_ms,
            kill.refused,
            kill.last_failure_after_kill_s
                .map_or("none".to_string(), |s| format!("{s} s after the kill")),
        ));
        if let Some(task) = &kill.task {
            lines.push(format!(
                "its task: {} at the kill, {} ({}) {}",
                task.status_at_kill,
                task.status,
                task.reason.as_str().unwrap_or("-"),
                task.ended_after_kill_s
                    .map_or("not within the wait".to_string(), |s| format!(
                        "{s} s after the kill"
                    )),
            ));
        }
    }
    for (instance, removed) in &report.tear_down.swept {
        if *removed > 0 {
            lines.push(format!("removed {removed} containers {instance} left"));
        }
    }
    lines.extend(report.tear_down.notes.iter().cloned());
    lines.extend(report.errors.iter().map(|e| format!("error: {e}")));
    lines.join("\n")
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
