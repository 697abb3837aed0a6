//! One environment build: pip in a container of the sandbox image that has network,
//! then a commit of what it changed. The build container runs as root (pip installs
//! into the system site-packages, which the sandbox user can read but not change) with
//! every capability dropped but the few file-ownership ones pip needs, under the
//! sandboxes' seccomp profile: pip runs the setup code of whatever it installs, which
//! is as untrusted as the code that later imports it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::HostConfig;
use runbox_core::Config;

use super::{DependencySet, EnvironmentPlan, ENV_LABEL, ENV_REPOSITORY, ENV_REQUIREMENTS_LABEL};
use crate::backend::{Backend, CommitSpec, ContainerSpec};
use crate::labels::{self, ContainerKind};
use crate::sandbox::Launcher;
use crate::seccomp::Seccomp;
use crate::SandboxError;

/// Where the operator's CA bundle is mounted in a build container.
const CA_MOUNT: &str = "/run/runbox-pip-ca.crt";
/// What is kept of pip's output: enough for the error and what led to it.
const LOG_TAIL_LINES: usize = 200;
const LOG_TAIL_BYTES: usize = 32 * 1024;

/// A finished build: the image to run, pip's output (tail) and how long it took.
#[derive(Clone, Debug)]
pub struct BuildReport {
    /// The environment image; the sandbox image itself when pip found every requirement
    /// already satisfied (then calls also get its warm pool).
    pub image: String,
    pub log: String,
    pub duration: Duration,
}

/// Why an environment could not be built, with what pip said.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct BuildFailure {
    pub message: String,
    pub log: String,
    /// The Docker engine failed (runbox's failure, a 5xx), not pip on the requirements
    /// (the user's, a 422 `dependency`).
    pub by_engine: bool,
}

impl BuildFailure {
    pub(crate) fn engine(action: &str, err: impl std::fmt::Display) -> Self {
        BuildFailure {
            message: format!("Docker failed while {action}: {err}"),
            log: String::new(),
            by_engine: true,
        }
    }

    fn of_requirements(message: String, log: String) -> Self {
        BuildFailure {
            message,
            log,
            by_engine: false,
        }
    }
}

/// Installs `deps` into a container of `base_image` and commits it as `plan.image`. The
/// build container is removed on every path (its guard), also when this future is
/// dropped.
pub(crate) async fn build(
    launcher: &Launcher,
    base_image: &str,
    deps: &DependencySet,
    plan: &EnvironmentPlan,
    timeout: Duration,
) -> Result<BuildReport, BuildFailure> {
    let started = Instant::now();
    let engine = launcher.engine();
    let config = &launcher.config;
    let base = engine
        .inspect_image(base_image)
        .await
        .map_err(|e| BuildFailure::engine("inspecting the sandbox image", e))?;

    let spec = build_container_config(
        config,
        &launcher.seccomp,
        base_image,
        deps,
        &launcher.instance,
    );
    let guard = launcher
        .containers
        .create(ContainerKind::Build, spec)
        .await
        .map_err(|err| match err {
            SandboxError::Docker { action, source } => BuildFailure::engine(action, source),
            other => BuildFailure {
                message: other.to_string(),
                log: String::new(),
                by_engine: true,
            },
        })?;
    engine
        .start(guard.id())
        .await
        .map_err(|e| BuildFailure::engine("starting the build container", e))?;

    let exit = tokio::time::timeout(timeout, engine.wait(guard.id())).await;
    let log = read_log(engine, guard.id()).await;
    let exit_code = match exit {
        Ok(Ok(code)) => code,
        Ok(Err(err)) => {
            guard.remove().await;
            return Err(BuildFailure {
                log,
                ..BuildFailure::engine("waiting for the build container", err)
            });
        }
        Err(_elapsed) => {
            guard.remove().await;
            return Err(BuildFailure::of_requirements(
                format!(
                    "installing the dependencies took longer than functions.build_timeout ({})",
                    runbox_core::units::human_seconds(timeout)
                ),
                log,
            ));
        }
    };
    if exit_code != 0 {
        guard.remove().await;
        return Err(BuildFailure::of_requirements(
            format!(
                "pip could not install {} (exit code {exit_code}): {}",
                deps.requirements().join(", "),
                last_error_line(&log)
            ),
            log,
        ));
    }

    if !installed_anything(&log) {
        guard.remove().await;
        return Ok(BuildReport {
            image: base_image.to_string(),
            log,
            duration: started.elapsed(),
        });
    }

    // What the container changed, under the sandbox image's own user, command,
    // environment and labels (commit would otherwise keep the build's).
    let mut image_labels = base.labels.clone();
    image_labels.extend([
        (labels::MANAGED.to_string(), "true".to_string()),
        (labels::KIND.to_string(), "env".to_string()),
        (labels::INSTANCE.to_string(), String::new()),
        (ENV_LABEL.to_string(), plan.hash.clone()),
        (
            ENV_REQUIREMENTS_LABEL.to_string(),
            deps.requirements().join("\n"),
        ),
    ]);
    let image_config = ContainerSpec {
        user: Some(base.user.clone().unwrap_or_default()),
        cmd: base.cmd.clone(),
        entrypoint: base.entrypoint.clone(),
        env: base.env.clone(),
        working_dir: base.working_dir.clone(),
        labels: Some(image_labels),
        ..Default::default()
    };
    let (repo, tag) = plan
        .image
        .split_once(':')
        .unwrap_or((ENV_REPOSITORY, plan.hash.as_str()));
    // A rebuild (after a lost record, or a failed image check) retags; the image it
    // replaces would be left dangling.
    let replaced = engine
        .inspect_image(&plan.image)
        .await
        .ok()
        .and_then(|i| i.id);
    let committed = engine
        .commit(
            guard.id(),
            CommitSpec {
                repo: repo.to_string(),
                tag: tag.to_string(),
                comment: format!("runbox environment: {}", deps.requirements().join(" ")),
                author: "runbox".to_string(),
                config: image_config,
            },
        )
        .await;
    guard.remove().await;
    let committed = committed.map_err(|e| BuildFailure {
        log: log.clone(),
        ..BuildFailure::engine("committing the environment image", e)
    })?;
    if let Some(old) = replaced.filter(|old| Some(old) != committed.as_ref()) {
        // In use by a running sandbox: it stays dangling until `docker image prune`.
        let _ = engine.remove_image(&old).await;
    }
    Ok(BuildReport {
        image: plan.image.clone(),
        log,
        duration: started.elapsed(),
    })
}

/// pip reports every install (and upgrade) with this line; without it the sandbox image
/// already satisfies the set, and committing an identical image is not worth its
/// seconds.
fn installed_anything(log: &str) -> bool {
    log.lines()
        .any(|line| line.trim_start().starts_with("Successfully installed"))
}

fn build_container_config(
    config: &Config,
    seccomp: &Seccomp,
    base_image: &str,
    deps: &DependencySet,
    instance: &str,
) -> ContainerSpec {
    let memory = i64::try_from(config.functions.build_memory.bytes()).unwrap_or(i64::MAX);
    let mut binds = Vec::new();
    let mut pip_env = vec![
        "HOME=/root".to_string(),
        "PIP_NO_CACHE_DIR=1".to_string(),
        "PIP_DISABLE_PIP_VERSION_CHECK=1".to_string(),
        "PIP_NO_INPUT=1".to_string(),
        "PIP_ROOT_USER_ACTION=ignore".to_string(),
        // Debian's python refuses pip installs into the system without this (PEP 668).
        "PIP_BREAK_SYSTEM_PACKAGES=1".to_string(),
    ];
    let index_url = config.pip.index_url.trim();
    if !index_url.is_empty() {
        pip_env.push(format!("PIP_INDEX_URL={index_url}"));
    }
    let bundle = config.pip.extra_ca_bundle.trim();
    if !bundle.is_empty() {
        binds.push(format!("{bundle}:{CA_MOUNT}:ro"));
        pip_env.push(format!("PIP_CERT={CA_MOUNT}"));
    }
    // The variables go on the command line, not into the container's environment:
    // commit would carry the container's environment into the image.
    let mut cmd = vec!["env".to_string()];
    cmd.extend(pip_env);
    cmd.extend(
        [
            "sh",
            "-c",
            // Requirements arrive as positional arguments: never parsed by the shell.
            "python3 -m pip install --progress-bar off \"$@\"; status=$?; \
             rm -rf /tmp/* /root/.cache; exit $status",
            "pip-install",
        ]
        .map(String::from),
    );
    cmd.extend(deps.requirements().iter().cloned());

    let labels = HashMap::from([
        (labels::MANAGED.to_string(), "true".to_string()),
        (labels::INSTANCE.to_string(), instance.to_string()),
        (
            labels::KIND.to_string(),
            ContainerKind::Build.as_str().to_string(),
        ),
    ]);
    let mut host_config = HostConfig {
        memory: Some(memory),
        memory_swap: Some(memory),
        pids_limit: Some(config.sandbox.pids_limit.max(512)),
        cap_drop: Some(vec!["ALL".to_string()]),
        cap_add: Some(
            ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"]
                .map(String::from)
                .to_vec(),
        ),
        security_opt: Some(seccomp.security_opt()),
        init: Some(true),
        network_mode: Some("bridge".to_string()),
        binds: (!binds.is_empty()).then_some(binds),
        ..Default::default()
    };
    if !config.sandbox.runtime.trim().is_empty() {
        host_config.runtime = Some(config.sandbox.runtime.trim().to_string());
    }
    ContainerSpec {
        image: Some(base_image.to_string()),
        cmd: Some(cmd),
        user: Some("0:0".to_string()),
        working_dir: Some("/".to_string()),
        labels: Some(labels),
        attach_stdin: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        tty: Some(false),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// The last lines of the build's stdout and stderr, interleaved as written.
async fn read_log(engine: &dyn Backend, id: &str) -> String {
    let text = engine.logs(id, LOG_TAIL_LINES).await.unwrap_or_default();
    tail_bytes(&text, LOG_TAIL_BYTES)
}

fn tail_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// pip's own summary of what went wrong: its last `ERROR:` line, else the last line.
fn last_error_line(log: &str) -> String {
    let mut lines = log.lines().map(str::trim).filter(|l| !l.is_empty());
    let last_error = lines.clone().rev().find(|l| l.starts_with("ERROR:"));
    last_error
        .or_else(|| lines.next_back())
        .unwrap_or("no output")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_runs_pip_as_root_with_network_and_the_ca_bundle() {
        let mut config = Config::defaults();
        config.pip.extra_ca_bundle = "/etc/ca.pem".into();
        config.pip.index_url = "https://mirror.invalid/simple".into();
        let deps = DependencySet::parse(&["tabulate==0.9.0"]).expect("valid");
        let seccomp = Seccomp::from_config(&config).expect("the profile");
        let container = build_container_config(&config, &seccomp, "img", &deps, "inst");
        assert_eq!(container.user.as_deref(), Some("0:0"));
        let cmd = container.cmd.expect("cmd");
        assert!(cmd.contains(&format!("PIP_CERT={CA_MOUNT}")));
        assert!(cmd.contains(&"PIP_INDEX_URL=https://mirror.invalid/simple".to_string()));
        assert!(cmd.contains(&"PIP_BREAK_SYSTEM_PACKAGES=1".to_string()));
        assert_eq!(cmd.last().map(String::as_str), Some("tabulate==0.9.0"));
        assert!(
            container.env.is_none(),
            "nothing of pip's settings reaches the image"
        );
        let host = container.host_config.expect("host config");
        assert_eq!(host.network_mode.as_deref(), Some("bridge"));
        assert_eq!(host.security_opt, Some(seccomp.security_opt()));
        assert_eq!(host.binds, Some(vec![format!("/etc/ca.pem:{CA_MOUNT}:ro")]));
        let labels = container.labels.expect("labels");
        assert_eq!(labels.get(labels::KIND).map(String::as_str), Some("build"));
        assert_eq!(
            labels.get(labels::INSTANCE).map(String::as_str),
            Some("inst")
        );
    }

    #[test]
    fn an_already_satisfied_set_installs_nothing() {
        assert!(!installed_anything(
            "Requirement already satisfied: numpy in /usr/lib/python3/dist-packages (1.24.2)\n"
        ));
        assert!(installed_anything(
            "Collecting tabulate==0.9.0\nInstalling collected packages: tabulate\nSuccessfully installed tabulate-0.9.0\n"
        ));
    }

    #[test]
    fn the_error_line_is_pips_summary() {
        let log = "Collecting nope\nERROR: Could not find a version\nERROR: No matching distribution found for nope\n";
        assert_eq!(
            last_error_line(log),
            "ERROR: No matching distribution found for nope"
        );
        assert_eq!(last_error_line("a\nb\n"), "b");
    }
}
