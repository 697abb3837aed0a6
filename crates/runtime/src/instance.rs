//! The name that tells this server's containers and tasks from other servers' on the
//! same engine and store.

use runbox_core::Config;
use sha2::Digest;

/// The label value that separates this server's containers from other servers' on the
/// same engine: `sandbox.instance`, else derived from the data dir.
pub fn instance_name(config: &Config) -> String {
    let configured = config.sandbox.instance.trim();
    if !configured.is_empty() {
        return configured.to_string();
    }
    let dir = std::fs::canonicalize(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    let digest = sha2::Sha256::digest(dir.display().to_string().as_bytes());
    format!("data-{}", &hex::encode(digest)[..12])
}
