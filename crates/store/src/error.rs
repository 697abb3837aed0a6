use std::path::PathBuf;
use std::time::Duration;

/// Everything the store can fail with. URLs in these messages are always redacted
/// (see [`crate::redact_url`]): they end up in logs and CLI output.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database URL `{0}`: expected sqlite://PATH, postgres://… or postgresql://…"
    )]
    UnsupportedUrl(String),
    #[error("invalid database URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot create directory {} for the SQLite database: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    // The reason is kept as scrubbed text rather than the sqlx error so that nothing
    // down the source chain can ever print the password.
    #[error("cannot connect to the database at `{url}`: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot migrate the database at `{url}`: {reason}")]
    Migrate { url: String, reason: String },
    #[error("an image named `{0}` already exists")]
    Duplicate(String),
    #[error("stored image `{name}` is corrupt: {reason}")]
    Corrupt { name: String, reason: String },
    #[error("stored row of {table} `{key}` is corrupt: {reason}")]
    CorruptRow {
        table: &'static str,
        key: String,
        reason: String,
    },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("the database did not answer within {0:?}")]
    Timeout(Duration),
    #[error("database failed while {action}: {source}")]
    Database {
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

impl StoreError {
    pub(crate) fn db(action: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| StoreError::Database { action, source }
    }

    /// True when the database is away or overloaded rather than the request or the data
    /// being wrong: callers answer 503 and may retry.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Connect { .. } | StoreError::Timeout(_) => true,
            StoreError::Database { source, .. } => matches!(
                source,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            ),
            _ => false,
        }
    }
}
