//! `runbox bench`: latency and throughput of `/runcode` against a server it starts itself
//! (or one named by `--server`), next to what the engine alone costs in the same run,
//! the idle memory of pooled sandboxes, and a check that nothing leaked. Writes JSON.

mod baselines;
mod load;
mod report;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use runbox_core::config::{StaticToken, Transport};
use runbox_core::Config;
use runbox_dispatch::Application;
use runbox_sandbox::{connect_docker, list_containers, Backend, ContainerKind, Containers};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use self::load::{PoolProbe, Scenario, Target};
use self::report::{ChurnRun, Leaks, Report, ScenarioRun};
use self::stats::Tally;
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
    /// Scenarios to run.
    #[arg(long, value_delimiter = ',', default_value = "print,plot,sleep")]
    scenarios: Vec<Scenario>,
    /// Concurrency levels of every scenario and of the churn baseline.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    concurrency: Vec<usize>,
    /// Levels at which every request first waits for a full pool (warm latency); the
    /// others run back to back (sustained throughput, refill-bound). 0: none.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    warm_at: Vec<usize>,
    /// Requests of `print` at each level (the sustained ones run in rounds instead).
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
    /// Requests of `plot` at each level.
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
    /// Where the JSON goes.
    #[arg(long, default_value = "bench-results/latest.json")]
    out: PathBuf,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum TransportArg {
    Stdio,
    Http,
}

/// The server under test and how to stop it.
struct Subject {
    target: Arc<Target>,
    in_process: Option<InProcess>,
}

/// How long the bench waits for the pool to be full, preloaded and idle again.
const SETTLE_WITHIN: Duration = Duration::from_secs(120);

impl Subject {
    /// Waits until the pool is full, preloaded and idle: every level and every churn
    /// measurement starts from there. False when it was not within `SETTLE_WITHIN`.
    async fn settle(&self) -> bool {
        self.target.pool.wait_settled(SETTLE_WITHIN).await
    }
}

struct InProcess {
    stop: CancellationToken,
    serving: tokio::task::JoinHandle<anyhow::Result<()>>,
    sandboxes: runbox_sandbox::Sandboxes,
    instance: String,
    _data_dir: tempfile::TempDir,
}

pub async fn run(mut config: Config, args: BenchArgs) -> anyhow::Result<()> {
    // The server's own logs would tear the progress bars; warnings still show.
    config.logging.level = "warn".into();
    super::logging::init(&config.logging);
    if let Some(transport) = args.transport {
        config.sandbox.transport = match transport {
            TransportArg::Stdio => Transport::Stdio,
            TransportArg::Http => Transport::Http,
        };
    }
    if let Some(size) = args.pool_size {
        config.sandbox.pool.size = size;
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: a debug build; figures of `cargo build --release` are the ones to quote"
        );
    }
    let docker = connect_docker().await?;
    let image = ensure_sandbox_image(docker.as_ref(), &config, false).await?;
    let started_at = chrono::Utc::now().to_rfc3339();
    let load_before = load_average();
    let bench_instance = format!("bench-{}", baselines::short_id());
    let config = Arc::new(config);

    let subject = start_subject(&config, &docker, &image, &bench_instance, &args).await?;
    let containers = Containers::new(docker.clone());
    let churn = Churn {
        containers: &containers,
        config: &config,
        image: &image,
        instance: &bench_instance,
        requests: args.churn_requests,
    };
    let mut report = Report {
        commit: git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into()),
        // The bench's own results do not make the code it measures dirty: a run after
        // the first would otherwise be marked so for the JSON the first one wrote.
        dirty: git(&[
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ":/",
            ":(top,exclude)bench-results",
        ])
        .is_some_and(|s| !s.is_empty()),
        started_at,
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        host: json!({}),
        config: json!({
            "server": args.server.clone().unwrap_or_else(|| "in-process".into()),
            "transport": config.sandbox.transport,
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
        () = measure(&subject, &churn, &mut report, &args) => true,
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

    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(&report)?;
    std::fs::write(&args.out, text + "\n")
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("\n{}", report.table());
    println!(
        "commit {}{}; written to {}",
        report.commit,
        if report.dirty { " (dirty)" } else { "" },
        args.out.display()
    );
    Ok(())
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
            let figures = baselines::docker_run(churn.image, args.docker_run_requests, &bar).await;
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

/// After an interrupt: stops the in-process server (which removes its pool and its
/// sandboxes), then removes what the bench itself had made (bare containers, the idle
/// memory pools) by their labels, twice, since a create the interrupt cut short may
/// still land. A second interrupt gives up at once.
async fn clean_up_after_interrupt(subject: Subject, docker: &dyn Backend, bench_instance: &str) {
    eprintln!("interrupted: stopping the server and removing the bench's containers");
    let clean = async {
        let mut instances = vec![
            bench_instance.to_string(),
            format!("{bench_instance}-memory-0"),
            format!("{bench_instance}-memory-1"),
        ];
        if let Some(server) = subject.in_process {
            server.stop.cancel();
            let _ = server.serving.await;
            instances.push(server.instance);
        }
        let mut removed = 0;
        for pass in 0..2 {
            if pass > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            for instance in &instances {
                removed += runbox_sandbox::sweep_instance(docker, instance)
                    .await
                    .unwrap_or_default();
            }
        }
        eprintln!("removed {removed} containers the bench had left");
        instances
    };
    tokio::select! {
        _ = clean => {}
        _ = tokio::signal::ctrl_c() => {
            eprintln!(
                "interrupted again: containers labelled runbox.instance={bench_instance}… may be left"
            );
        }
    }
}

/// What the churn baseline runs with: the engine, the sandbox image, the label its
/// bare containers carry (so the leak check finds any), and the containers per level.
struct Churn<'a> {
    containers: &'a Containers,
    config: &'a Arc<Config>,
    image: &'a str,
    instance: &'a str,
    requests: usize,
}

impl Churn<'_> {
    /// The bare container churn at every concurrency level.
    async fn every_level(&self, report: &mut Report, levels: &[usize], phase: &'static str) {
        for &concurrency in levels {
            self.level(report, concurrency, phase).await;
        }
    }

    /// The bare container churn at one concurrency level of the whole run.
    async fn level(&self, report: &mut Report, concurrency: usize, phase: &'static str) {
        let bar = bar(self.requests, &format!("churn c={concurrency} ({phase})"));
        let figures = self
            .block(concurrency, self.requests, &bar)
            .await
            .figures(false);
        finish(&bar, &figures);
        report.churn.push(ChurnRun {
            concurrency,
            phase,
            beside: None,
            figures,
        });
    }

    /// `requests` bare containers at `concurrency`.
    async fn block(&self, concurrency: usize, requests: usize, bar: &ProgressBar) -> Tally {
        baselines::churn(
            self.containers,
            self.config,
            self.image,
            self.instance,
            concurrency,
            requests,
            bar,
        )
        .await
    }
}

/// How a sustained level measured in rounds runs: how many, and the requests (and bare
/// containers) in each block.
#[derive(Clone, Copy)]
struct Rounds {
    count: usize,
    requests: usize,
}

/// A sustained level whose ratio to the churn is a target. The engine's churn on this
/// kind of machine swings by a tenth within seconds, so one block of each side, however
/// long, gives a ratio as noisy as that. Here each round is a block of bare churn and a
/// block of runbox's requests at the same concurrency, churn first in even rounds and
/// runbox first in odd ones (drift during the level falls on both alike), and the ratio
/// is that of all of runbox's requests over all of its blocks' time to all the bare
/// containers over theirs. A runbox block lasts until the work it left behind is done:
/// its containers removed and the pool refilled (not the later preload), which the churn
/// block pays within its own time. Every block starts from a full, idle pool.
async fn interleaved_level(
    subject: &Subject,
    churn: &Churn<'_>,
    report: &mut Report,
    scenario: Scenario,
    concurrency: usize,
    rounds: Rounds,
) -> ScenarioRun {
    let bar = bar(
        rounds.count * rounds.requests * 2,
        &format!(
            "{} c={concurrency} sustained, {} rounds with churn",
            scenario.name(),
            rounds.count
        ),
    );
    let mut runbox = Tally::default();
    let mut bare = Tally::default();
    let mut round_ratios = Vec::new();
    for round in 0..rounds.count {
        let churn_first = round % 2 == 0;
        let (mut churn_rate, mut runbox_rate) = (None, None);
        for runbox_turn in [!churn_first, churn_first] {
            subject.settle().await;
            if runbox_turn {
                let mut block = load::run_scenario(
                    &subject.target,
                    scenario,
                    concurrency,
                    rounds.requests,
                    false,
                    &bar,
                )
                .await;
                let left_behind = subject.target.pool.wait_quiet(SETTLE_WITHIN).await;
                if left_behind.is_none() {
                    bar.println(format!(
                        "  the work a block left was not done within {} s; counted as that long",
                        SETTLE_WITHIN.as_secs()
                    ));
                }
                block.extend_wall(left_behind.unwrap_or(SETTLE_WITHIN));
                runbox_rate = block.rate();
                runbox.absorb(block);
            } else {
                let block = churn.block(concurrency, rounds.requests, &bar).await;
                churn_rate = block.rate();
                bare.absorb(block);
            }
        }
        if let (Some(runbox_rate), Some(churn_rate)) = (runbox_rate, churn_rate) {
            if churn_rate > 0.0 {
                round_ratios.push(stats::round(runbox_rate / churn_rate));
            }
        }
    }
    subject.settle().await;
    let figures = runbox.figures(false);
    finish(&bar, &figures);
    report.churn.push(ChurnRun {
        concurrency,
        phase: "interleaved",
        beside: Some(scenario),
        figures: bare.figures(false),
    });
    let mut run = ScenarioRun::new(scenario, concurrency, "sustained", figures);
    run.round_ratios = round_ratios;
    run
}

async fn start_subject(
    config: &Arc<Config>,
    docker: &Arc<dyn Backend>,
    image: &str,
    bench_instance: &str,
    args: &BenchArgs,
) -> anyhow::Result<Subject> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()?;
    if let Some(server) = &args.server {
        let base = server.trim_end_matches('/').to_string();
        let token = args
            .token
            .clone()
            .or_else(|| config.auth.tokens.first().map(|t| t.token().to_string()))
            .context("--server needs --token (the configuration lists no static token)")?;
        let pool = PoolProbe::Remote {
            client: client.clone(),
            base: base.clone(),
        };
        return Ok(Subject {
            target: Arc::new(Target {
                client,
                base,
                token,
                pool,
            }),
            in_process: None,
        });
    }
    let data_dir = tempfile::tempdir().context("cannot create a data dir for the bench")?;
    let token = format!("bench-{}", baselines::short_id());
    let instance = format!("{bench_instance}-server");
    let mut server_config = (**config).clone();
    server_config.server.host = "127.0.0.1".into();
    server_config.server.port = 0;
    server_config.server.public_url = String::new();
    server_config.data_dir = data_dir.path().to_path_buf();
    server_config.database.url =
        format!("sqlite://{}", data_dir.path().join("runbox.db").display());
    server_config.sandbox.instance = instance.clone();
    server_config
        .auth
        .tokens
        .push(StaticToken::Bare(token.clone()));
    let app = Application::build(server_config, docker.clone(), image.to_string()).await?;
    let address = app
        .local_addr()
        .context("the bench server has no address")?;
    let sandboxes = app.state().runtime.sandboxes().clone();
    let stop = CancellationToken::new();
    let serving = tokio::spawn({
        let stop = stop.clone();
        async move {
            app.run_until_stopped(stop)
                .await
                .map_err(anyhow::Error::from)
        }
    });
    Ok(Subject {
        target: Arc::new(Target {
            client,
            base: format!("http://{address}"),
            token,
            pool: PoolProbe::InProcess(sandboxes.clone()),
        }),
        in_process: Some(InProcess {
            stop,
            serving,
            sandboxes,
            instance,
            _data_dir: data_dir,
        }),
    })
}

/// Stops the in-process server and counts what it left: containers of its instance and
/// port leases. Against a remote server, counts on-demand containers left on the engine
/// and leases beyond the pool's.
async fn check_leaks(
    subject: Subject,
    docker: &dyn Backend,
    bench_instance: &str,
    after_load: Option<load::PoolSnapshot>,
) -> Leaks {
    let mut leaks = Leaks {
        after_load,
        ..Leaks::default()
    };
    leaks.baseline_containers = list_containers(docker, Some(bench_instance), None)
        .await
        .ok()
        .map(|ids| ids.len());
    let settled = subject
        .target
        .pool
        .wait_settled(Duration::from_secs(60))
        .await;
    if !settled {
        leaks
            .notes
            .push("sandboxes were still in use 60 s after the load".into());
    }
    match subject.in_process {
        Some(server) => {
            server.stop.cancel();
            match server.serving.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => leaks
                    .notes
                    .push(format!("the server stopped with an error: {err}")),
                Err(err) => leaks.notes.push(format!("the server task failed: {err}")),
            }
            leaks.port_leases = Some(server.sandboxes.status().port_leases);
            leaks.containers = list_containers(docker, Some(&server.instance), None)
                .await
                .ok()
                .map(|ids| ids.len());
        }
        None => {
            // The pool's own containers (and their leases) are the server's to keep.
            let snapshot = subject.target.pool.snapshot().await;
            let pooled_leases = snapshot.map(|s| s.ready).unwrap_or_default();
            leaks.port_leases = snapshot.map(|s| s.port_leases.saturating_sub(pooled_leases));
            leaks.containers = list_containers(docker, None, Some(ContainerKind::OnDemand))
                .await
                .ok()
                .map(|ids| ids.len());
            leaks.notes.push(
                "remote server: containers counts on-demand sandboxes of every runbox on the engine; \
                 port_leases counts leases beyond the pool's (http transport)"
                    .into(),
            );
        }
    }
    leaks
}

fn bar(length: usize, prefix: &str) -> ProgressBar {
    let bar = ProgressBar::new(length as u64);
    let style = ProgressStyle::with_template("{prefix:>34} [{bar:30}] {pos}/{len} {elapsed} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(prefix.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn finish(bar: &ProgressBar, figures: &stats::Figures) {
    let rate = figures
        .requests_per_s
        .map(|r| format!(", {r} req/s"))
        .unwrap_or_default();
    bar.finish_with_message(format!(
        "p50 {} ms, p99 {} ms{rate}, {} errors",
        figures.p50_ms, figures.p99_ms, figures.errors
    ));
}

fn git(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn load_average() -> Option<Vec<f64>> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .filter_map(|v| v.parse().ok())
            .collect(),
    )
}
