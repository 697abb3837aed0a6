//! `tasks:` how long finished tasks are kept.

use serde::{Deserialize, Serialize};

use crate::units::HumanDuration;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TasksConfig {
    /// Finished tasks (and their results) are deleted after this.
    pub retention: HumanDuration,
}

impl Default for TasksConfig {
    fn default() -> Self {
        TasksConfig {
            retention: HumanDuration::secs(7 * 86400),
        }
    }
}
