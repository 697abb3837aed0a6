//! One started container with a ready agent: how it is launched and how code runs in it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bollard::container::{Config as ContainerConfig, CreateContainerOptions, WaitContainerOptions};
use bollard::Docker;
use futures::StreamExt;
use rand::RngCore;
use runbox_core::{Config, ErrorKind, ExecEvent, ExecOutcome, ExecRequest};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::docker::{blame_the_engine, engine_answers};
use crate::guard::{remove_until_gone, ContainerGuard, LiveContainers};
use crate::labels::ContainerKind;
use crate::pool::Loan;
use crate::ports::PortLeases;
use crate::protocol::{ExecMessage, OutputCaps};
use crate::spec::{uses_http, SandboxSpec};
use crate::transport::{Connection, EventForwarder, ExecEnd, HttpConnection, StdioConnection};
use crate::SandboxError;

/// How long after a run's limit runbox waits for the agent, which stops the code at the
/// limit itself, before it kills the sandbox (and loses the output) on its own.
pub(crate) const AGENT_TIMEOUT_GRACE: Duration = Duration::from_secs(2);

/// A leased port can be taken by another program between lease and start; try a few.
const PORT_ATTEMPTS: usize = 3;
/// How long a finished stdio sandbox may take to exit by itself before it is killed.
/// The agent exits as soon as its stdin closes; this covers a slow engine.
const FINISH_GRACE: Duration = Duration::from_secs(1);

/// Creates sandboxes. Shared by the pools, the cold path and sessions.
pub(crate) struct Launcher {
    pub docker: Docker,
    pub config: Arc<Config>,
    pub instance: String,
    pub ports: PortLeases,
    pub tracker: TaskTracker,
    pub http_client: reqwest::Client,
    pub live: LiveContainers,
}

impl Launcher {
    pub fn caps(&self) -> OutputCaps {
        OutputCaps {
            output_bytes: self.config.limits.output_bytes.bytes(),
            output_kill_bytes: self.config.limits.output_kill_bytes.bytes(),
            image_bytes: self.config.limits.image_bytes.bytes(),
        }
    }

    /// Creates and starts a container of `image` and waits until its agent is ready.
    /// Whatever fails, the container is removed (its guard is dropped).
    pub async fn launch(
        &self,
        image: &str,
        kind: ContainerKind,
        preload: &[String],
    ) -> Result<Sandbox, SandboxError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.launch_once(image, kind, preload).await {
                Err(SandboxError::PortTaken(port)) if attempt < PORT_ATTEMPTS => {
                    tracing::warn!(
                        port,
                        "a leased port is used by another program; trying another"
                    );
                }
                Err(err @ (SandboxError::ImageMissing(_) | SandboxError::ImageWithoutAgent(_))) => {
                    return Err(err)
                }
                Err(err) => return Err(blame_the_engine(&self.docker, err).await),
                ok => return ok,
            }
        }
    }

    async fn launch_once(
        &self,
        image: &str,
        kind: ContainerKind,
        preload: &[String],
    ) -> Result<Sandbox, SandboxError> {
        let started = Instant::now();
        let http = uses_http(&self.config);
        let lease = if http {
            Some(self.ports.lease()?)
        } else {
            None
        };
        let key = random_key();
        let spec = SandboxSpec {
            config: &self.config,
            image,
            instance: &self.instance,
            kind,
            preload,
            http: lease.as_ref().map(|l| (l.port(), key.as_str())),
        };
        let host_port = lease.as_ref().map(|l| l.port());
        let name = format!(
            "runbox-{}-{}",
            kind.as_str(),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let id = self.create(name, spec.container_config(), image).await?;
        let guard = ContainerGuard::new(
            self.docker.clone(),
            id,
            self.tracker.clone(),
            lease,
            &self.live,
        );
        let max_frame = self.caps().max_frame();
        let mut conn = match host_port {
            Some(port) => Connection::Http(HttpConnection::new(
                self.http_client.clone(),
                port,
                key,
                max_frame,
            )),
            None => Connection::Stdio(
                StdioConnection::attach(&self.docker, guard.id(), max_frame).await?,
            ),
        };
        if let Err(err) = self
            .docker
            .start_container::<String>(guard.id(), None)
            .await
        {
            let text = err.to_string();
            if let Some(port) = host_port.filter(|_| {
                text.contains("address already in use")
                    || text.contains("port is already allocated")
            }) {
                return Err(SandboxError::PortTaken(port));
            }
            return Err(SandboxError::Docker {
                action: "starting a sandbox",
                source: err,
            });
        }
        if let Connection::Http(http) = &mut conn {
            http.watch_exit(&self.docker, guard.id());
        }
        let startup = self.config.sandbox.startup_timeout.get();
        let preloaded = match conn.wait_ready(startup).await {
            Ok(preloaded) => preloaded,
            Err(SandboxError::AgentExited(diagnostics)) => {
                return Err(SandboxError::AgentExited(diagnostics))
            }
            Err(err) => {
                let diagnostics = conn.diagnostics();
                if !diagnostics.is_empty() {
                    tracing::warn!(%diagnostics, "sandbox agent did not start");
                }
                return Err(err);
            }
        };
        tracing::debug!(
            container = %guard.id(),
            kind = kind.as_str(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            preloaded = ?preloaded,
            "sandbox ready"
        );
        Ok(Sandbox {
            guard,
            conn,
            docker: self.docker.clone(),
            idle_since: Instant::now(),
            preloaded: !preload.is_empty(),
            loan: None,
            memory_limit: self.config.limits.memory.to_string(),
            lost: false,
        })
    }
}

impl Launcher {
    /// Creates the container in a task of its own. A caller dropped while the engine is
    /// creating it (a cancelled request, a shutdown) would leave a container nobody
    /// knows the id of; the task removes such an orphan instead, and shutdown waits
    /// for it.
    async fn create(
        &self,
        name: String,
        config: ContainerConfig<String>,
        image: &str,
    ) -> Result<String, SandboxError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let docker = self.docker.clone();
        self.tracker.spawn(async move {
            let options = CreateContainerOptions {
                name: name.as_str(),
                platform: None,
            };
            let created = docker.create_container(Some(options), config).await;
            if let Err(Ok(orphan)) = tx.send(created) {
                remove_until_gone(&docker, &orphan.id, ()).await;
            }
        });
        match rx.await {
            Ok(Ok(created)) => Ok(created.id),
            Ok(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            })) => Err(SandboxError::ImageMissing(image.to_string())),
            Ok(Err(source)) => Err(SandboxError::Docker {
                action: "creating a sandbox",
                source,
            }),
            Err(_) => Err(SandboxError::ShuttingDown),
        }
    }
}

fn random_key() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A started container whose agent is ready. Used for exactly one request (or one
/// session) and then removed.
pub(crate) struct Sandbox {
    guard: ContainerGuard,
    conn: Connection,
    docker: Docker,
    pub idle_since: Instant,
    /// Started with the modules its pool preloads (see pool.rs for when it is not).
    pub preloaded: bool,
    /// Set while a sandbox taken from a pool is in use; dropped with the sandbox.
    pub loan: Option<Loan>,
    memory_limit: String,
    /// Set once the agent went away during an exec.
    lost: bool,
}

impl Sandbox {
    pub fn id(&self) -> &str {
        self.guard.id()
    }

    pub fn seems_alive(&self) -> bool {
        !self.lost && self.conn.seems_alive()
    }

    pub async fn ping(&mut self, within: Duration) -> bool {
        self.conn.ping(within).await
    }

    /// Runs `request` and returns its outcome. Failures of the user's code are in the
    /// outcome; `Err` is a failure of runbox's machinery (the agent broke the protocol).
    /// The caller enforces the timeout.
    pub async fn exec(
        &mut self,
        request: &ExecRequest,
        caps: OutputCaps,
        persistent: bool,
        events: Option<&mpsc::Sender<ExecEvent>>,
    ) -> Result<ExecOutcome, SandboxError> {
        let started = Instant::now();
        let started_at = SystemTime::now();
        let message = ExecMessage::new(request, caps, events.is_some(), persistent);
        let mut forwarder = EventForwarder::new(events, caps.output_bytes);
        let end = match self.conn.exec(&message, &mut forwarder).await {
            Ok(end) => end,
            Err(err) => match blame_the_engine(&self.docker, err).await {
                // What comes out of the container is the code's doing, or its agent's
                // after the code tampered with it: the run's failure, never runbox's.
                SandboxError::Protocol(why) => {
                    self.lost = true;
                    tracing::warn!(container = %self.id(), %why, "a sandbox broke the protocol; it is destroyed");
                    let mut outcome = ExecOutcome::failed(
                        ErrorKind::Sandbox,
                        format!("the sandbox broke runbox's protocol ({why}); it was destroyed"),
                    );
                    outcome.execution_time = started.elapsed();
                    return Ok(outcome);
                }
                other => return Err(other),
            },
        };
        self.idle_since = Instant::now();
        match end {
            ExecEnd::Result(result) => {
                if result.session_ended {
                    self.lost = true;
                }
                Ok(result.into_outcome(caps))
            }
            ExecEnd::Lost => {
                self.lost = true;
                let diagnostics = self.conn.diagnostics();
                let mut outcome = lost_outcome(
                    &self.docker,
                    self.guard.id(),
                    &self.memory_limit,
                    diagnostics,
                    started_at,
                )
                .await?;
                outcome.execution_time = started.elapsed();
                Ok(outcome)
            }
        }
    }

    /// Kills and removes the container and waits until it is gone.
    pub async fn remove(self) {
        let Sandbox { guard, conn, .. } = self;
        drop(conn);
        guard.remove().await;
    }

    /// Ends a sandbox whose run is over, off the request's critical path. Over stdio
    /// the agent's stdin closes with the attach stream and the agent exits, so the
    /// container ends by itself before it is removed; over http it is removed at once.
    pub fn finish(self) {
        let Sandbox { guard, conn, .. } = self;
        let stdio = matches!(conn, Connection::Stdio(_));
        drop(conn);
        if stdio {
            guard.remove_once_exited(FINISH_GRACE);
        } else {
            guard.remove_in_background();
        }
    }

    /// Removes the container in the background (off the request's critical path).
    pub fn discard(self) {
        let Sandbox { guard, conn, .. } = self;
        drop(conn);
        guard.remove_in_background();
    }
}

/// The agent vanished mid-run: the container was OOM-killed, or the code killed it —
/// or the engine went away with the stream, which is no outcome of the code at all.
async fn lost_outcome(
    docker: &Docker,
    id: &str,
    memory_limit: &str,
    diagnostics: String,
    exec_started: SystemTime,
) -> Result<ExecOutcome, SandboxError> {
    // The engine records the exit (and the OOM flag) a moment after the stream ends.
    let mut wait = docker.wait_container(id, None::<WaitContainerOptions<String>>);
    let _ = tokio::time::timeout(Duration::from_secs(2), wait.next()).await;
    let state = match docker.inspect_container(id, None).await {
        Ok(container) => container.state,
        Err(err) => {
            let err = SandboxError::Docker {
                action: "inspecting a sandbox whose agent went away",
                source: err,
            };
            if let Err(why) = engine_answers(docker).await {
                return Err(SandboxError::DockerUnavailable(format!("{why} ({err})")));
            }
            None
        }
    };
    let finished = state
        .as_ref()
        .and_then(|s| s.finished_at.as_deref())
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .map(SystemTime::from);
    if finished.is_some_and(|at| at < exec_started) {
        // It died while it waited in the pool: the code never reached it.
        return Err(SandboxError::DiedBeforeUse);
    }
    let oom = state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false);
    if oom {
        return Ok(ExecOutcome::failed(
            ErrorKind::Memory,
            format!("the sandbox ran out of memory (limit {memory_limit}) and was killed"),
        ));
    }
    let mut message = "the sandbox's agent was killed before it could report a result".to_string();
    if let Some(code) = state.and_then(|s| s.exit_code) {
        message.push_str(&format!(" (exit code {code})"));
    }
    if !diagnostics.is_empty() {
        tracing::debug!(%diagnostics, "agent diagnostics of a lost sandbox");
    }
    Ok(ExecOutcome::failed(ErrorKind::Killed, message))
}
