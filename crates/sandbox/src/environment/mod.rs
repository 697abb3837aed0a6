//! Dependency environments of stored functions: the normalised, sorted dependency set
//! hashes (with the sandbox image it extends and the package index) to an image tag;
//! building one runs pip in a build container that has network, then commits it (see
//! `build.rs`). The committed image keeps the sandbox image's user, command,
//! environment and labels, so its containers are sandboxes like any other.

use runbox_core::Config;
use sha2::{Digest, Sha256};

mod build;
mod prune;
mod requirements;

pub(crate) use build::build;
pub use build::{BuildFailure, BuildReport};
pub use prune::{prune_environments, PruneReport};
pub use requirements::{DependencySet, InvalidRequirement};

/// Repository of environment images; the tag is the environment's hash.
pub const ENV_REPOSITORY: &str = "runbox-env";
/// Image label carrying the environment hash (used by `runbox image prune`).
pub const ENV_LABEL: &str = "runbox.env";
/// Image label listing the requirements an environment installed, one per line.
pub const ENV_REQUIREMENTS_LABEL: &str = "runbox.env.requirements";

/// Which environment a dependency set needs on top of a sandbox image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvironmentPlan {
    pub hash: String,
    /// The image tag, `runbox-env:<hash>`.
    pub image: String,
}

/// The hash covers the sandbox image too: a new agent or base means new environments,
/// never an old agent under a new server.
pub fn plan_environment(
    config: &Config,
    base_image: &str,
    deps: &DependencySet,
) -> EnvironmentPlan {
    let mut hasher = Sha256::new();
    hasher.update(b"runbox-env-v1\0");
    hasher.update(base_image.as_bytes());
    hasher.update([0]);
    hasher.update(config.pip.index_url.trim().as_bytes());
    for requirement in deps.requirements() {
        hasher.update([0]);
        hasher.update(requirement.as_bytes());
    }
    let hash = hex::encode(hasher.finalize())[..16].to_string();
    EnvironmentPlan {
        image: format!("{ENV_REPOSITORY}:{hash}"),
        hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_set_plans_the_same_image_and_the_base_matters() {
        let config = Config::defaults();
        let a = DependencySet::parse(&["tabulate==0.9.0", "numpy"]).expect("valid");
        let b = DependencySet::parse(&["NumPy", "tabulate == 0.9.0"]).expect("valid");
        let plan = plan_environment(&config, "runbox-sandbox:1", &a);
        assert_eq!(plan, plan_environment(&config, "runbox-sandbox:1", &b));
        assert!(plan.image.starts_with("runbox-env:"));
        assert_ne!(plan, plan_environment(&config, "runbox-sandbox:2", &a));
        let other = DependencySet::parse(&["tabulate==0.8.10", "numpy"]).expect("valid");
        assert_ne!(plan, plan_environment(&config, "runbox-sandbox:1", &other));
    }
}
