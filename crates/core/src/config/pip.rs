//! `pip:` the package index and CA bundle of image and environment builds.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipConfig {
    /// Alternative package index for image and environment builds.
    pub index_url: String,
    /// A CA bundle on the host mounted into build containers and set as PIP_CERT
    /// (for TLS-intercepting proxies).
    pub extra_ca_bundle: String,
}
