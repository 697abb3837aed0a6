//! `images:` the images runs return, as stored and served.

use serde::{Deserialize, Serialize};

use crate::units::HumanDuration;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImagesConfig {
    pub retention: HumanDuration,
    pub require_auth: bool,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            retention: HumanDuration::secs(7 * 86400),
            require_auth: false,
        }
    }
}
