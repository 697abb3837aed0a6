//! The container every sandbox runs in: the limits of API.md, from config.

use std::collections::HashMap;

use bollard::models::{HostConfig, HostConfigLogConfig, PortBinding, ResourcesUlimits};
use runbox_core::config::{Config, Transport};
use runbox_core::isolation::has_own_kernel;

use crate::backend::ContainerSpec;
use crate::labels::{self, ContainerKind};
use crate::network::SANDBOX_NETWORK;
use crate::seccomp::Seccomp;
use crate::SandboxError;

/// Where the agent listens inside the container on the http transport.
pub const AGENT_PORT: u16 = 8080;
pub const WORKDIR: &str = "/workspace";
const SANDBOX_USER: &str = "1000:1000";
/// The agent's entry, compiled at image build (see docker/Dockerfile). A script, not
/// `-m agent`, which would put the work dir first on the agent's sys.path (see
/// docker/agent/__main__.py).
const AGENT_COMMAND: [&str; 3] = ["python3", "-u", "/opt/runbox/agent/__main__.pyc"];

pub struct SandboxSpec<'a> {
    pub config: &'a Config,
    pub image: &'a str,
    /// The OCI runtime; empty: the engine's default.
    pub runtime: &'a str,
    pub instance: &'a str,
    pub kind: ContainerKind,
    pub preload: &'a [String],
    /// The leased host port and the challenge key, for the http transport.
    pub http: Option<(u16, &'a str)>,
    pub seccomp: &'a Seccomp,
}

impl SandboxSpec<'_> {
    pub fn container_config(&self) -> ContainerSpec {
        let limits = &self.config.limits;
        let sandbox = &self.config.sandbox;
        let memory = i64::try_from(limits.memory.bytes()).unwrap_or(i64::MAX);

        let mut env = vec![
            format!("RUNBOX_PRELOAD={}", self.preload.join(",")),
            format!("RUNBOX_WORKDIR={WORKDIR}"),
            format!(
                "RUNBOX_TRANSPORT={}",
                if self.http.is_some() { "http" } else { "stdio" }
            ),
        ];
        let mut labels = HashMap::from([
            (labels::MANAGED.to_string(), "true".to_string()),
            (labels::INSTANCE.to_string(), self.instance.to_string()),
            (labels::KIND.to_string(), self.kind.as_str().to_string()),
        ]);

        // Under gVisor the host sees the sandbox's kernel, not its processes: its threads
        // and per-process stubs count against the host's pids limit (about eight per
        // process on the ptrace platform), and gVisor dies rather than fail a fork when
        // they reach it. There the limit on processes is RLIMIT_NPROC, which gVisor's
        // kernel enforces with EAGAIN, and the host's limit a backstop above what that
        // allows (the memory limit comes first: a process costs gVisor megabytes).
        let own_kernel = has_own_kernel(self.runtime, &sandbox.strong_runtime);
        let (host_pids_limit, nproc) = if own_kernel {
            (
                sandbox.pids_limit.saturating_mul(16).saturating_add(64),
                Some(sandbox.pids_limit),
            )
        } else {
            (sandbox.pids_limit, None)
        };
        let mut ulimits = vec![
            ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(1024),
                hard: Some(1024),
            },
            ResourcesUlimits {
                name: Some("core".into()),
                soft: Some(0),
                hard: Some(0),
            },
        ];
        if let Some(nproc) = nproc {
            ulimits.push(ResourcesUlimits {
                name: Some("nproc".into()),
                soft: Some(nproc),
                hard: Some(nproc),
            });
        }

        let mut host_config = HostConfig {
            memory: Some(memory),
            // Swap equal to memory means no swap at all: an allocation past the limit is
            // an OOM kill, not a machine grinding on swap.
            memory_swap: Some(memory),
            nano_cpus: Some((limits.cpus * 1e9) as i64),
            pids_limit: Some(host_pids_limit),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([
                (
                    WORKDIR.to_string(),
                    format!(
                        "rw,nosuid,nodev,size={},uid=1000,gid=1000,mode=0755",
                        sandbox.workdir_size.bytes()
                    ),
                ),
                (
                    "/tmp".to_string(),
                    format!(
                        "rw,nosuid,nodev,size={},mode=1777",
                        sandbox.tmp_size.bytes()
                    ),
                ),
            ])),
            // /dev/shm is a third writable tmpfs; its size is the engine's default
            // (often 64 MiB, an operator may raise it) unless runbox sets it.
            shm_size: Some(i64::try_from(sandbox.tmp_size.bytes()).unwrap_or(i64::MAX)),
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(if own_kernel {
                self.seccomp.security_opt_own_kernel()
            } else {
                self.seccomp.security_opt()
            }),
            // No docker-init: the agent is pid 1. An init would hold the container's
            // stdio (the stdio transport's channel) in a process the code, running as
            // the same user, could open through /proc/1/fd; the agent, not dumpable,
            // closes its /proc to the code, reaps orphans itself, and as pid 1 cannot be
            // killed from inside the container.
            init: Some(false),
            ulimits: Some(ulimits),
            network_mode: Some("none".to_string()),
            // Output reaches runbox over the attach stream or the agent's port, capped
            // there; the engine keeping its own copy would let untrusted code fill the
            // host's disk (the default json-file driver has no size cap) and costs the
            // engine a write per frame.
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".to_string()),
                config: None,
            }),
            ..Default::default()
        };
        if !self.runtime.trim().is_empty() {
            host_config.runtime = Some(self.runtime.trim().to_string());
        }

        let mut exposed_ports = None;
        if let Some((host_port, key)) = self.http {
            env.push(format!("RUNBOX_AGENT_PORT={AGENT_PORT}"));
            env.push(format!("RUNBOX_AGENT_KEY={key}"));
            labels.insert(labels::HOST_PORT.to_string(), host_port.to_string());
            let container_port = format!("{AGENT_PORT}/tcp");
            // Published on loopback only, from a network of runbox's own where sandboxes
            // cannot reach each other (see network.rs).
            host_config.network_mode = Some(SANDBOX_NETWORK.to_string());
            host_config.port_bindings = Some(HashMap::from([(
                container_port.clone(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(host_port.to_string()),
                }]),
            )]));
            exposed_ports = Some(HashMap::from([(container_port, HashMap::new())]));
        }

        let stdio = self.http.is_none();
        ContainerSpec {
            image: Some(self.image.to_string()),
            cmd: Some(AGENT_COMMAND.iter().map(|arg| arg.to_string()).collect()),
            user: Some(SANDBOX_USER.to_string()),
            working_dir: Some(WORKDIR.to_string()),
            env: Some(env),
            labels: Some(labels),
            attach_stdin: Some(stdio),
            attach_stdout: Some(stdio),
            attach_stderr: Some(stdio),
            open_stdin: Some(stdio),
            // The agent's stdin closes with runbox's attach stream, and the agent then
            // exits: a finished sandbox (or one whose runbox went away) ends by itself,
            // which costs the engine less than killing it.
            stdin_once: Some(stdio),
            tty: Some(false),
            network_disabled: Some(stdio),
            exposed_ports,
            host_config: Some(host_config),
            ..Default::default()
        }
    }
}

/// The container of a one-shot stdio sandbox of `image`, of `kind`: every limit a
/// sandbox gets. What the bench's bare containers start from rather than restating it.
pub fn stdio_sandbox_spec(
    config: &Config,
    image: &str,
    instance: &str,
    kind: ContainerKind,
) -> Result<ContainerSpec, SandboxError> {
    let seccomp = Seccomp::from_config(config)?;
    Ok(SandboxSpec {
        config,
        image,
        runtime: &config.sandbox.runtime,
        instance,
        kind,
        preload: &[],
        http: None,
        seccomp: &seccomp,
    }
    .container_config())
}

/// The body runbox sends the engine to create a one-shot stdio sandbox of `image` (what
/// `runbox image spec` prints): every limit a sandbox gets, for an audit, and what a
/// script that measures bare containers starts from rather than restating it.
pub fn stdio_sandbox_body(
    config: &Config,
    image: &str,
    instance: &str,
) -> Result<serde_json::Value, SandboxError> {
    let spec = stdio_sandbox_spec(config, image, instance, ContainerKind::OnDemand)?;
    serde_json::to_value(spec)
        .map_err(|err| SandboxError::Protocol(format!("cannot encode the container spec: {err}")))
}

/// Whether this config runs the http transport.
pub fn uses_http(config: &Config) -> bool {
    config.sandbox.transport == Transport::Http
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec of a pooled stdio sandbox of image `img`.
    fn pool_spec<'a>(config: &'a Config, seccomp: &'a Seccomp) -> SandboxSpec<'a> {
        SandboxSpec {
            config,
            image: "img",
            runtime: &config.sandbox.runtime,
            instance: "test",
            kind: ContainerKind::Pool,
            preload: &[],
            http: None,
            seccomp,
        }
    }

    fn seccomp(config: &Config) -> Seccomp {
        Seccomp::from_config(config).expect("the profile")
    }

    #[test]
    fn sandboxes_run_the_command_the_image_names() {
        let config = Config::defaults();
        let seccomp = seccomp(&config);
        let spec = pool_spec(&config, &seccomp);
        let cmd = spec.container_config().cmd.expect("a command");
        assert_eq!(cmd, AGENT_COMMAND);
        // The image's own CMD is the same, so that a sandbox image started by hand runs
        // the agent as runbox does.
        let dockerfile = include_str!("../../../docker/Dockerfile");
        let quoted: Vec<String> = AGENT_COMMAND.iter().map(|arg| format!("{arg:?}")).collect();
        let line = format!("CMD [{}]", quoted.join(", "));
        assert!(
            dockerfile.lines().any(|l| l == line),
            "docker/Dockerfile: {line}"
        );
    }

    #[test]
    fn every_sandbox_gets_the_documented_limits() {
        let config = Config::defaults();
        let seccomp = seccomp(&config);
        let spec = pool_spec(&config, &seccomp);
        let container = spec.container_config();
        assert_eq!(
            container.stdin_once,
            Some(true),
            "the agent's stdin closes with the attach stream, so a finished sandbox ends by itself"
        );
        let host = container.host_config.expect("host config");
        assert_eq!(host.memory, Some(512 * 1024 * 1024));
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(host.nano_cpus, Some(1_000_000_000));
        assert_eq!(host.pids_limit, Some(128));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.init, Some(false), "the agent is pid 1");
        assert_eq!(host.shm_size, Some(64 * 1024 * 1024));
        assert_eq!(host.runtime, None, "the engine's default runtime");
        let log = host.log_config.expect("log config");
        assert_eq!(log.typ.as_deref(), Some("none"), "no engine copy of output");
        let options = host.security_opt.expect("security options");
        assert_eq!(options[0], "no-new-privileges");
        let inline = options[1].strip_prefix("seccomp=").expect("a profile");
        let sent: serde_json::Value = serde_json::from_str(inline).expect("JSON");
        let own: serde_json::Value = serde_json::from_str(crate::RUNBOX_PROFILE).expect("JSON");
        assert_eq!(sent, own, "runbox's own profile, inline");
        assert_eq!(container.user.as_deref(), Some("1000:1000"));
        let labels = container.labels.expect("labels");
        assert_eq!(
            labels.get(labels::MANAGED).map(String::as_str),
            Some("true")
        );
        assert_eq!(
            labels.get(labels::INSTANCE).map(String::as_str),
            Some("test")
        );
    }

    #[test]
    fn http_sandboxes_publish_on_loopback_only() {
        let config = Config::defaults();
        let seccomp = seccomp(&config);
        let spec = SandboxSpec {
            config: &config,
            image: "img",
            runtime: "",
            instance: "test",
            kind: ContainerKind::OnDemand,
            preload: &[],
            http: Some((18001, "key")),
            seccomp: &seccomp,
        };
        let host = spec.container_config().host_config.expect("host config");
        let bindings = host.port_bindings.expect("bindings");
        let binding = &bindings["8080/tcp"].as_ref().expect("binding")[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some("18001"));
    }

    #[test]
    fn the_printed_spec_is_the_engine_api_body_of_a_sandbox() {
        let config = Config::defaults();
        let body = stdio_sandbox_body(&config, "img", "audit").expect("encodes");
        assert_eq!(body["Image"], "img");
        assert_eq!(body["User"], "1000:1000");
        assert_eq!(body["Cmd"][0], "python3");
        assert_eq!(body["OpenStdin"], true);
        assert_eq!(body["StdinOnce"], true);
        assert_eq!(body["Labels"][labels::INSTANCE], "audit");
        let host = &body["HostConfig"];
        assert_eq!(host["Memory"], 512 * 1024 * 1024);
        assert_eq!(host["NetworkMode"], "none");
        assert_eq!(host["ReadonlyRootfs"], true);
        assert_eq!(host["CapDrop"][0], "ALL");
        assert_eq!(host["LogConfig"]["Type"], "none");
        let profile = host["SecurityOpt"][1].as_str().expect("a profile");
        assert!(profile.starts_with("seccomp={"), "{profile}");
    }

    #[test]
    fn a_configured_runtime_is_passed_through() {
        let mut config = Config::defaults();
        config.sandbox.runtime = " runsc ".into();
        let seccomp = seccomp(&config);
        let spec = pool_spec(&config, &seccomp);
        let host = spec.container_config().host_config.expect("host config");
        assert_eq!(host.runtime.as_deref(), Some("runsc"));
        // The other limits stay as they are under any runtime.
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.network_mode.as_deref(), Some("none"));
    }

    /// The profile's rule for clone3, as sent.
    fn clone3_action(host: &HostConfig) -> String {
        let options = host.security_opt.clone().expect("security options");
        let profile = options
            .iter()
            .find_map(|option| option.strip_prefix("seccomp="))
            .expect("a profile");
        let profile: serde_json::Value = serde_json::from_str(profile).expect("JSON");
        let rules = profile["syscalls"].as_array().expect("syscalls");
        let clone3 = rules
            .iter()
            .find(|rule| rule["names"] == serde_json::json!(["clone3"]))
            .expect("a clone3 rule");
        clone3["action"].as_str().expect("an action").to_string()
    }

    #[test]
    fn under_gvisor_processes_are_limited_by_its_kernel() {
        let mut config = Config::defaults();
        config.sandbox.pids_limit = 64;
        let seccomp = seccomp(&config);
        for (runtime, host_pids, nproc, clone3) in [
            ("", 64, None, "SCMP_ACT_ERRNO"),
            ("crun", 64, None, "SCMP_ACT_ERRNO"),
            ("runsc", 64 * 16 + 64, Some(64), "SCMP_ACT_ALLOW"),
        ] {
            let mut spec = pool_spec(&config, &seccomp);
            spec.runtime = runtime;
            let host = spec.container_config().host_config.expect("host config");
            assert_eq!(host.pids_limit, Some(host_pids), "{runtime}");
            let ulimits = host.ulimits.clone().expect("ulimits");
            let found = ulimits
                .iter()
                .find(|limit| limit.name.as_deref() == Some("nproc"))
                .map(|limit| (limit.soft, limit.hard));
            assert_eq!(found, nproc.map(|n| (Some(n), Some(n))), "{runtime}");
            assert_eq!(clone3_action(&host), clone3, "{runtime}");
        }
    }
}
