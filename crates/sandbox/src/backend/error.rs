//! How an engine call fails.

/// An engine's failure, kept as fine as callers tell failures apart.
#[derive(Clone, Debug, thiserror::Error)]
pub enum BackendError {
    /// 404: no such container, image or network.
    #[error("not found: {0}")]
    NotFound(String),
    /// 409: for a removal, one is already in progress.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The host port a container publishes is taken by another program.
    #[error("port already allocated: {0}")]
    PortAllocated(String),
    /// The engine does not answer (socket gone, connection refused, timeout).
    #[error("the engine is unavailable: {0}")]
    Unavailable(String),
    /// Anything else the engine answered, with its HTTP status when there was one.
    #[error("{message}")]
    Failed {
        status: Option<u16>,
        message: String,
    },
}
