//! `images:` the images runs return, as stored and served.

use serde::{Deserialize, Serialize};

use crate::units::HumanDuration;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesConfig {
    #[serde(default = "default_retention")]
    pub retention: HumanDuration,
    #[serde(default)]
    pub require_auth: bool,
}

fn default_retention() -> HumanDuration {
    HumanDuration::secs(7 * 86400)
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            retention: default_retention(),
            require_auth: false,
        }
    }
}
