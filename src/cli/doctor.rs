//! `runbox doctor`: checks everything runbox needs and says what to fix.

use runbox_core::config::Transport;
use runbox_core::Config;
use runbox_sandbox::host_firewall;
use runbox_sandbox::image::{image_exists, plan, resolve_base, BOOTSTRAP_BASE, UPSTREAM_BASE};
use runbox_sandbox::{connect_docker, docker_runtimes, Seccomp};
use runbox_store::{redact_url, Backend, Store};

use super::doctor_cluster::{self, Verdict};
use crate::embedded::image_source;

struct Report {
    failures: usize,
}

impl Report {
    fn ok(&self, what: &str, detail: impl std::fmt::Display) {
        println!("  ok    {what}: {detail}");
    }
    fn warn(&self, what: &str, detail: impl std::fmt::Display) {
        println!("  warn  {what}: {detail}");
    }
    fn fail(&mut self, what: &str, detail: impl std::fmt::Display, fix: &str) {
        self.failures += 1;
        println!("  FAIL  {what}: {detail}\n        fix: {fix}");
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let mut report = Report { failures: 0 };
    println!("runbox doctor");
    report.ok(
        "config",
        format!(
            "transport {:?}, pool {}, database {}",
            config.sandbox.transport,
            config.sandbox.pool.size,
            redact_url(&config.database_url())
        ),
    );

    match Seccomp::from_config(&config) {
        Ok(seccomp) => report.ok(
            "seccomp",
            format!("{} ({})", config.sandbox.seccomp.trim(), seccomp.describe()),
        ),
        Err(err) => report.fail(
            "seccomp",
            err,
            "set sandbox.seccomp to runbox, docker or a readable profile in Docker's format",
        ),
    }

    if config.sandbox.engines.is_empty() {
        match connect_docker().await {
            Err(err) => report.fail(
                "docker",
                err,
                "start the Docker engine, make sure this user may use it (docker group), or set DOCKER_HOST",
            ),
            Ok(docker) => {
                report.ok("docker", "the engine answers");
                check_engine(&mut report, &config, "", docker.as_ref()).await;
            }
        }
    } else {
        check_configured_engines(&mut report, &config).await;
    }

    match Store::connect(&config.database_url()).await {
        Ok(store) => {
            match store.ping().await {
                Ok(()) => report.ok(
                    "database",
                    format!("{} answers, schema up to date", store.backend()),
                ),
                Err(err) => report.fail(
                    "database",
                    err,
                    "check database.url and that the server is up",
                ),
            }
            if store.backend() == Backend::Postgres {
                for (what, verdict) in doctor_cluster::check(&config, &store).await {
                    match verdict {
                        Verdict::Ok(detail) => report.ok(&what, detail),
                        Verdict::Warn(detail) => report.warn(&what, detail),
                        Verdict::Fail(detail, fix) => report.fail(&what, detail, fix),
                    }
                }
            }
            store.close().await;
        }
        Err(err) => report.fail(
            "database",
            err,
            "check database.url (or the postgres: block); for SQLite, that data_dir is writable",
        ),
    }

    if config.sandbox.transport == Transport::Http {
        if host_firewall::is_closed(Some(&runbox_runtime::instance_name(&config))).await {
            report.ok(
                "host firewall",
                "new connections from the http sandboxes' bridge are dropped (runbox's netfilter rules)",
            );
        } else if host_firewall::can_install() {
            report.ok(
                "host firewall",
                "runbox serve installs its netfilter rules itself (it has CAP_NET_ADMIN)",
            );
        } else if config.sandbox.allow_host_network_access {
            report.warn(
                "host firewall",
                format!(
                    "sandboxes can reach the host's services (accepted by \
                     sandbox.allow_host_network_access); to close it: {}",
                    host_firewall::manual_fix()
                ),
            );
        } else {
            report.fail(
                "host firewall",
                "runbox cannot install the netfilter rules that keep the http transport's \
                 sandboxes from the host's services (it lacks CAP_NET_ADMIN or iptables), so \
                 serve refuses this transport",
                &format!(
                    "{}; or run runbox as root; or accept it with \
                     sandbox.allow_host_network_access: true",
                    host_firewall::manual_fix()
                ),
            );
        }
        let range = config.sandbox.port_range;
        let free = (range.start..=range.end)
            .filter(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
            .count();
        if free == 0 {
            report.fail(
                "port range",
                format!("no free port in {}-{}", range.start, range.end),
                "choose another sandbox.port_range",
            );
        } else if free < range.len() / 2 {
            report.warn(
                "port range",
                format!("only {free} of {} ports are free", range.len()),
            );
        } else {
            report.ok(
                "port range",
                format!("{free} of {} ports free", range.len()),
            );
        }
    }

    let bundle = config.pip.extra_ca_bundle.trim();
    if !bundle.is_empty() {
        if std::path::Path::new(bundle).is_file() {
            report.ok("pip CA bundle", bundle);
        } else {
            report.fail(
                "pip CA bundle",
                format!("{bundle} does not exist"),
                "fix pip.extra_ca_bundle",
            );
        }
    }

    if report.failures == 0 {
        println!("all checks passed");
        Ok(())
    } else {
        anyhow::bail!("{} check(s) failed", report.failures)
    }
}

/// Every engine of `sandbox.engines`: whether it answers (over TLS with its client
/// certificate where it is a tcp:// one), and what `check_engine` checks.
async fn check_configured_engines(report: &mut Report, config: &Config) {
    let engines = super::engines::connect_configured(config).await;
    for (engine, docker) in engines {
        let label = format!("engine {}", engine.name);
        let health = docker.health().await;
        if !health.reachable {
            report.fail(
                &label,
                format!(
                    "{} does not answer: {}",
                    engine.host,
                    health.error.unwrap_or_default()
                ),
                "start that engine, or check its address and (tcp://) its tls certificates",
            );
            continue;
        }
        report.ok(
            &label,
            format!(
                "{} answers (Docker {}), capacity {}",
                engine.host,
                health.version.unwrap_or_default(),
                engine.capacity
            ),
        );
        check_engine(report, config, &label, docker.as_ref()).await;
    }
}

/// The images and runtimes of one engine; `label` (empty for the one local engine)
/// names it in each line.
async fn check_engine(
    report: &mut Report,
    config: &Config,
    label: &str,
    docker: &dyn runbox_sandbox::Backend,
) {
    let named = |what: &str| {
        if label.is_empty() {
            what.to_string()
        } else {
            format!("{label}: {what}")
        }
    };
    let source = image_source();
    let mut quiet = |_: &str| {};
    match resolve_base(docker, config, &source, false, &mut quiet).await {
        Ok(base) => {
            let base_present = image_exists(docker, &base).await.unwrap_or(false);
            if base_present {
                report.ok(&named("base image"), &base);
            } else {
                report.fail(&named("base image"),
                    format!("neither {UPSTREAM_BASE} nor {BOOTSTRAP_BASE} is present"),
                    "run `runbox image build` (pulls python:3.12-slim, or builds runbox-base:bookworm offline with scripts/bootstrap-base-image.sh as root)",
                );
            }
            let plan = plan(config, &source, &base);
            match image_exists(docker, &plan.tag).await {
                Ok(true) => report.ok(&named("sandbox image"), &plan.tag),
                Ok(false) if plan.built_by_runbox => report.fail(
                    &named("sandbox image"),
                    format!("{} is missing", plan.tag),
                    "run `runbox image build` (`runbox serve` also builds it at start-up)",
                ),
                Ok(false) => report.fail(
                    &named("sandbox image"),
                    format!("sandbox.image {} is missing", plan.tag),
                    "build or pull that image, or leave sandbox.image empty to use runbox's own",
                ),
                Err(err) => report.fail(&named("sandbox image"), err, "check the Docker engine"),
            }
        }
        Err(err) => report.fail(&named("base image"), err, "check sandbox.base_image"),
    }
    let runtimes = docker_runtimes(docker).await;
    report.ok(&named("OCI runtimes"), runtimes.join(", "));
    let strong = config.sandbox.strong_runtime.trim();
    if runtimes.iter().any(|r| r == strong) {
        report.ok(
            &named("isolation tier strong"),
            format!("served by {strong}"),
        );
    } else {
        report.warn(&named("isolation tier strong"),
            format!(
                "unavailable: the engine has no `{strong}` (sandbox.strong_runtime); runs \
                 that ask for it are refused. Install gVisor and register it in \
                 /etc/docker/daemon.json (\"runtimes\": {{\"{strong}\": {{\"path\": \"/usr/bin/runsc\"}}}})"
            ),
        );
    }
    let runtime = config.sandbox.runtime.trim();
    if !runtime.is_empty() {
        if runtimes.iter().any(|r| r == runtime) {
            report.ok(&named("runtime"), runtime);
        } else {
            report.fail(&named("runtime"),
                format!("sandbox.runtime {runtime} is not installed (engine has: {})", runtimes.join(", ")),
                "install it (e.g. gVisor's runsc) and register it in /etc/docker/daemon.json, or clear sandbox.runtime",
            );
        }
    }
}
