//! `runbox image prune`: environment images that no stored function needs.

use std::collections::HashSet;

use super::{ENV_LABEL, ENV_REPOSITORY};
use crate::backend::Backend;
use crate::SandboxError;

/// What `runbox image prune` did.
#[derive(Clone, Debug, Default)]
pub struct PruneReport {
    /// Environment images removed (or, in a dry run, that would be).
    pub removed: Vec<String>,
    /// Environment images kept because a function needs them.
    pub kept: Vec<String>,
    /// Images that could not be removed, with the engine's reason (in use, …).
    pub failed: Vec<(String, String)>,
}

/// Removes every environment image (label `runbox.env`) whose hash is not in `keep`.
pub async fn prune_environments(
    engine: &dyn Backend,
    keep: &HashSet<String>,
    dry_run: bool,
) -> Result<PruneReport, SandboxError> {
    let images = engine
        .list_images(ENV_LABEL)
        .await
        .map_err(SandboxError::docker("listing environment images"))?;
    let mut report = PruneReport::default();
    for image in images {
        let hash = image.labels.get(ENV_LABEL).cloned().unwrap_or_default();
        let tag = image
            .repo_tags
            .iter()
            .find(|t| t.starts_with(&format!("{ENV_REPOSITORY}:")))
            .cloned();
        // An untagged one was replaced by a rebuild while a sandbox still used it.
        let in_use = tag.is_some() && keep.contains(&hash);
        let name = tag.unwrap_or_else(|| format!("{} (untagged)", image.id));
        if in_use {
            report.kept.push(name);
            continue;
        }
        if dry_run {
            report.removed.push(name);
            continue;
        }
        match engine.remove_image(&image.id).await {
            Ok(_) => report.removed.push(name),
            Err(err) => report.failed.push((name, err.to_string())),
        }
    }
    Ok(report)
}
