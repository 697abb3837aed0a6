//! What every handler shares.

use std::sync::Arc;

use runbox_core::Config;
use runbox_runtime::auth::Authenticator;
use runbox_runtime::Runtime;

use crate::mcp::McpService;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// Everything a request does beyond HTTP goes through here.
    pub runtime: Runtime,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The MCP endpoint's transport and its sessions.
    pub mcp: Arc<McpService>,
    /// The client requests are forwarded to peers with (None: this replica cannot
    /// forward and serves everything itself).
    pub peers: Option<crate::peer_client::PeerClient>,
}

impl axum::extract::FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.runtime.auth().clone()
    }
}
