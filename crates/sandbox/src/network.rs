//! The bridge network of the http transport. On Docker's default bridge a container can
//! reach every other container and every host service bound on 0.0.0.0; sandboxes of the
//! http transport run on a network of their own instead, where
//! - containers cannot reach each other (`enable_icc=false`),
//! - nothing is masqueraded, so packets for the outside world have no way back,
//! - the bridge has a fixed name, so the operator's firewall rule that closes the host
//!   to it can name it (docs/transports.md gives the rule).
//!
//! An `internal` network would close the host too, but the engine publishes no port of
//! a container on an internal network, and the http transport needs exactly that.

use std::collections::HashMap;

use crate::backend::{Backend, BackendError, NetworkSpec};
use crate::labels;
use crate::SandboxError;

/// The Docker network every http-transport sandbox joins.
pub const SANDBOX_NETWORK: &str = "runbox-sandboxes";
/// Its Linux bridge, as named in firewall rules.
pub const SANDBOX_BRIDGE: &str = "runbox0";

/// Creates the sandbox network unless it exists. Several runbox servers on one engine
/// share it; a concurrent creation by another one is fine.
pub async fn ensure_sandbox_network(engine: &dyn Backend) -> Result<(), SandboxError> {
    match engine.network_options(SANDBOX_NETWORK).await {
        Ok(options) => {
            let icc = options
                .get("com.docker.network.bridge.enable_icc")
                .map(String::as_str);
            if icc != Some("false") {
                tracing::warn!(
                    network = SANDBOX_NETWORK,
                    "the sandbox network exists without enable_icc=false: sandboxes on it can \
                     reach each other; remove it (docker network rm) so runbox recreates it"
                );
            }
            return Ok(());
        }
        Err(BackendError::NotFound(_)) => {}
        Err(source) => {
            return Err(SandboxError::Docker {
                action: "inspecting the sandbox network",
                source,
            })
        }
    }
    let network = NetworkSpec {
        name: SANDBOX_NETWORK.to_string(),
        options: HashMap::from(
            [
                ("com.docker.network.bridge.enable_icc", "false"),
                ("com.docker.network.bridge.enable_ip_masquerade", "false"),
                ("com.docker.network.bridge.name", SANDBOX_BRIDGE),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        ),
        labels: HashMap::from([(labels::MANAGED.to_string(), "true".to_string())]),
    };
    match engine.create_network(network).await {
        Ok(()) => {
            tracing::info!(
                network = SANDBOX_NETWORK,
                bridge = SANDBOX_BRIDGE,
                "created the sandbox network"
            );
            Ok(())
        }
        // Created meanwhile by another server: the fixed bridge name makes a second
        // network of the same name fail in the engine, so whatever the error, the
        // network may exist now.
        Err(source) => match engine.network_options(SANDBOX_NETWORK).await {
            Ok(_) => Ok(()),
            Err(_) => Err(SandboxError::Docker {
                action: "creating the sandbox network",
                source,
            }),
        },
    }
}
