//! The failures of runbox's domain. A failure of the user's code is never one of these:
//! it is a result (`success: false`). Each variant names what went wrong in the
//! domain's words; the HTTP surface turns each into exactly one status and body
//! (`From<RuntimeError> for ApiError`), and any other surface does the same in its own
//! terms. The lower crates' errors are sorted into these here, once.

use runbox_sandbox::SandboxError;
use runbox_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::sessions::SessionError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Admission could not start the work within `admission.max_wait`.
    #[error("Request timed out")]
    Overloaded,
    #[error("runbox is shutting down")]
    ShuttingDown,
    /// A bearer token that is unknown, badly signed, expired or revoked.
    #[error("Invalid token")]
    InvalidToken,
    /// The caller's token lacks the scope the operation needs.
    #[error("Insufficient scope")]
    InsufficientScope(&'static str),
    /// What the request names does not exist (or is someone else's).
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts what exists: a session running another execution, a
    /// function name that is taken, a task that has already finished.
    #[error("{0}")]
    Conflict(String),
    /// It existed and has ended: a session that timed out or crashed.
    #[error("{0}")]
    Gone(String),
    /// The caller holds `max` live sessions; one ends within `retry_after` s.
    #[error("too many live sessions: at most {max} per subject")]
    TooManySessions { max: usize, retry_after: u64 },
    /// A stored function runs `limit` calls already.
    #[error("Over Max Concurrency {limit}")]
    OverConcurrency { limit: usize },
    /// A function definition or call the domain refuses (an argument that does not
    /// fit, code that does not load): the caller's to fix, before anything ran for it.
    #[error("{}", .0.message)]
    Rejected(Box<Rejection>),
    /// A value the store refuses (too large, malformed).
    #[error("{0}")]
    InvalidInput(String),
    /// An isolation tier or OCI runtime no engine offers: refused, never run at less.
    /// The caller's to change (or the operator's to install), so not "try later".
    #[error("{0}")]
    IsolationNotOffered(String),
    /// The engine, a host port, a dependency build or the database cannot serve now;
    /// asking again later may work.
    #[error("{0}")]
    Unavailable(String),
    /// runbox itself failed.
    #[error("{0}")]
    Internal(String),
}

// Why a definition or a call was refused, before anything ran for it or because the
// code failed its check. (A plain comment: the schema has no description.)
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[schema(as = RejectionDetail)]
pub struct Rejection {
    /// `invalid_definition`, `invalid_args`, `dependency`, or how the code's check failed
    /// (`syntax`, `runtime`, `timeout`, …).
    pub kind: String,
    pub message: String,
    /// The field of the definition at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The argument at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argument: Option<String>,
    /// pip's output, for `dependency`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
}

impl Rejection {
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        Rejection {
            kind: kind.to_string(),
            message: message.into(),
            ..Rejection::default()
        }
    }
}

impl From<Rejection> for RuntimeError {
    fn from(rejection: Rejection) -> Self {
        RuntimeError::Rejected(Box::new(rejection))
    }
}

impl From<SandboxError> for RuntimeError {
    fn from(err: SandboxError) -> Self {
        match err {
            SandboxError::PortsExhausted { .. } | SandboxError::PortTaken(_) => {
                RuntimeError::Unavailable(format!("no sandbox can be started right now: {err}"))
            }
            err if err.is_unavailable() => {
                RuntimeError::Unavailable(format!("sandbox unavailable: {err}"))
            }
            SandboxError::IsolationUnavailable { .. } => {
                RuntimeError::IsolationNotOffered(err.to_string())
            }
            SandboxError::ImageMissing(_) | SandboxError::ImageWithoutAgent(_) => {
                RuntimeError::Unavailable(err.to_string())
            }
            other => RuntimeError::Internal(format!("sandbox failure: {other}")),
        }
    }
}

impl From<StoreError> for RuntimeError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::InvalidInput(message) => RuntimeError::InvalidInput(message),
            other => RuntimeError::Unavailable(format!("database unavailable: {other}")),
        }
    }
}

impl From<SessionError> for RuntimeError {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::NotFound => RuntimeError::NotFound(err.to_string()),
            SessionError::Ended(_) => RuntimeError::Gone(err.to_string()),
            SessionError::Busy => RuntimeError::Conflict(err.to_string()),
            SessionError::TooMany { max, retry_after } => {
                RuntimeError::TooManySessions { max, retry_after }
            }
            SessionError::ShuttingDown => RuntimeError::ShuttingDown,
            SessionError::Sandbox(err) => RuntimeError::from(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_away_is_unavailable_and_a_broken_agent_is_internal() {
        let away = RuntimeError::from(SandboxError::DockerUnavailable("gone".into()));
        assert!(
            matches!(away, RuntimeError::Unavailable(m) if m.starts_with("sandbox unavailable"))
        );
        let ports = RuntimeError::from(SandboxError::PortsExhausted { start: 1, end: 2 });
        assert!(matches!(ports, RuntimeError::Unavailable(m) if m.starts_with("no sandbox")));
        let broken = RuntimeError::from(SandboxError::Protocol("garbage".into()));
        assert!(matches!(broken, RuntimeError::Internal(m) if m.starts_with("sandbox failure")));
    }

    #[test]
    fn sessions_errors_keep_their_words() {
        let gone = RuntimeError::from(SessionError::Ended("it was idle".into()));
        assert_eq!(gone.to_string(), "session ended: it was idle");
        assert!(matches!(gone, RuntimeError::Gone(_)));
        assert!(matches!(
            RuntimeError::from(SessionError::ShuttingDown),
            RuntimeError::ShuttingDown
        ));
    }
}
