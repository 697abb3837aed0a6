//! `runbox mcp --server URL --token T`: runbox's MCP tools over stdio, the transport
//! desktop MCP clients start as a subprocess. It is a relay: every request goes to the
//! server's `/mcp` (one MCP session there, so the code tools share one notebook for as
//! long as this process lives), and what the server notifies (progress, a changed tool
//! list) comes back. The tools themselves are the server's: nothing is run here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use clap::Args;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientConfig, ClientRequest,
    Implementation, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ProgressToken, ResultType, ServerCapabilities, ServerConfig, ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestContext};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{
    ClientHandler, ErrorData as McpError, Peer, RoleClient, RoleServer, ServerHandler, ServiceExt,
};

#[derive(Args)]
pub struct McpArgs {
    /// The runbox server.
    #[arg(long, env = "RUNBOX_SERVER", default_value = "http://127.0.0.1:8000")]
    server: String,
    /// Bearer token (a static token or a JWT).
    #[arg(long, env = "RUNBOX_TOKEN")]
    token: String,
}

pub async fn run(args: McpArgs) -> anyhow::Result<()> {
    let url = format!("{}/mcp", args.server.trim_end_matches('/'));
    let downstream: Arc<OnceLock<Peer<RoleServer>>> = Arc::default();
    let tokens: Tokens = Arc::default();
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.clone());
    config.auth_header = Some(args.token.clone());
    let transport = StreamableHttpClientTransport::from_config(config);
    let upstream = Relay {
        downstream: downstream.clone(),
        tokens: tokens.clone(),
    }
    .serve(transport)
    .await
    .with_context(|| format!("cannot open an MCP session at {url}"))?;
    let server = Forward {
        upstream: upstream.peer().clone(),
        tokens,
    }
    .serve(rmcp::transport::stdio())
    .await
    .context("the MCP client on stdin did not start a session")?;
    let _ = downstream.set(server.peer().clone());
    let ended = server.waiting().await;
    // The server's MCP session (and its notebook) ends with this process's.
    let _ = upstream.cancel().await;
    ended.context("the stdio session failed")?;
    Ok(())
}

/// The progress token of each call on its way to the server (chosen by this process's
/// client) → the stdio client's own for that call.
type Tokens = Arc<Mutex<HashMap<ProgressToken, ProgressToken>>>;

fn lock(tokens: &Tokens) -> std::sync::MutexGuard<'_, HashMap<ProgressToken, ProgressToken>> {
    tokens
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The stdio side: a server whose every tool is the runbox server's.
struct Forward {
    upstream: Peer<RoleClient>,
    tokens: Tokens,
}

fn upstream_error(err: rmcp::service::ServiceError) -> McpError {
    match err {
        rmcp::service::ServiceError::McpError(error) => error,
        other => McpError::internal_error(format!("the runbox server: {other}"), None),
    }
}

impl ServerHandler for Forward {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        let mut info = ServerConfig::new(capabilities);
        info.server_info = Implementation::new("runbox", env!("CARGO_PKG_VERSION"));
        info.instructions = self
            .upstream
            .peer_info()
            .and_then(|server| server.instructions.clone());
        info
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut tools = self
            .upstream
            .list_tools(request)
            .await
            .map_err(upstream_error)?;
        // The server answered in its session's (handshake) era, which leaves the result
        // type out; the stdio client may speak the sessionless one, which wants it. The
        // SDK takes it out again for a handshake-era client.
        tools.result_type = Some(ResultType::COMPLETE);
        Ok(tools)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let handle = self
            .upstream
            .send_cancellable_request(
                ClientRequest::CallToolRequest(CallToolRequest::new(request)),
                PeerRequestOptions::no_options(),
            )
            .await
            .map_err(upstream_error)?;
        // The server's progress comes back under the token this process chose; the
        // stdio client knows its own.
        let ours = handle.progress_token.clone();
        if let Some(theirs) = context.meta.get_progress_token() {
            lock(&self.tokens).insert(ours.clone(), theirs);
        }
        let answered = handle.await_response().await;
        lock(&self.tokens).remove(&ours);
        match answered.map_err(upstream_error)? {
            ServerResult::CallToolResult(mut result) => {
                result.result_type = Some(ResultType::COMPLETE);
                Ok(CallToolResponse::Complete(result))
            }
            _ => Err(McpError::internal_error(
                "the runbox server answered a tool call with something else",
                None,
            )),
        }
    }
}

/// The server side: a client that passes the server's notifications on to stdio.
struct Relay {
    downstream: Arc<OnceLock<Peer<RoleServer>>>,
    tokens: Tokens,
}

impl ClientHandler for Relay {
    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.client_info = Implementation::new("runbox mcp", env!("CARGO_PKG_VERSION"));
        info
    }

    async fn on_progress(
        &self,
        mut params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let Some(theirs) = lock(&self.tokens).get(&params.progress_token).cloned() else {
            // The stdio client did not ask for this call's progress.
            return;
        };
        params.progress_token = theirs;
        if let Some(peer) = self.downstream.get() {
            let _ = peer.notify_progress(params).await;
        }
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(peer) = self.downstream.get() {
            let _ = peer.notify_tool_list_changed().await;
        }
    }
}
