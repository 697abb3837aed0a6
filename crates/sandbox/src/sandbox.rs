//! One started container with a ready agent: how it is launched and how code runs in it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::RngCore;
use runbox_core::units::human_seconds;
use runbox_core::{Config, ErrorKind, ExecEvent, ExecOutcome, ExecRequest};
use tokio::sync::mpsc;

use crate::backend::{Backend, BackendError};
use crate::containers::Containers;
use crate::guard::ContainerGuard;
use crate::labels::ContainerKind;
use crate::placement::Placement;
use crate::ports::PortLeases;
use crate::protocol::{ExecMessage, OutputCaps};
use crate::seccomp::Seccomp;
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
/// How long a run that ended its sandbox (a timeout, a cancel) waits for the container
/// to be gone before it answers: under runc a removal takes a fraction of a second, so
/// the code has stopped before its client hears; a gVisor sandbox full of processes
/// can take the engine far longer, and that part is left to the background.
const REMOVAL_WAIT: Duration = Duration::from_secs(3);

/// Creates sandboxes. Shared by the pools, the cold path and sessions.
pub(crate) struct Launcher {
    pub containers: Containers,
    pub config: Arc<Config>,
    pub instance: String,
    pub ports: PortLeases,
    pub http_client: reqwest::Client,
    pub seccomp: Seccomp,
}

impl Launcher {
    pub fn engine(&self) -> &dyn Backend {
        self.containers.engine().as_ref()
    }

    pub fn caps(&self) -> OutputCaps {
        OutputCaps {
            output_bytes: self.config.limits.output_bytes.bytes(),
            output_kill_bytes: self.config.limits.output_kill_bytes.bytes(),
            image_bytes: self.config.limits.image_bytes.bytes(),
            outputs_bytes: self.config.limits.outputs_bytes.bytes(),
        }
    }

    /// Creates and starts a container of `image` and waits until its agent is ready.
    /// Whatever fails, the container is removed (its guard is dropped).
    pub async fn launch(
        &self,
        placement: &Placement,
        kind: ContainerKind,
        preload: &[String],
    ) -> Result<Sandbox, SandboxError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.launch_once(placement, kind, preload).await {
                Err(SandboxError::PortTaken(port)) if attempt < PORT_ATTEMPTS => {
                    tracing::warn!(
                        port,
                        "a leased port is used by another program; trying another"
                    );
                }
                Err(err @ (SandboxError::ImageMissing(_) | SandboxError::ImageWithoutAgent(_))) => {
                    return Err(err)
                }
                Err(err) => return Err(blame_the_engine(self.engine(), err).await),
                ok => return ok,
            }
        }
    }

    async fn launch_once(
        &self,
        placement: &Placement,
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
            image: &placement.image,
            runtime: &placement.runtime,
            instance: &self.instance,
            kind,
            preload,
            http: lease.as_ref().map(|l| (l.port(), key.as_str())),
            seccomp: &self.seccomp,
        };
        let host_port = lease.as_ref().map(|l| l.port());
        let guard = self
            .containers
            .create_holding(kind, spec.container_config(), lease)
            .await?;
        let max_frame = self.caps().max_frame();
        let mut conn = match host_port {
            Some(port) => Connection::Http(HttpConnection::new(
                self.http_client.clone(),
                port,
                key,
                max_frame,
            )),
            None => Connection::Stdio(
                StdioConnection::attach(self.engine(), guard.id(), max_frame).await?,
            ),
        };
        if let Err(err) = self.engine().start(guard.id()).await {
            if let (BackendError::PortAllocated(_), Some(port)) = (&err, host_port) {
                return Err(SandboxError::PortTaken(port));
            }
            return Err(SandboxError::Docker {
                action: "starting a sandbox",
                source: err,
            });
        }
        if let Connection::Http(http) = &mut conn {
            http.watch_exit(self.containers.engine().clone(), guard.id());
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
            engine: self.containers.engine().clone(),
            idle_since: Instant::now(),
            preloaded: !preload.is_empty(),
            loan: None,
            memory_limit: self.config.limits.memory.to_string(),
            lost: false,
        })
    }
}

/// How long a check of "is the engine still there?" may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the engine answers a ping: when something broke under a sandbox, this tells
/// the engine going away (a 503 for the client) from the sandbox breaking.
async fn engine_answers(engine: &dyn Backend) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, engine.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}

/// `err` as it is when the engine answers, else the engine's absence, which is what the
/// caller must hear about.
async fn blame_the_engine(engine: &dyn Backend, err: SandboxError) -> SandboxError {
    if err.is_unavailable() {
        return err;
    }
    match engine_answers(engine).await {
        Ok(()) => err,
        Err(why) => SandboxError::DockerUnavailable(format!("{why} ({err})")),
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
    engine: Arc<dyn Backend>,
    pub idle_since: Instant,
    /// Started with the modules its pool preloads (see pool.rs for when it is not).
    pub preloaded: bool,
    /// Set while a sandbox taken from a pool is in use (the pool counts its loans by
    /// it); dropped with the sandbox.
    pub loan: Option<Box<dyn Send + Sync>>,
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

    /// Runs `request` under its time limit and returns its outcome. Failures of the
    /// user's code are in the outcome; `Err` is a failure of runbox's machinery. The agent
    /// stops the code at `request.timeout` and answers with what it wrote by then; when no
    /// answer comes within [`AGENT_TIMEOUT_GRACE`] after that, runbox gives up on the
    /// agent: the outcome is a `timeout` and the sandbox is lost (its caller removes it).
    /// The one place a run's time limit is enforced, for one-shot runs and sessions alike.
    pub async fn exec(
        &mut self,
        request: &ExecRequest,
        caps: OutputCaps,
        persistent: bool,
        events: Option<&mpsc::Sender<ExecEvent>>,
    ) -> Result<ExecOutcome, SandboxError> {
        let started = Instant::now();
        let limit = request.timeout + AGENT_TIMEOUT_GRACE;
        let answered = tokio::time::timeout(
            limit,
            self.exec_unbounded(request, caps, persistent, events),
        )
        .await;
        match answered {
            Ok(ran) => ran,
            Err(_elapsed) => {
                self.lost = true;
                let mut outcome = ExecOutcome::failed(
                    ErrorKind::Timeout,
                    format!(
                        "execution exceeded the time limit of {}",
                        human_seconds(request.timeout)
                    ),
                );
                outcome.execution_time = started.elapsed();
                Ok(outcome)
            }
        }
    }

    async fn exec_unbounded(
        &mut self,
        request: &ExecRequest,
        caps: OutputCaps,
        persistent: bool,
        events: Option<&mpsc::Sender<ExecEvent>>,
    ) -> Result<ExecOutcome, SandboxError> {
        let started = Instant::now();
        let started_at = SystemTime::now();
        let message = ExecMessage::new(request, caps, events.is_some(), persistent);
        let mut forwarder = EventForwarder::new(events, caps);
        let end = match self.conn.exec(&message, &mut forwarder).await {
            Ok(end) => end,
            Err(err) => match blame_the_engine(self.engine.as_ref(), err).await {
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
                    self.engine.as_ref(),
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

    /// Kills and removes the container and waits until it is gone, or for
    /// `REMOVAL_WAIT` at most (then it goes in the background).
    pub async fn remove(self) {
        let Sandbox { guard, conn, .. } = self;
        drop(conn);
        guard.remove_within(REMOVAL_WAIT).await;
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
    engine: &dyn Backend,
    id: &str,
    memory_limit: &str,
    diagnostics: String,
    exec_started: SystemTime,
) -> Result<ExecOutcome, SandboxError> {
    // The engine records the exit (and the OOM flag) a moment after the stream ends.
    let _ = tokio::time::timeout(Duration::from_secs(2), engine.wait(id)).await;
    let state = match engine.inspect(id).await {
        Ok(state) => Some(state),
        Err(err) => {
            let err = SandboxError::Docker {
                action: "inspecting a sandbox whose agent went away",
                source: err,
            };
            if let Err(why) = engine_answers(engine).await {
                return Err(SandboxError::DockerUnavailable(format!("{why} ({err})")));
            }
            None
        }
    };
    let finished = state.as_ref().and_then(|s| s.finished_at);
    if finished.is_some_and(|at| at < exec_started) {
        // It died while it waited in the pool: the code never reached it.
        return Err(SandboxError::DiedBeforeUse);
    }
    let oom = state.as_ref().is_some_and(|s| s.oom_killed);
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
