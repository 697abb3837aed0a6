//! `cluster:` several replicas of one service over one PostgreSQL.

use serde::{Deserialize, Serialize};

use crate::units::HumanDuration;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Where the other replicas reach this one; empty: `server.public_url`.
    pub advertise_url: String,
    /// How often a replica records its load and that it is alive.
    pub heartbeat: HumanDuration,
    /// A replica whose last heartbeat is older than this is dead: its peers take over
    /// what it left.
    pub dead_after: HumanDuration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            advertise_url: String::new(),
            heartbeat: HumanDuration::secs(5),
            dead_after: HumanDuration::secs(15),
        }
    }
}
