//! `runbox mcp --server URL --token T`: runbox's MCP tools over stdio, the transport
//! desktop MCP clients start as a subprocess. It is a relay: every request goes to the
//! server's `/mcp` (one MCP session there, so the code tools share one notebook for as
//! long as this process lives), and what the server notifies (progress, a changed tool
//! list) comes back. The tools themselves are the server's: nothing is run here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

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
use runbox_dispatch::MCP_PROGRESS_SENT;
use tokio::sync::Notify;

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
    let tokens: Arc<Tokens> = Arc::default();
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

/// How long a result waits for the progress sent before it to be passed on.
const PROGRESS_WAIT: Duration = Duration::from_secs(2);

/// A call on its way to the server whose progress the stdio client asked for.
struct Relayed {
    /// The stdio client's own token for the call.
    theirs: ProgressToken,
    /// How many of the call's progress notifications went on to the stdio client.
    passed_on: u64,
}

/// The calls with progress on their way to the server, by the progress token this
/// process's client chose; `passed` fires whenever one more notification went on.
#[derive(Default)]
struct Tokens {
    calls: Mutex<HashMap<ProgressToken, Relayed>>,
    passed: Notify,
}

impl Tokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProgressToken, Relayed>> {
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits (at most `PROGRESS_WAIT`) until `sent` notifications of call `ours` went
    /// on: the server sent them before the result, but this process's client hands
    /// each notification to a task of its own, which may run after the result arrived.
    async fn wait_passed_on(&self, ours: &ProgressToken, sent: u64) {
        let deadline = tokio::time::Instant::now() + PROGRESS_WAIT;
        loop {
            let passed = self.passed.notified();
            tokio::pin!(passed);
            passed.as_mut().enable();
            if self
                .lock()
                .get(ours)
                .is_none_or(|call| call.passed_on >= sent)
            {
                return;
            }
            if tokio::time::timeout_at(deadline, passed).await.is_err() {
                return;
            }
        }
    }
}

/// The stdio side: a server whose every tool is the runbox server's.
struct Forward {
    upstream: Peer<RoleClient>,
    tokens: Arc<Tokens>,
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
            let call = Relayed {
                theirs,
                passed_on: 0,
            };
            self.tokens.lock().insert(ours.clone(), call);
        }
        let answered = handle.await_response().await;
        if let Ok(ServerResult::CallToolResult(result)) = &answered {
            let sent = result
                .meta
                .as_ref()
                .and_then(|meta| meta.get(MCP_PROGRESS_SENT))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            self.tokens.wait_passed_on(&ours, sent).await;
        }
        self.tokens.lock().remove(&ours);
        match answered.map_err(upstream_error)? {
            ServerResult::CallToolResult(mut result) => {
                result.result_type = Some(ResultType::COMPLETE);
                if let Some(meta) = result.meta.as_mut() {
                    meta.remove(MCP_PROGRESS_SENT);
                }
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
    tokens: Arc<Tokens>,
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
        let ours = params.progress_token.clone();
        let Some(theirs) = self
            .tokens
            .lock()
            .get(&ours)
            .map(|call| call.theirs.clone())
        else {
            // The stdio client did not ask for this call's progress.
            return;
        };
        params.progress_token = theirs;
        if let Some(peer) = self.downstream.get() {
            let _ = peer.notify_progress(params).await;
        }
        if let Some(call) = self.tokens.lock().get_mut(&ours) {
            call.passed_on += 1;
        }
        self.tokens.passed.notify_waiters();
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(peer) = self.downstream.get() {
            let _ = peer.notify_tool_list_changed().await;
        }
    }
}
