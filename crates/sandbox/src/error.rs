use std::time::Duration;

use crate::backend::BackendError;

/// Failures of runbox's own machinery. What user code does wrong is never one of these:
/// it is an `ExecOutcome` with an `error`.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot reach the Docker engine: {0}")]
    DockerUnavailable(String),
    #[error("Docker failed while {action}: {source}")]
    Docker {
        action: &'static str,
        #[source]
        source: BackendError,
    },
    #[error("sandbox image `{0}` is missing; build it with `runbox image build`")]
    ImageMissing(String),
    #[error("sandbox image `{0}` was not built by runbox (it has no runbox.agent label); rebuild it with `runbox image build`")]
    ImageWithoutAgent(String),
    #[error("building the sandbox image failed: {0}")]
    ImageBuild(String),
    #[error("the sandbox agent did not become ready within {0:?}")]
    AgentStartup(Duration),
    #[error("the sandbox agent broke the protocol: {0}")]
    Protocol(String),
    #[error("no free host port left in sandbox.port_range {start}-{end}")]
    PortsExhausted { start: u16, end: u16 },
    #[error("leased port {0} is in use by another program")]
    PortTaken(u16),
    #[error("the sandbox agent exited during start-up: {0}")]
    AgentExited(String),
    /// The sandbox's container had stopped before the code was sent: nothing ran, and
    /// the run may go to another sandbox.
    #[error("the sandbox died before it was used")]
    DiedBeforeUse,
    #[error("the session has ended")]
    SessionEnded,
    #[error("runbox is shutting down")]
    ShuttingDown,
    /// A run asked for an isolation tier (or runtime) the engine does not offer.
    #[error("no engine offers isolation `{asked}` (the OCI runtime `{runtime}`); the engine has: {}", if offered.is_empty() { "no runtime it names".to_string() } else { offered.join(", ") })]
    IsolationUnavailable {
        asked: String,
        runtime: String,
        offered: Vec<String>,
    },
    #[error("sandbox.seccomp: {0}")]
    Seccomp(String),
    /// The http transport's sandboxes could reach the host's services, and the
    /// configuration does not accept that.
    #[error("the http transport would leave the host open to sandboxes: {why}. Fix: {fix}; or set sandbox.allow_host_network_access: true to accept it")]
    HostOpen { why: String, fix: String },
}

impl SandboxError {
    pub(crate) fn docker(action: &'static str) -> impl FnOnce(BackendError) -> Self {
        move |source| SandboxError::Docker { action, source }
    }

    /// True when the failure is the engine being away or overloaded rather than a bug:
    /// callers answer 503 and may retry.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            SandboxError::DockerUnavailable(_)
                | SandboxError::Docker { .. }
                | SandboxError::AgentStartup(_)
                | SandboxError::PortsExhausted { .. }
                | SandboxError::PortTaken(_)
                | SandboxError::DiedBeforeUse
                | SandboxError::ShuttingDown
        )
    }
}
