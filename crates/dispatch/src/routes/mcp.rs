//! `/mcp`: the Model Context Protocol endpoint (the tools and the transport are in
//! `crate::mcp`); this is its route, behind the same bearer layer as the API.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::mcp::USEFUL_SCOPES;
use crate::state::AppState;

/// The Model Context Protocol
///
/// Streamable HTTP (`POST` a JSON-RPC message, `GET` the server's stream of a session,
/// `DELETE` a session), at the protocol versions the official SDKs negotiate: the
/// `initialize` handshake up to 2025-11-25 (an MCP session is a notebook: its code
/// tools share one runbox session) and the sessionless 2026-07-28 (state is the
/// `session_id` handle of `create_session`). Tools: `run_python`, `run_bash`,
/// `create_session`, `end_session`, `upload_file`, `download_file`, and one per stored
/// function. Any valid token may connect; a token with none of `run`, `functions:read`
/// or `admin` is refused with 403, and each tool checks the scope it needs.
#[utoipa::path(
    post,
    operation_id = "mcp_post",
    path = "/mcp",
    tag = "mcp",
    security(("bearer" = [])),
    request_body(content = String, content_type = "application/json", description = "A JSON-RPC message (POST)."),
    responses(
        (status = 200, description = "A JSON-RPC response, or a stream of messages (`text/event-stream`)."),
        (status = 202, description = "A notification or response was accepted."),
        (status = 400, description = "Not a JSON-RPC message, or an unsupported protocol version."),
        (status = 403, description = "The token has no scope that serves MCP."),
        (status = 404, description = "An unknown or ended MCP session."),
        (status = 406, description = "The client accepts neither `application/json` nor `text/event-stream` (both are needed)."),
    ),
)]
pub async fn message(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    // Bodies are bounded by the router's limit; reading one whole is what the MCP
    // transport does too.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(_) => return ApiError::PayloadTooLarge.into_response(),
    };
    if let Some(refusal) = not_json_rpc(&bytes) {
        return refusal;
    }
    let request = Request::from_parts(parts, axum::body::Body::from(bytes));
    endpoint(state, principal, request).await
}

/// A body that is not JSON, or not a JSON-RPC message, answered as JSON-RPC says: 400
/// with a parse error (-32700) or an invalid request (-32600), and a null id.
fn not_json_rpc(body: &[u8]) -> Option<Response> {
    let (code, message) = match serde_json::from_slice::<Value>(body) {
        Err(err) => (-32700, format!("Parse error: {err}")),
        Ok(Value::Object(message)) if message.get("jsonrpc") == Some(&json!("2.0")) => return None,
        // A batch: each element answers for itself (the transport refuses them).
        Ok(Value::Array(_)) => return None,
        Ok(_) => (
            -32600,
            "Invalid Request: not a JSON-RPC 2.0 message".to_string(),
        ),
    };
    let error = json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}});
    Some((StatusCode::BAD_REQUEST, Json(error)).into_response())
}

/// The Model Context Protocol: a session's stream
///
/// The server's stream of messages for an MCP session of the `initialize` handshake
/// era (its `Mcp-Session-Id` header): notifications such as a changed tool list.
#[utoipa::path(
    get,
    path = "/mcp",
    operation_id = "mcp_get",
    tag = "mcp",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A stream of JSON-RPC messages (`text/event-stream`)."),
        (status = 400, description = "No session named, or the wrong protocol version."),
        (status = 403, description = "The token has no scope that serves MCP."),
        (status = 404, description = "An unknown or ended MCP session."),
        (status = 405, description = "The sessionless protocol has no stream to open."),
        (status = 406, description = "The client does not accept `text/event-stream`."),
    ),
)]
pub async fn stream(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    request: Request,
) -> Response {
    endpoint(state, principal, request).await
}

/// The Model Context Protocol: end a session
///
/// Ends an MCP session of the `initialize` handshake era (its `Mcp-Session-Id`
/// header), and with it the runbox session its code tools shared.
#[utoipa::path(
    delete,
    path = "/mcp",
    operation_id = "mcp_delete",
    tag = "mcp",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session has ended."),
        (status = 400, description = "No session named."),
        (status = 403, description = "The token has no scope that serves MCP."),
        (status = 404, description = "An unknown or ended MCP session."),
    ),
)]
pub async fn end(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    request: Request,
) -> Response {
    endpoint(state, principal, request).await
}

/// Every method of `/mcp`: the scope check, then the MCP transport.
async fn endpoint(state: AppState, principal: Principal, request: Request) -> Response {
    if !USEFUL_SCOPES.iter().any(|s| principal.scopes.contains(*s)) {
        return insufficient_scope();
    }
    let ending = request.method() == Method::DELETE;
    let mut response = match state.mcp.as_ref().clone().oneshot(request).await {
        Ok(response) => response.map(axum::body::Body::new),
        Err(never) => match never {},
    };
    // The MCP transport accepts a session's end with 202; clients expect 200 or 204
    // for a DELETE that did what it asked.
    if ending && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    if response.status().is_client_error() && is_plain_text(&response) {
        return as_error_body(response).await;
    }
    response
}

/// The most of a refusal's text that is kept; the transport's are one line.
const REFUSAL_TEXT_LIMIT: usize = 64 * 1024;

/// The transport's refusals carry no content type, or `text/plain`.
fn is_plain_text(response: &Response) -> bool {
    match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(value) => value
            .to_str()
            .is_ok_and(|value| value.starts_with("text/plain")),
    }
}

/// A refusal of the MCP transport (406 for a client that does not accept its media
/// types, 404 for an unknown session, …) in the API's error shape, so that every 4xx of
/// runbox has the same body.
async fn as_error_body(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, REFUSAL_TEXT_LIMIT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let text = if text.is_empty() {
        parts
            .status
            .canonical_reason()
            .unwrap_or("Refused")
            .to_string()
    } else {
        text
    };
    let mut refusal = (parts.status, Json(json!({ "error": text }))).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            refusal.headers_mut().insert(name.clone(), value.clone());
        }
    }
    refusal
}

/// 403 as the MCP authorization rules put it: a bearer challenge naming the scope.
fn insufficient_scope() -> Response {
    let mut response = ApiError::InsufficientScope("run").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer error="insufficient_scope", scope="run""#),
    );
    response
}
