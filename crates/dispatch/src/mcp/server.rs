//! The MCP server runbox is: which tools a caller sees, calling them, and telling
//! clients when the function tools change.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, SubscriptionFilter,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use runbox_runtime::cluster::SessionPlace;
use runbox_runtime::Runtime;

use super::holder::{Holder, SESSION_TOOLS};
use super::notebook::Notebook;
use super::tools::{self, Call};
use crate::auth::Principal;
use crate::peer_client::PeerClient;

const INSTRUCTIONS: &str = "runbox runs Python and bash in fresh, isolated sandboxes. \
run_python shows what a notebook cell shows (stdout, the value of the last expression, \
figures from plt.show() as images, tables). Within one MCP session the code tools share \
one interpreter (variables, imports and files persist); with the sessionless protocol, \
call create_session and pass its session_id to keep state. Stored functions are tools \
of their own.";

/// The `_meta` key of a tool result that says how many progress notifications the
/// call sent before it: a relay (`runbox mcp`) passes them all on before the result.
pub const PROGRESS_SENT: &str = "runbox/progressSent";

/// One MCP session's server (one request's, with the sessionless protocol).
#[derive(Clone)]
pub struct McpServer {
    runtime: Runtime,
    /// What a call naming a session another replica holds is sent there with.
    peers: Option<PeerClient>,
    /// The runbox session of this MCP session's code tools, opened on first use and
    /// ended with the MCP session.
    notebook: Arc<Notebook>,
}

impl McpServer {
    pub fn new(runtime: Runtime, peers: Option<PeerClient>) -> Self {
        McpServer {
            notebook: Arc::new(Notebook::new(runtime.clone())),
            runtime,
            peers,
        }
    }

    /// Within an MCP session, a session tool that names a runbox session held by
    /// another replica is that replica's to serve (`holder.rs`). `Err` is the tool
    /// error of a session whose holder is gone.
    async fn holder<'a>(
        &'a self,
        request: &CallToolRequestParams,
        principal: &Principal,
        context: &'a RequestContext<RoleServer>,
    ) -> Result<Option<Holder<'a>>, CallToolResult> {
        let (Some(peers), Some(parts)) = (
            self.peers.as_ref(),
            context.extensions.get::<axum::http::request::Parts>(),
        ) else {
            return Ok(None);
        };
        if !self.runtime.clustered()
            || !in_mcp_session(context)
            || !SESSION_TOOLS.contains(&request.name.as_ref())
        {
            return Ok(None);
        }
        let Some(id) = request
            .arguments
            .as_ref()
            .and_then(|arguments| arguments.get("session_id"))
            .and_then(|id| id.as_str())
        else {
            return Ok(None);
        };
        match self.runtime.place_session(principal, id).await {
            Ok(SessionPlace::Owner(replica)) => Ok(Some(Holder {
                runtime: &self.runtime,
                client: peers,
                replica,
                incoming: &parts.headers,
            })),
            Ok(SessionPlace::Here) => Ok(None),
            Err(err) => Err(CallToolResult::error(vec![ContentBlock::text(
                err.to_string(),
            )])),
        }
    }
}

/// The caller the bearer layer authenticated, carried in the HTTP request's extensions.
fn principal(context: &RequestContext<RoleServer>) -> Result<Principal, McpError> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>())
        .cloned()
        .ok_or_else(|| McpError::internal_error("the request carries no caller", None))
}

/// Whether the request belongs to an MCP session (the `initialize` handshake era).
fn in_mcp_session(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|version| version.has_initialize())
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        let mut info = ServerConfig::new(capabilities);
        info.server_info = Implementation::new("runbox", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(INSTRUCTIONS.to_string());
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let principal = principal(&context)?;
        let tools = tools::visible(&self.runtime, &principal)
            .await
            .map_err(|err| McpError::internal_error(err.to_string(), None))?;
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let principal = principal(&context)?;
        let progress = context
            .meta
            .get_progress_token()
            .map(|token| (token, context.peer.clone()));
        match self.holder(&request, &principal, &context).await {
            Ok(Some(holder)) => {
                return tokio::select! {
                    answer = holder.call(&request, progress) => answer.map(CallToolResponse::Complete),
                    () = context.ct.cancelled() => Ok(CallToolResponse::Complete(CallToolResult::error(
                        vec![ContentBlock::text("the call was cancelled")],
                    ))),
                };
            }
            Ok(None) => {}
            Err(gone) => return Ok(CallToolResponse::Complete(gone)),
        }
        let asked_progress = progress.is_some();
        let progress_sent = AtomicU64::new(0);
        let call = Call {
            runtime: &self.runtime,
            principal: &principal,
            notebook: in_mcp_session(&context).then_some(self.notebook.as_ref()),
            progress,
            progress_sent: &progress_sent,
            cancel: context.ct.clone(),
        };
        let arguments = request.arguments.unwrap_or_default();
        let mut result = match tools::call(call, &request.name, arguments).await {
            Ok(result) => result,
            Err(tools::ToolError::Unknown) => {
                return Err(McpError::invalid_params(
                    format!("unknown tool `{}`", request.name),
                    None,
                ))
            }
            Err(tools::ToolError::Failed(message)) => {
                CallToolResult::error(vec![ContentBlock::text(message)])
            }
        };
        if asked_progress {
            result.meta.get_or_insert_with(Default::default).insert(
                PROGRESS_SENT.into(),
                progress_sent.load(Ordering::SeqCst).into(),
            );
        }
        Ok(CallToolResponse::Complete(result))
    }

    /// Handshake era: the session's own stream says when the function tools change.
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let mut changes = self.runtime.functions().changes();
        let peer = context.peer;
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                if peer.notify_tool_list_changed().await.is_err() {
                    // The session is gone.
                    return;
                }
            }
        });
    }

    /// Sessionless era: `subscriptions/listen` for tool list changes.
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = SubscriptionFilter::new();
        accepted.tools_list_changed = requested.tools_list_changed;
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let mut changes = self.runtime.functions().changes();
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                changed = changes.changed() => {
                    if changed.is_err() || context.sink().notify_tool_list_changed().await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}
