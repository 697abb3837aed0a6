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

use bollard::network::CreateNetworkOptions;
use bollard::Docker;

use crate::labels;
use crate::SandboxError;

/// The Docker network every http-transport sandbox joins.
pub const SANDBOX_NETWORK: &str = "runbox-sandboxes";
/// Its Linux bridge, as named in firewall rules.
pub const SANDBOX_BRIDGE: &str = "runbox0";

/// Creates the sandbox network unless it exists. Several runbox servers on one engine
/// share it; a concurrent creation by another one is fine.
pub async fn ensure_sandbox_network(docker: &Docker) -> Result<(), SandboxError> {
    match docker
        .inspect_network::<String>(SANDBOX_NETWORK, None)
        .await
    {
        Ok(network) => {
            let icc = network
                .options
                .as_ref()
                .and_then(|o| o.get("com.docker.network.bridge.enable_icc"))
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
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(source) => {
            return Err(SandboxError::Docker {
                action: "inspecting the sandbox network",
                source,
            })
        }
    }
    let options = CreateNetworkOptions {
        name: SANDBOX_NETWORK,
        check_duplicate: true,
        driver: "bridge",
        options: HashMap::from([
            ("com.docker.network.bridge.enable_icc", "false"),
            ("com.docker.network.bridge.enable_ip_masquerade", "false"),
            ("com.docker.network.bridge.name", SANDBOX_BRIDGE),
        ]),
        labels: HashMap::from([(labels::MANAGED, "true")]),
        ..Default::default()
    };
    match docker.create_network(options).await {
        Ok(_) => {
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
        Err(source) => match docker
            .inspect_network::<String>(SANDBOX_NETWORK, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(_) => Err(SandboxError::Docker {
                action: "creating the sandbox network",
                source,
            }),
        },
    }
}
