//! `/mcp`: the Model Context Protocol over Streamable HTTP, a second surface onto the
//! runtime's runs, sessions and stored functions (rmcp's server transport; the tools
//! are ours). Same bearer tokens as the API: the auth layer in front of this route
//! turns the `Authorization` header into a principal, which reaches the tools through
//! the request's extensions.
//!
//! Both eras of the protocol are served: with the `initialize` handshake (up to
//! 2025-11-25) an MCP session is a notebook — the code tools of one MCP session share
//! one runbox session, opened on first use and ended with the MCP session; with the
//! sessionless 2026-07-28 protocol, state is an explicit handle (`create_session`, then
//! `session_id` on each call).
//!
//! Among replicas an MCP session stays on the replica that answered its `initialize`;
//! its id names that replica (`sessions.rs`), and a request for it that a load balancer
//! hands another replica is sent there, as is a sessionless tool call naming a runbox
//! session that another replica holds (`routes/forward.rs`). A tool call of an MCP
//! session that names a runbox session held elsewhere is sent on from the MCP session's
//! replica to the session's (`holder.rs`). A client needs no sticky load balancer.

mod content;
mod holder;
mod notebook;
mod schema;
mod server;
mod sessions;
mod tools;

use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use runbox_runtime::Runtime;
use tokio_util::sync::CancellationToken;

pub(crate) use server::McpServer;
pub use server::PROGRESS_SENT;
pub use sessions::holder as session_holder;
use sessions::ReplicaSessions;

use crate::peer_client::PeerClient;

/// The MCP endpoint's transport, built once per server.
pub type McpService = StreamableHttpService<McpServer, ReplicaSessions>;

/// Scopes that give a token anything to do here.
pub const USEFUL_SCOPES: [&str; 3] = ["run", "functions:read", "admin"];

/// The transport for `runtime`: an MCP session idles out after `sessions.idle_timeout`
/// (its notebook with it); requests may be as large as the API's bodies.
pub fn service(
    runtime: Runtime,
    peers: Option<PeerClient>,
    stop: CancellationToken,
) -> Arc<McpService> {
    let config = runtime.config().clone();
    let idle = config.sessions.idle_timeout.get();
    let body_limit = usize::try_from(config.server.max_body_bytes.bytes()).unwrap_or(usize::MAX);
    let mut local = LocalSessionManager::default();
    local.session_config.keep_alive = Some(idle.max(Duration::from_secs(1)));
    let sessions = ReplicaSessions::new(runtime.replica_id(), local);
    let transport = StreamableHttpServerConfig::default()
        // Every request carries a bearer token that is checked before this transport
        // sees it, which is what DNS rebinding would need to forge; runbox is reached
        // under whatever names its operators give it.
        .disable_allowed_hosts()
        .with_max_request_body_bytes(body_limit)
        .with_cancellation_token(stop);
    Arc::new(StreamableHttpService::new(
        move || Ok(McpServer::new(runtime.clone(), peers.clone())),
        Arc::new(sessions),
        transport,
    ))
}
