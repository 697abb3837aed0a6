//! `database:` where runbox keeps its records.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path` or `postgres://user:pass@host:port/db`; empty: SQLite at
    /// `<data_dir>/runbox.db` (or the `postgres:` block when it is given).
    pub url: String,
}
