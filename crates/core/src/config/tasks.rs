//! `tasks:` how long finished tasks are kept.

use serde::{Deserialize, Serialize};

use crate::units::HumanDuration;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TasksConfig {
    /// Finished tasks (and their results) are deleted after this.
    #[serde(default = "default_task_retention")]
    pub retention: HumanDuration,
}

fn default_task_retention() -> HumanDuration {
    HumanDuration::secs(7 * 86400)
}

impl Default for TasksConfig {
    fn default() -> Self {
        TasksConfig {
            retention: default_task_retention(),
        }
    }
}
