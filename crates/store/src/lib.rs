//! Persistence for runbox: images produced by executions, revoked token ids, stored
//! functions with their versions, dependency environments and async tasks, in SQLite
//! (single node) or PostgreSQL (several replicas sharing one database).
//!
//! Every query is written once with `$N` placeholders, which both sqlx drivers accept,
//! and run against whichever pool [`Store::connect`] opened. Queries are checked by the
//! tests against both backends, not at compile time: builds need no database.

mod cluster;
mod connect;
mod environments;
mod error;
mod functions;
mod images;
mod leases;
mod revocations;
mod session_records;
mod sweep;
mod task_queue;
mod tasks;
mod text;

pub use cluster::ReplicaRecord;
pub use connect::redact_url;
pub use environments::{EnvironmentRecord, EnvironmentStatus};
pub use error::StoreError;
pub use functions::{FunctionVersion, NewFunctionVersion};
pub use images::StoredImage;
pub use session_records::SessionRecord;
pub use sweep::{spawn_retention_sweep, Retention};
pub use task_queue::{TaskListener, TaskSignal, TaskSignals};
pub use tasks::{NewTask, TaskFilter, TaskRecord, TaskStatus};

use sqlx::{PgPool, SqlitePool};

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A handle on the database. Cloning is cheap: clones share one connection pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Store {
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// Runs `$body` with `$pool` bound to whichever pool the store holds. The body is
/// type-checked once per backend, so it must produce the same type in both arms (map
/// driver-specific results such as `rows_affected()` inside it).
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;
