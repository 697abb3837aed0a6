//! Dependency environments of stored functions: the normalised, sorted dependency set
//! hashes (with the sandbox image it extends and the package index) to an image tag;
//! building one runs pip in a build container that has network, then commits it.
//!
//! The build container runs as root (pip installs into the system site-packages, which
//! the sandbox user can read but not change) with every capability dropped except the
//! few file-ownership ones pip needs. The committed image keeps the sandbox image's user,
//! command, environment and labels, so its containers are sandboxes like any other.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::container::{
    Config as ContainerConfig, CreateContainerOptions, LogOutput, LogsOptions,
};
use bollard::image::CommitContainerOptions;
use bollard::models::HostConfig;
use futures::StreamExt;
use runbox_core::Config;
use sha2::{Digest, Sha256};

use crate::guard::ContainerGuard;
use crate::labels::{self, ContainerKind};
use crate::sandbox::Launcher;

/// Repository of environment images; the tag is the environment's hash.
pub const ENV_REPOSITORY: &str = "runbox-env";
/// Image label carrying the environment hash (used by `runbox image prune`).
pub const ENV_LABEL: &str = "runbox.env";
/// Image label listing the requirements an environment installed, one per line.
pub const ENV_REQUIREMENTS_LABEL: &str = "runbox.env.requirements";
/// Where the operator's CA bundle is mounted in a build container.
const CA_MOUNT: &str = "/run/runbox-pip-ca.crt";
/// What is kept of pip's output: enough for the error and what led to it.
const LOG_TAIL_LINES: usize = 200;
const LOG_TAIL_BYTES: usize = 32 * 1024;
const MAX_REQUIREMENTS: usize = 100;
const MAX_REQUIREMENT_LEN: usize = 300;

/// A function's dependencies, normalised (PEP 503 names, no blanks) and sorted, so that
/// the same set always names the same environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DependencySet {
    requirements: Vec<String>,
}

/// A requirement runbox refuses before pip ever sees it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("dependency `{requirement}`: {reason}")]
pub struct InvalidRequirement {
    pub requirement: String,
    pub reason: String,
}

impl DependencySet {
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Self, InvalidRequirement> {
        if list.len() > MAX_REQUIREMENTS {
            return Err(InvalidRequirement {
                requirement: format!("({} requirements)", list.len()),
                reason: format!("at most {MAX_REQUIREMENTS} dependencies are allowed"),
            });
        }
        let mut requirements = list
            .iter()
            .map(|r| normalize_requirement(r.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        requirements.sort();
        requirements.dedup();
        Ok(DependencySet { requirements })
    }

    pub fn requirements(&self) -> &[String] {
        &self.requirements
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// `Pandas [SQL,excel] >= 2.2 ; python_version>"3"` → `pandas[excel,sql]>=2.2; python_version>"3"`.
fn normalize_requirement(raw: &str) -> Result<String, InvalidRequirement> {
    let invalid = |reason: &str| InvalidRequirement {
        requirement: raw.to_string(),
        reason: reason.to_string(),
    };
    let text = raw.trim();
    if text.is_empty() {
        return Err(invalid("is empty"));
    }
    if text.len() > MAX_REQUIREMENT_LEN {
        return Err(invalid("is too long"));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid("contains control characters"));
    }
    if text.starts_with('-') {
        // `--index-url …`, `-e …`, `-r file`: pip options are the operator's business.
        return Err(invalid("pip options are not allowed, only requirements"));
    }
    let name_len = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or(text.len());
    let name = project_name(&text[..name_len])
        .ok_or_else(|| invalid("does not start with a package name"))?;
    let mut rest = text[name_len..].trim_start();
    let mut normalized = name;
    if let Some(after) = rest.strip_prefix('[') {
        let close = after
            .find(']')
            .ok_or_else(|| invalid("has an unclosed `[` of extras"))?;
        let mut extras = after[..close]
            .split(',')
            .map(|e| project_name(e.trim()).ok_or_else(|| invalid("has an invalid extra")))
            .collect::<Result<Vec<_>, _>>()?;
        extras.sort();
        extras.dedup();
        normalized.push('[');
        normalized.push_str(&extras.join(","));
        normalized.push(']');
        rest = after[close + 1..].trim_start();
    }
    if let Some(url) = rest.strip_prefix('@') {
        let url = url.trim();
        if url.is_empty() || url.contains(char::is_whitespace) {
            return Err(invalid("has an invalid URL after `@`"));
        }
        normalized.push_str(" @ ");
        normalized.push_str(url);
        return Ok(normalized);
    }
    let (specifier, marker) = match rest.split_once(';') {
        Some((specifier, marker)) => (specifier, Some(marker)),
        None => (rest, None),
    };
    let tokens: Vec<&str> = specifier.split_whitespace().collect();
    // `== 1.2` is fine; `==1 2` is two versions pasted together.
    let glued = tokens.windows(2).any(|pair| {
        pair[0].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '*')
            && pair[1].starts_with(|c: char| c.is_ascii_alphanumeric())
    });
    if glued {
        return Err(invalid("has a space inside a version"));
    }
    let specifier = tokens.concat();
    if !specifier.is_empty() {
        let valid = specifier.starts_with(['<', '>', '=', '!', '~'])
            && specifier.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(
                        c,
                        '.' | '*' | '+' | '!' | '<' | '>' | '=' | '~' | ',' | '_' | '-'
                    )
            });
        if !valid {
            return Err(invalid(
                "has an invalid version specifier (e.g. `==1.2`, `>=2,<3`, `~=2.2`)",
            ));
        }
        normalized.push_str(&specifier);
    }
    if let Some(marker) = marker {
        let marker = marker.split_whitespace().collect::<Vec<_>>().join(" ");
        if marker.is_empty() {
            return Err(invalid("has an empty environment marker after `;`"));
        }
        normalized.push_str("; ");
        normalized.push_str(&marker);
    }
    Ok(normalized)
}

/// PEP 503: lower case, runs of `-`, `_` and `.` become one `-`.
fn project_name(text: &str) -> Option<String> {
    let valid = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid {
        return None;
    }
    let mut name = String::with_capacity(text.len());
    let mut separator = false;
    for c in text.chars() {
        if matches!(c, '.' | '_' | '-') {
            separator = true;
        } else {
            if separator {
                name.push('-');
                separator = false;
            }
            name.push(c.to_ascii_lowercase());
        }
    }
    Some(name)
}

/// Which environment a dependency set needs on top of a sandbox image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvironmentPlan {
    pub hash: String,
    /// The image tag, `runbox-env:<hash>`.
    pub image: String,
}

/// The hash covers the sandbox image too: a new agent or base means new environments,
/// never an old agent under a new server.
pub fn plan_environment(
    config: &Config,
    base_image: &str,
    deps: &DependencySet,
) -> EnvironmentPlan {
    let mut hasher = Sha256::new();
    hasher.update(b"runbox-env-v1\0");
    hasher.update(base_image.as_bytes());
    hasher.update([0]);
    hasher.update(config.pip.index_url.trim().as_bytes());
    for requirement in deps.requirements() {
        hasher.update([0]);
        hasher.update(requirement.as_bytes());
    }
    let hash = hex::encode(hasher.finalize())[..16].to_string();
    EnvironmentPlan {
        image: format!("{ENV_REPOSITORY}:{hash}"),
        hash,
    }
}

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
}

impl BuildFailure {
    fn engine(action: &str, err: impl std::fmt::Display) -> Self {
        BuildFailure {
            message: format!("Docker failed while {action}: {err}"),
            log: String::new(),
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
    let docker = &launcher.docker;
    let config = &launcher.config;
    let base = docker
        .inspect_image(base_image)
        .await
        .map_err(|e| BuildFailure::engine("inspecting the sandbox image", e))?
        .config
        .unwrap_or_default();

    let name = format!(
        "runbox-build-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: name.as_str(),
                platform: None,
            }),
            build_container_config(config, base_image, deps, &launcher.instance),
        )
        .await
        .map_err(|e| BuildFailure::engine("creating the build container", e))?;
    let guard = ContainerGuard::new(docker.clone(), created.id, launcher.tracker.clone(), None);
    docker
        .start_container::<String>(guard.id(), None)
        .await
        .map_err(|e| BuildFailure::engine("starting the build container", e))?;

    let exit = tokio::time::timeout(timeout, wait_exit(docker, guard.id())).await;
    let log = read_log(docker, guard.id()).await;
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
            return Err(BuildFailure {
                message: format!(
                    "installing the dependencies took longer than functions.build_timeout ({})",
                    crate::engine::human_seconds(timeout)
                ),
                log,
            });
        }
    };
    if exit_code != 0 {
        guard.remove().await;
        return Err(BuildFailure {
            message: format!(
                "pip could not install {} (exit code {exit_code}): {}",
                deps.requirements().join(", "),
                last_error_line(&log)
            ),
            log,
        });
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
    let mut image_labels = base.labels.clone().unwrap_or_default();
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
    let image_config = ContainerConfig {
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
    let replaced = docker
        .inspect_image(&plan.image)
        .await
        .ok()
        .and_then(|i| i.id);
    let committed = docker
        .commit_container(
            CommitContainerOptions {
                container: guard.id().to_string(),
                repo: repo.to_string(),
                tag: tag.to_string(),
                comment: format!("runbox environment: {}", deps.requirements().join(" ")),
                author: "runbox".to_string(),
                pause: false,
                changes: None,
            },
            image_config,
        )
        .await;
    guard.remove().await;
    let committed = committed.map_err(|e| BuildFailure {
        log: log.clone(),
        ..BuildFailure::engine("committing the environment image", e)
    })?;
    if let Some(old) = replaced.filter(|old| Some(old) != committed.id.as_ref()) {
        // In use by a running sandbox: it stays dangling until `docker image prune`.
        let _ = docker.remove_image(&old, None, None).await;
    }
    Ok(BuildReport {
        image: plan.image.clone(),
        log,
        duration: started.elapsed(),
    })
}

/// What `runbox image prune` did.
#[derive(Clone, Debug, Default)]
pub struct PruneReport {
    /// Environment images removed (or, in a dry run, that would be).
    pub removed: Vec<String>,
    /// Environment images kept because a function needs them.
    pub kept: Vec<String>,
    /// Images that could not be removed, with the engine's reason (in use, …).
    pub failed: Vec<(String, String)>,
}

/// Removes every environment image (label `runbox.env`) whose hash is not in `keep`.
pub async fn prune_environments(
    docker: &bollard::Docker,
    keep: &std::collections::HashSet<String>,
    dry_run: bool,
) -> Result<PruneReport, crate::SandboxError> {
    let options = bollard::image::ListImagesOptions::<String> {
        all: false,
        filters: HashMap::from([("label".to_string(), vec![ENV_LABEL.to_string()])]),
        ..Default::default()
    };
    let images = docker
        .list_images(Some(options))
        .await
        .map_err(crate::SandboxError::docker("listing environment images"))?;
    let mut report = PruneReport::default();
    for image in images {
        let hash = image.labels.get(ENV_LABEL).cloned().unwrap_or_default();
        let tag = image
            .repo_tags
            .iter()
            .find(|t| t.starts_with(&format!("{ENV_REPOSITORY}:")))
            .cloned();
        // An untagged one was replaced by a rebuild while a sandbox still used it.
        let in_use = tag.is_some() && keep.contains(&hash);
        let name = tag.unwrap_or_else(|| format!("{} (untagged)", image.id));
        if in_use {
            report.kept.push(name);
            continue;
        }
        if dry_run {
            report.removed.push(name);
            continue;
        }
        match docker.remove_image(&image.id, None, None).await {
            Ok(_) => report.removed.push(name),
            Err(err) => report.failed.push((name, err.to_string())),
        }
    }
    Ok(report)
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
    base_image: &str,
    deps: &DependencySet,
    instance: &str,
) -> ContainerConfig<String> {
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
        security_opt: Some(vec!["no-new-privileges".to_string()]),
        init: Some(true),
        network_mode: Some("bridge".to_string()),
        binds: (!binds.is_empty()).then_some(binds),
        ..Default::default()
    };
    if !config.sandbox.runtime.trim().is_empty() {
        host_config.runtime = Some(config.sandbox.runtime.trim().to_string());
    }
    ContainerConfig {
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

async fn wait_exit(docker: &bollard::Docker, id: &str) -> Result<i64, bollard::errors::Error> {
    let mut wait =
        docker.wait_container(id, None::<bollard::container::WaitContainerOptions<String>>);
    match wait.next().await {
        Some(Ok(response)) => Ok(response.status_code),
        // bollard reports a non-zero exit as this error.
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(err)) => Err(err),
        None => {
            let state = docker.inspect_container(id, None).await?.state;
            Ok(state.and_then(|s| s.exit_code).unwrap_or(-1))
        }
    }
}

/// The last lines of the build's stdout and stderr, interleaved as written.
async fn read_log(docker: &bollard::Docker, id: &str) -> String {
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        tail: LOG_TAIL_LINES.to_string(),
        ..Default::default()
    };
    let mut stream = docker.logs(id, Some(options));
    let mut text = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        let bytes = match chunk {
            LogOutput::StdOut { message }
            | LogOutput::StdErr { message }
            | LogOutput::Console { message }
            | LogOutput::StdIn { message } => message,
        };
        text.push_str(&String::from_utf8_lossy(&bytes));
    }
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

    fn normalized(list: &[&str]) -> Vec<String> {
        DependencySet::parse(list)
            .expect("valid")
            .requirements()
            .to_vec()
    }

    #[test]
    fn requirements_are_normalised_sorted_and_deduplicated() {
        assert_eq!(
            normalized(&["Pandas == 2.2.*", "numpy", " numpy ", "Foo_Bar.baz>=1,<2"]),
            vec!["foo-bar-baz>=1,<2", "numpy", "pandas==2.2.*"]
        );
        assert_eq!(
            normalized(&["Requests [Socks, security] ~= 2.31"]),
            vec!["requests[security,socks]~=2.31"]
        );
        assert_eq!(
            normalized(&["tomli; python_version  < \"3.11\""]),
            vec!["tomli; python_version < \"3.11\""]
        );
        assert_eq!(
            normalized(&["pkg @ https://example.org/pkg-1.0.tar.gz"]),
            vec!["pkg @ https://example.org/pkg-1.0.tar.gz"]
        );
    }

    #[test]
    fn options_and_garbage_are_refused() {
        for bad in [
            "",
            "  ",
            "--index-url=http://evil",
            "-e .",
            "numpy; ",
            "numpy ==1 2",
            "numpy$(id)",
            "numpy\nscipy",
            "[extra]",
            "numpy[",
        ] {
            assert!(DependencySet::parse(&[bad]).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_same_set_plans_the_same_image_and_the_base_matters() {
        let config = Config::defaults();
        let a = DependencySet::parse(&["tabulate==0.9.0", "numpy"]).expect("valid");
        let b = DependencySet::parse(&["NumPy", "tabulate == 0.9.0"]).expect("valid");
        let plan = plan_environment(&config, "runbox-sandbox:1", &a);
        assert_eq!(plan, plan_environment(&config, "runbox-sandbox:1", &b));
        assert!(plan.image.starts_with("runbox-env:"));
        assert_ne!(plan, plan_environment(&config, "runbox-sandbox:2", &a));
        let other = DependencySet::parse(&["tabulate==0.8.10", "numpy"]).expect("valid");
        assert_ne!(plan, plan_environment(&config, "runbox-sandbox:1", &other));
    }

    #[test]
    fn the_build_runs_pip_as_root_with_network_and_the_ca_bundle() {
        let mut config = Config::defaults();
        config.pip.extra_ca_bundle = "/etc/ca.pem".into();
        config.pip.index_url = "https://mirror.invalid/simple".into();
        let deps = DependencySet::parse(&["tabulate==0.9.0"]).expect("valid");
        let container = build_container_config(&config, "img", &deps, "inst");
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
