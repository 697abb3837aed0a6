//! Sending a request to the replica that should serve it, and its answer back unchanged.
//! The runtime decides where a request goes ([`Runtime::place_run`],
//! [`Runtime::place_session`]); this middleware does the HTTP: the request goes to the
//! peer with the caller's own bearer token (the peer authenticates it itself) and a
//! proof that a replica sent it, and the peer's status, headers and body — a stream of
//! events included — come back as they arrive.
//!
//! One hop at most: a request that carries a valid proof is served where it arrives.
//! Headers a client sets under the same names without the cluster's secret change
//! nothing. A synchronous run whose peer cannot be reached is served here after all
//! (it waits for a slot, as it would have without peers).

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::time::Duration;

use runbox_runtime::cluster::{ForwardedRequest, Peer, RunPlace, SessionPlace};
use runbox_runtime::sessions::SessionInfo;
use runbox_runtime::Runtime;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::peer_client::{PeerClient, FORWARDED_BY, FORWARDED_TO, FORWARD_PROOF};
use crate::routes::json::body_rejection;
use crate::state::AppState;

/// What a request asks for, as far as where it is served goes.
#[derive(Debug, PartialEq)]
enum Wants {
    /// A synchronous run: one-shot code or a sync function call.
    Run,
    /// Something of session `id`.
    Session(String),
    /// An MCP tool call that names session `id` (sessionless MCP): served where the
    /// session is; where nobody holds it, here (a tool error, as for any unknown session).
    ToolSession(String),
    /// What replica `id` alone holds: its MCP session. Here when it is gone (404: the
    /// client starts a new MCP session, as the protocol says).
    Replica(String),
    /// Anything else: served here.
    Here,
}

/// Middleware (after authentication) on the routes that run code or touch a session.
pub async fn forward(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let runtime = &state.runtime;
    let Some(peers) = state.peers.as_ref().filter(|_| runtime.clustered()) else {
        return Ok(next.run(request).await);
    };
    if !wants_body(request.method(), request.uri().path())
        && request.uri().path() != MCP_PATH
        && by_path(request.method(), request.uri().path()) == Wants::Here
    {
        return Ok(next.run(request).await);
    }
    let (parts, body) = request.into_parts();
    let body = Bytes::from_request(Request::from_parts(parts.clone(), body), &())
        .await
        .map_err(body_rejection)?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    let method = parts.method.as_str().to_string();
    let forwarded = ForwardedRequest {
        method: &method,
        path_and_query: &path_and_query,
        body: &body,
    };
    let mut parts = parts;
    if is_forwarded(runtime, &parts.headers, &forwarded) {
        return Ok(next.run(Request::from_parts(parts, Body::from(body))).await);
    }
    // A client's own copies of the headers mean nothing here and must not reach a peer.
    parts.headers.remove(&FORWARDED_BY);
    parts.headers.remove(&FORWARD_PROOF);
    let wants = match by_path(&parts.method, parts.uri.path()) {
        Wants::Here if parts.uri.path() == MCP_PATH => by_mcp(&parts.headers, &body),
        Wants::Here => by_body(&parts.method, parts.uri.path(), &body),
        wants => wants,
    };
    let kind = match wants {
        Wants::Run => "run",
        Wants::ToolSession(_) | Wants::Replica(_) => "mcp",
        Wants::Session(_) | Wants::Here => "session",
    };
    let is_run = wants == Wants::Run;
    let peer = match wants {
        Wants::Here => None,
        Wants::Run => match runtime.place_run().await {
            RunPlace::Here(Some(reserved)) => {
                let request = Request::from_parts(parts, Body::from(body));
                return Ok(reserved.during(next.run(request)).await);
            }
            RunPlace::Here(None) => None,
            RunPlace::Peer(peer) => Some(peer),
            RunPlace::Nowhere(why) => return Err(ApiError::Unavailable(why)),
        },
        Wants::Session(id) => match runtime.place_session(caller(&parts)?, &id).await? {
            SessionPlace::Here => None,
            SessionPlace::Owner(peer) => Some(peer),
        },
        Wants::ToolSession(id) => match runtime.place_session(caller(&parts)?, &id).await {
            Ok(SessionPlace::Owner(peer)) => Some(peer),
            Ok(SessionPlace::Here) | Err(_) => None,
        },
        Wants::Replica(id) => runtime.live_peer(&id).await,
    };
    let Some(peer) = peer else {
        return Ok(next.run(Request::from_parts(parts, Body::from(body))).await);
    };
    let proof = runtime
        .forward_proof()
        .sign(runtime.replica_id(), &forwarded);
    match send(
        peers,
        runtime,
        &peer,
        &parts,
        &path_and_query,
        body.clone(),
        proof,
    )
    .await
    {
        Ok(response) => {
            metrics::counter!("runbox_forwarded_total", "kind" => kind).increment(1);
            Ok(relay(response, peer))
        }
        Err(err) if err.is_connect() && is_run => {
            metrics::counter!("runbox_forward_failures_total", "kind" => kind).increment(1);
            tracing::warn!(peer = %peer.id, address = %peer.address, error = %err,
                "the peer a run was sent to cannot be reached; running it here");
            drop(peer);
            Ok(next.run(Request::from_parts(parts, Body::from(body))).await)
        }
        Err(err) => {
            metrics::counter!("runbox_forward_failures_total", "kind" => kind).increment(1);
            tracing::warn!(peer = %peer.id, address = %peer.address, error = %err,
                "a request sent to a peer failed");
            Err(ApiError::Unavailable(format!(
                "replica {} ({}), which serves this request, did not answer: {}",
                peer.id,
                peer.address,
                without_url(&err)
            )))
        }
    }
}

/// How long a peer may take to list its sessions before the list goes without them.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /sessions` across the replicas: the caller's sessions held by the live peers
/// that the database names, each asked for its own list (with a proof, so it answers
/// with its own only). A peer that does not answer in time is left out, and logged.
/// Nothing when this request was itself sent by a replica.
pub async fn sessions_at_peers(
    state: &AppState,
    headers: &HeaderMap,
    principal: &Principal,
) -> Vec<SessionInfo> {
    let runtime = &state.runtime;
    let Some(peers) = state.peers.as_ref().filter(|_| runtime.clustered()) else {
        return Vec::new();
    };
    let listed = ForwardedRequest {
        method: "GET",
        path_and_query: "/sessions",
        body: b"",
    };
    if is_forwarded(runtime, headers, &listed) {
        return Vec::new();
    }
    let owners = match runtime.session_peers(principal).await {
        Ok(owners) => owners,
        Err(err) => {
            tracing::warn!(error = %err, "cannot tell which replicas hold the caller's sessions");
            return Vec::new();
        }
    };
    let listed = &listed;
    let asks = owners.iter().map(|peer| async move {
        let proof = runtime.forward_proof().sign(runtime.replica_id(), listed);
        let mut request = peers
            .client
            .get(format!("{}/sessions", peer.address))
            .timeout(LIST_TIMEOUT)
            .header(FORWARDED_BY, runtime.replica_id())
            .header(FORWARD_PROOF, proof);
        for value in headers.get_all(header::AUTHORIZATION) {
            request = request.header(header::AUTHORIZATION, value);
        }
        let answer = async {
            let response = request.send().await?.error_for_status()?;
            response.json::<PeerSessions>().await
        };
        match answer.await {
            Ok(list) => list.sessions,
            Err(err) => {
                tracing::warn!(peer = %peer.id, address = %peer.address, error = %without_url(&err),
                    "a replica did not list its sessions; the list goes without them");
                Vec::new()
            }
        }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// A peer's answer to `GET /sessions`.
#[derive(serde::Deserialize)]
struct PeerSessions {
    sessions: Vec<SessionInfo>,
}

/// Whether the request carries a proof this cluster made for it.
fn is_forwarded(runtime: &Runtime, headers: &HeaderMap, request: &ForwardedRequest<'_>) -> bool {
    let (Some(by), Some(proof)) = (
        headers.get(&FORWARDED_BY).and_then(|v| v.to_str().ok()),
        headers.get(&FORWARD_PROOF).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let valid = by != runtime.replica_id() && runtime.forward_proof().verify(by, proof, request);
    if !valid {
        tracing::info!(claimed_by = %by, "a request claims to be forwarded without a valid proof; treated as a client's");
    }
    valid
}

/// The caller the authentication layer put on the request.
fn caller(parts: &axum::http::request::Parts) -> Result<&Principal, ApiError> {
    parts
        .extensions
        .get::<Principal>()
        .ok_or_else(|| ApiError::Internal("forwarding before authentication".into()))
}

/// The MCP endpoint: its session header, or the session a tool call names, says where
/// a request is served.
const MCP_PATH: &str = "/mcp";
/// The header that carries an MCP session's id.
const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// Where an MCP request is served: at the replica its MCP session names; a tool call
/// without one (sessionless protocol) that names a runbox session, where that session
/// is; anything else here.
fn by_mcp(headers: &HeaderMap, body: &[u8]) -> Wants {
    if let Some(id) = headers.get(&MCP_SESSION_ID) {
        return id
            .to_str()
            .ok()
            .and_then(crate::mcp::session_holder)
            .map_or(Wants::Here, |replica| Wants::Replica(replica.to_string()));
    }
    let Ok(serde_json::Value::Object(message)) = serde_json::from_slice(body) else {
        return Wants::Here;
    };
    if message.get("method").and_then(|m| m.as_str()) != Some("tools/call") {
        return Wants::Here;
    }
    match message
        .get("params")
        .and_then(|params| params.get("arguments"))
        .and_then(|arguments| arguments.get("session_id"))
    {
        Some(serde_json::Value::String(id)) => Wants::ToolSession(id.clone()),
        _ => Wants::Here,
    }
}

/// The routes whose body says where they are served.
fn wants_body(method: &Method, path: &str) -> bool {
    *method == Method::POST
        && (path == "/execute" || (path.starts_with("/functions/") && path.ends_with("/call")))
}

fn by_path(method: &Method, path: &str) -> Wants {
    if path == "/runcode" && (*method == Method::POST || *method == Method::GET) {
        return Wants::Run;
    }
    if let Some(rest) = path.strip_prefix("/sessions/") {
        let id = rest.strip_suffix("/execute").unwrap_or(rest);
        if !id.is_empty() && !id.contains('/') {
            return Wants::Session(id.to_string());
        }
    }
    Wants::Here
}

/// `/execute` with a `session_id` goes where the session is; other code, and a function
/// called synchronously, is a run.
fn by_body(method: &Method, path: &str, body: &[u8]) -> Wants {
    if !wants_body(method, path) {
        return Wants::Here;
    }
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) else {
        // Served here, where it is answered 400.
        return Wants::Here;
    };
    if path == "/execute" {
        if let Some(serde_json::Value::String(id)) = fields.get("session_id") {
            return Wants::Session(id.clone());
        }
        return Wants::Run;
    }
    match fields.get("async") {
        Some(serde_json::Value::Bool(true)) => Wants::Here,
        _ => Wants::Run,
    }
}

/// The request headers a peer needs: who asks, what the body is, what answer is wanted,
/// and from which event on a stream resumes. Besides these, every `Mcp-*` header goes
/// along (the session, the protocol version, and the method, name and parameters the
/// sessionless protocol repeats in headers).
const PASSED_ON: [HeaderName; 5] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("last-event-id"),
];

/// Whether a request header goes to the peer.
fn passed_on(name: &HeaderName) -> bool {
    PASSED_ON.contains(name) || name.as_str().starts_with("mcp-")
}

async fn send(
    peers: &PeerClient,
    runtime: &Runtime,
    peer: &Peer,
    parts: &axum::http::request::Parts,
    path_and_query: &str,
    body: Bytes,
    proof: String,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut request = peers
        .client
        .request(
            parts.method.clone(),
            format!("{}{path_and_query}", peer.address),
        )
        .header(FORWARDED_BY, runtime.replica_id())
        .header(FORWARD_PROOF, proof)
        .body(body);
    for (name, value) in parts.headers.iter().filter(|(name, _)| passed_on(name)) {
        request = request.header(name, value);
    }
    request.send().await
}

/// Headers of one connection, not of the answer.
const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// The peer's answer as this replica's: its status, headers and body as they arrive.
/// `peer` counts against the peer's room until the body has been passed on.
fn relay(response: reqwest::Response, peer: Peer) -> Response {
    let status = response.status();
    let mut headers = response.headers().clone();
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if let Ok(id) = HeaderValue::from_str(&peer.id) {
        headers.insert(FORWARDED_TO, id);
    }
    let body = response.bytes_stream().map(move |chunk| {
        let _held = &peer;
        chunk.map_err(std::io::Error::other)
    });
    let mut answer = Body::from_stream(body).into_response();
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    answer
}

/// The error without the peer's URL twice.
fn without_url(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    if let Some(url) = err.url() {
        text = text.replace(&format!(" ({url})"), "");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_sessions_are_told_apart_by_path_and_body() {
        assert_eq!(by_path(&Method::POST, "/runcode"), Wants::Run);
        assert_eq!(by_path(&Method::GET, "/runcode"), Wants::Run);
        assert_eq!(
            by_path(&Method::GET, "/sessions/abc"),
            Wants::Session("abc".into())
        );
        assert_eq!(
            by_path(&Method::POST, "/sessions/abc/execute"),
            Wants::Session("abc".into())
        );
        assert_eq!(by_path(&Method::POST, "/sessions"), Wants::Here);
        assert_eq!(by_path(&Method::GET, "/sessions/"), Wants::Here);
        assert_eq!(by_path(&Method::GET, "/tasks/abc"), Wants::Here);
        assert_eq!(
            by_body(&Method::POST, "/execute", br#"{"code":"1"}"#),
            Wants::Run
        );
        assert_eq!(
            by_body(
                &Method::POST,
                "/execute",
                br#"{"code":"1","session_id":"s"}"#
            ),
            Wants::Session("s".into())
        );
        assert_eq!(
            by_body(&Method::POST, "/execute", br#"{"name":"f"}"#),
            Wants::Run
        );
        assert_eq!(by_body(&Method::POST, "/execute", b"not json"), Wants::Here);
        assert_eq!(
            by_body(&Method::POST, "/functions/f/call", br#"{"args":{}}"#),
            Wants::Run
        );
        assert_eq!(
            by_body(&Method::POST, "/functions/f/call", br#"{"async":true}"#),
            Wants::Here
        );
        assert_eq!(by_body(&Method::POST, "/functions", b"{}"), Wants::Here);
    }

    #[test]
    fn an_mcp_request_goes_by_its_session_header_then_by_the_session_a_tool_names() {
        let mut headers = HeaderMap::new();
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_python","arguments":{"code":"1","session_id":"s"}}}"#;
        assert_eq!(by_mcp(&headers, call), Wants::ToolSession("s".into()));
        assert_eq!(
            by_mcp(
                &headers,
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_python","arguments":{"code":"1"}}}"#
            ),
            Wants::Here
        );
        assert_eq!(
            by_mcp(
                &headers,
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#
            ),
            Wants::Here
        );
        assert_eq!(by_mcp(&headers, b"[1, 2]"), Wants::Here);
        headers.insert(MCP_SESSION_ID, HeaderValue::from_static("r-2.abc"));
        assert_eq!(by_mcp(&headers, call), Wants::Replica("r-2".into()));
        headers.insert(MCP_SESSION_ID, HeaderValue::from_static("abc"));
        assert_eq!(by_mcp(&headers, b""), Wants::Here);
    }

    #[test]
    fn the_headers_a_peer_needs_go_along_and_no_others() {
        for name in [
            "authorization",
            "content-type",
            "accept",
            "x-request-id",
            "last-event-id",
            "mcp-session-id",
            "mcp-protocol-version",
            "mcp-method",
            "mcp-name",
        ] {
            assert!(passed_on(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["cookie", "host", "content-length", "runbox-forward-proof"] {
            assert!(!passed_on(&HeaderName::from_static(name)), "{name}");
        }
    }
}
