//! The failures of runbox's domain. A failure of the user's code is never one of these:
//! it is a result (`success: false`). The HTTP surface turns each of these into exactly
//! one status and body (`From<RuntimeError> for ApiError`).

use runbox_sandbox::SandboxError;
use runbox_store::StoreError;

use crate::sessions::SessionError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Admission could not start the work within `admission.max_wait`.
    #[error("Request timed out")]
    Overloaded,
    #[error("runbox is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// runbox or its engine could not build a function's dependency environment.
    #[error("the dependency environment could not be built: {0}")]
    EnvironmentUnbuildable(String),
    /// A task runbox started to do the work failed (it panicked).
    #[error("{0}")]
    Internal(String),
}
