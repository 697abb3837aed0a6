//! `runbox bench`: latency and throughput of `/runcode` against a server it starts itself
//! (or one named by `--server`), next to what the engine alone costs in the same run,
//! the idle memory of pooled sandboxes, and a check that nothing leaked. Writes JSON.

mod baselines;
mod churn;
mod cluster;
mod load;
mod progress;
mod record;
mod report;
mod runtimes;
mod stats;
mod subject;

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use runbox_core::config::Transport;
use runbox_core::Config;
use runbox_sandbox::{connect_docker, Containers};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use self::churn::{interleaved_level, Churn, Rounds};
use self::load::Scenario;
use self::progress::{bar, finish};
use self::record::{build_profile, load_average, source_state, write};
use self::report::{Leaks, Report, ScenarioRun};
use self::subject::{check_leaks, clean_up_after_interrupt, start_subject, Subject, SETTLE_WITHIN};
use super::image::ensure_sandbox_image;

#[derive(Args)]
pub struct BenchArgs {
    /// Bench this running server (e.g. http://127.0.0.1:8000) instead of starting one in
    /// this process.
    #[arg(long)]
    server: Option<String>,
    /// Bearer token for --server (default: the first static token of the configuration).
    #[arg(long, env = "RUNBOX_BENCH_TOKEN")]
    token: Option<String>,
    /// Scenarios to run: print, plot, sleep (on /runcode), execute, show (on /execute).
    #[arg(long, value_delimiter = ',', default_value = "print,plot,sleep")]
    scenarios: Vec<Scenario>,
    /// Concurrency levels of every scenario and of the churn baseline.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    concurrency: Vec<usize>,
    /// Levels at which every request first waits for a full pool (warm latency); the
    /// others run back to back (sustained throughput, refill-bound). 0: none.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    warm_at: Vec<usize>,
    /// Requests of `print` (and of `execute`) at each level (the sustained print levels
    /// run in rounds instead).
    #[arg(long, default_value_t = 100)]
    print_requests: usize,
    /// Rounds of each sustained `print` level, whose ratio to the churn is a target: each
    /// round is a block of bare churn and a block of requests at the same concurrency,
    /// which goes first alternating, so that the machine's drift falls on both alike.
    /// 0: those levels run `--print-requests` back to back, beside the run's churn.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Requests, and bare containers, in each block of a round.
    #[arg(long, default_value_t = 48)]
    round_requests: usize,
    /// Requests of `plot` (and of `show`) at each level.
    #[arg(long, default_value_t = 30)]
    plot_requests: usize,
    /// Requests of `sleep` at each level.
    #[arg(long, default_value_t = 24)]
    sleep_requests: usize,
    /// Bare containers at each level of the churn baseline.
    #[arg(long, default_value_t = 48)]
    churn_requests: usize,
    /// Runs of `docker run --rm`.
    #[arg(long, default_value_t = 10)]
    docker_run_requests: usize,
    /// Skips the churn and `docker run` baselines.
    #[arg(long)]
    skip_baselines: bool,
    /// Pooled sandboxes whose idle memory is read, with and without preload; 0 skips it.
    #[arg(long, default_value_t = 3)]
    memory_sandboxes: usize,
    /// Pool size of the server this command starts (default: the configuration's).
    #[arg(long)]
    pool_size: Option<usize>,
    /// Transport of the server this command starts (default: the configuration's).
    #[arg(long, value_enum)]
    transport: Option<TransportArg>,
    /// OCI runtime of the server's sandboxes and of the bare containers it is measured
    /// against (e.g. crun, runsc; default: the configuration's `sandbox.runtime`).
    /// Several (`runc,crun,runsc`): the bench runs under each in turn, and compares them.
    #[arg(long, value_delimiter = ',')]
    runtime: Vec<String>,
    /// Where the JSON goes.
    #[arg(long, default_value = "bench-results/latest.json")]
    out: PathBuf,
    #[command(flatten)]
    cluster: cluster::ClusterArgs,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum TransportArg {
    Stdio,
    Http,
}

impl From<TransportArg> for Transport {
    fn from(arg: TransportArg) -> Self {
        match arg {
            TransportArg::Stdio => Transport::Stdio,
            TransportArg::Http => Transport::Http,
        }
    }
}

pub async fn run(mut config: Config, args: BenchArgs) -> anyhow::Result<()> {
    // The server's own logs would tear the progress bars; warnings still show.
    config.logging.level = "warn".into();
    super::logging::init(&config.logging);
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: a debug build; figures of `cargo build --release` are the ones to quote"
        );
    }
    if args.cluster.enabled() {
        let shared = cluster::Shared {
            server: args.server.is_some(),
            transport: args.transport.map(Into::into),
            runtime: args.runtime.clone(),
            pool_size: args.pool_size,
            out: args.out.clone(),
        };
        return cluster::run(config, &args.cluster, shared).await;
    }
    let runtimes: Vec<String> = args
        .runtime
        .iter()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    if runtimes.len() <= 1 {
        if let Some(runtime) = runtimes.first() {
            config.sandbox.runtime = runtime.clone();
        }
        let report = measure_one(config, &args).await?;
        println!("\n{}", report.table());
        return write(&args.out, &report, &report.commit, report.dirty);
    }
    if args.server.is_some() {
        anyhow::bail!("--server and several --runtime values: a server's runtime is its own");
    }
    let mut reports = Vec::new();
    for runtime in runtimes {
        eprintln!("\n== under {runtime}");
        let mut config = config.clone();
        config.sandbox.runtime = runtime.clone();
        let report = measure_one(config, &args).await?;
        println!("\n{runtime}:\n{}", report.table());
        reports.push((runtime, report));
    }
    let comparison = runtimes::compare(&reports);
    println!("\n{}", comparison.table());
    let (commit, dirty) = reports
        .first()
        .map(|(_, r)| (r.commit.clone(), r.dirty))
        .unwrap_or_default();
    let combined = json!({
        "commit": commit,
        "dirty": dirty,
        "comparison": comparison,
        "runtimes": reports.iter().map(|(runtime, report)| json!({"runtime": runtime, "report": report})).collect::<Vec<_>>(),
    });
    write(&args.out, &combined, &commit, dirty)
}

/// One bench run under the configuration's runtime: its report, ratios and targets in.
async fn measure_one(mut config: Config, args: &BenchArgs) -> anyhow::Result<Report> {
    if let Some(transport) = args.transport {
        config.sandbox.transport = transport.into();
    }
    if let Some(size) = args.pool_size {
        config.sandbox.pool.size = size;
    }
    let docker = connect_docker().await?;
    let image = ensure_sandbox_image(docker.as_ref(), &config, false).await?;
    let started_at = chrono::Utc::now().to_rfc3339();
    let load_before = load_average();
    let bench_instance = format!("bench-{}", baselines::short_id());
    let config = Arc::new(config);

    let subject = start_subject(
        &config,
        &docker,
        &image,
        &bench_instance,
        args.server.as_deref(),
        args.token.as_deref(),
    )
    .await?;
    let containers = Containers::new(docker.clone());
    let churn = Churn {
        containers: &containers,
        config: &config,
        image: &image,
        instance: &bench_instance,
        requests: args.churn_requests,
    };
    let (commit, dirty) = source_state();
    let mut report = Report {
        commit,
        dirty,
        started_at,
        build: build_profile(),
        host: json!({}),
        config: json!({
            "server": args.server.clone().unwrap_or_else(|| "in-process".into()),
            "transport": config.sandbox.transport,
            "runtime": if config.sandbox.runtime.is_empty() { "default" } else { config.sandbox.runtime.as_str() },
            "pool_size": config.sandbox.pool.size,
            "refill_parallelism": config.sandbox.pool.refill_parallelism,
            "preload": config.sandbox.preload,
            "max_concurrent_runs": config.admission.max_concurrent_runs,
            "image": image,
            "scenarios": args.scenarios,
            "concurrency": args.concurrency,
            "warm_at": args.warm_at,
            "requests": {
                "print": args.print_requests,
                "rounds": args.rounds,
                "round": args.round_requests,
                "plot": args.plot_requests,
                "sleep": args.sleep_requests,
                "churn": args.churn_requests,
                "docker_run": args.docker_run_requests,
            },
        }),
        scenarios: Vec::new(),
        churn: Vec::new(),
        docker_run: None,
        idle_memory: Vec::new(),
        leaks: Leaks::default(),
        targets: Vec::new(),
    };

    // Interrupted, the bench stops its server and removes every container it made
    // rather than leaving them behind (nothing else would sweep its random labels).
    let interrupted = CancellationToken::new();
    tokio::spawn(super::serve::stop_on_signal(interrupted.clone()));
    let measured = tokio::select! {
        () = measure(&subject, &churn, &mut report, args) => true,
        () = interrupted.cancelled() => false,
    };
    if !measured {
        clean_up_after_interrupt(subject, docker.as_ref(), &bench_instance).await;
        anyhow::bail!("the bench was interrupted; no figures were written");
    }

    report.leaks = check_leaks(
        subject,
        docker.as_ref(),
        &bench_instance,
        report.leaks.after_load,
    )
    .await;
    report.host = json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "load_before": load_before,
        "load_after": load_average(),
        "docker": docker.health().await.version,
    });
    report.compute_ratios();
    report.judge();
    Ok(report)
}

/// Everything the bench measures, in order, into `report`: what an interrupt cuts short.
async fn measure(subject: &Subject, churn: &Churn<'_>, report: &mut Report, args: &BenchArgs) {
    // The pool fills before the first figure is taken.
    if !subject.settle().await {
        eprintln!(
            "warning: the pool did not fill within {} s",
            SETTLE_WITHIN.as_secs()
        );
    }
    // The engine's churn is measured before and after the load, and runbox's figures are
    // divided by the mean of the two: other work on the machine drifts during a run.
    // The sustained print(1) levels, whose ratio is a target, are measured in rounds
    // interleaved with churn at their own concurrency instead (see `interleaved_level`).
    if !args.skip_baselines {
        churn.every_level(report, &args.concurrency, "before").await;
        subject.settle().await;
    }
    for &scenario in &args.scenarios {
        let requests = match scenario {
            Scenario::Print => args.print_requests,
            Scenario::Plot => args.plot_requests,
            Scenario::Sleep => args.sleep_requests,
            Scenario::Execute => args.print_requests,
            Scenario::Show => args.plot_requests,
        };
        for &concurrency in &args.concurrency {
            let paced = args.warm_at.contains(&concurrency);
            let mode = if paced { "warm" } else { "sustained" };
            let interleaved = !paced
                && !args.skip_baselines
                && scenario == Scenario::Print
                && args.rounds > 0
                && args.round_requests > 0;
            if interleaved {
                let run = interleaved_level(
                    subject,
                    churn,
                    report,
                    scenario,
                    concurrency,
                    Rounds {
                        count: args.rounds,
                        requests: args.round_requests,
                    },
                )
                .await;
                report.scenarios.push(run);
                continue;
            }
            let bar = bar(
                requests,
                &format!("{} c={concurrency} {mode}", scenario.name()),
            );
            let figures = load::run_scenario(
                &subject.target,
                scenario,
                concurrency,
                requests,
                paced,
                &bar,
            )
            .await
            .figures(paced);
            finish(&bar, &figures);
            report
                .scenarios
                .push(ScenarioRun::new(scenario, concurrency, mode, figures));
            // The next level starts from a full pool, like the first.
            subject.settle().await;
        }
    }
    report.leaks.after_load = subject.target.pool.snapshot().await;

    if !args.skip_baselines {
        churn.every_level(report, &args.concurrency, "after").await;
        if args.docker_run_requests > 0 {
            let bar = bar(args.docker_run_requests, "docker run --rm");
            let figures = baselines::docker_run(
                churn.image,
                &churn.config.sandbox.runtime,
                args.docker_run_requests,
                &bar,
            )
            .await;
            finish(&bar, &figures);
            report.docker_run = Some(figures);
        }
    }
    if args.memory_sandboxes > 0 {
        let config = churn.config;
        let preloads = [Vec::new(), config.sandbox.preload.clone()];
        for (index, preload) in preloads.into_iter().enumerate() {
            let label = if preload.is_empty() {
                "idle memory, no preload".to_string()
            } else {
                format!("idle memory, preload {}", preload.join("+"))
            };
            let bar = bar(args.memory_sandboxes, &label);
            let memory = baselines::idle_memory(
                churn.containers.engine(),
                config,
                churn.image,
                &format!("{}-memory-{index}", churn.instance),
                &preload,
                args.memory_sandboxes,
                &bar,
            )
            .await;
            bar.finish_with_message(format!(
                "{} MiB working set per sandbox (max {})",
                memory.working_set_mib, memory.working_set_max_mib
            ));
            report.idle_memory.push(memory);
            if config.sandbox.preload.is_empty() {
                break;
            }
        }
    }
}
