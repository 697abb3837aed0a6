//! A tool call of an MCP session (the `initialize` handshake era) that names a runbox
//! session another replica holds. The MCP session stays where it lives (its notebook,
//! its stream); this one call goes to the session's holder as a sessionless request
//! (the 2026-07-28 protocol, in which each call names its state), with the caller's own
//! bearer token and a proof that a replica sent it, so the holder serves it itself. Its
//! answer, and the progress it notifies on the way, come back as this call's own.
//!
//! Sessionless requests need none of this: the forwarding middleware sends them where
//! the session they name is (`routes/forward.rs`).

use axum::http::header::{self, HeaderMap, HeaderValue};
use futures::StreamExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ProgressNotificationParam, ProgressToken,
};
use rmcp::service::Peer as Client;
use rmcp::{ErrorData as McpError, RoleServer};
use runbox_runtime::cluster::{ForwardedRequest, Peer};
use runbox_runtime::Runtime;
use serde_json::{json, Value};

use crate::peer_client::{PeerClient, FORWARDED_BY, FORWARD_PROOF};

/// The tools that work in a session a call may name.
pub(crate) const SESSION_TOOLS: [&str; 5] = [
    "run_python",
    "run_bash",
    "end_session",
    "upload_file",
    "download_file",
];

/// The protocol of the request sent to the holder: the sessionless one.
const SESSIONLESS: &str = "2026-07-28";
/// The id of that request (it is the only one on its connection).
const REQUEST_ID: u64 = 1;

/// Where the call is sent and on whose behalf.
pub(crate) struct Holder<'a> {
    pub runtime: &'a Runtime,
    pub client: &'a PeerClient,
    pub replica: Peer,
    /// The MCP request's headers: its `Authorization` goes along.
    pub incoming: &'a HeaderMap,
}

impl Holder<'_> {
    /// Calls `request` at the holder; `progress` is the caller's token and stream, when
    /// it asked for progress.
    pub async fn call(
        self,
        request: &CallToolRequestParams,
        progress: Option<(ProgressToken, Client<RoleServer>)>,
    ) -> Result<CallToolResult, McpError> {
        let body = sessionless_call(request, progress.as_ref().map(|(token, _)| token));
        let body = serde_json::to_vec(&body)
            .map_err(|err| McpError::internal_error(err.to_string(), None))?;
        let proof = self.runtime.forward_proof().sign(
            self.runtime.replica_id(),
            &ForwardedRequest {
                method: "POST",
                path_and_query: "/mcp",
                body: &body,
            },
        );
        let mut sent = self
            .client
            .client
            .post(format!("{}/mcp", self.replica.address))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", SESSIONLESS)
            .header("mcp-method", "tools/call")
            .header(FORWARDED_BY, self.runtime.replica_id())
            .header(FORWARD_PROOF, proof)
            .body(body);
        if let Ok(name) = HeaderValue::from_str(&request.name) {
            sent = sent.header("mcp-name", name);
        }
        for value in self.incoming.get_all(header::AUTHORIZATION) {
            sent = sent.header(header::AUTHORIZATION, value);
        }
        let unreachable = |err: reqwest::Error| {
            McpError::internal_error(
                format!(
                    "replica {} ({}), which holds the session, did not answer: {}",
                    self.replica.id,
                    self.replica.address,
                    err.without_url()
                ),
                None,
            )
        };
        let response = sent.send().await.map_err(unreachable)?;
        let status = response.status();
        let is_stream = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|kind| kind.starts_with("text/event-stream"));
        if !is_stream {
            let text = response.text().await.map_err(unreachable)?;
            return match serde_json::from_str::<Value>(&text) {
                Ok(message) if message.get("id").is_some() => answer(message),
                _ => Err(McpError::internal_error(
                    format!(
                        "replica {}, which holds the session, answered {status}: {text}",
                        self.replica.id
                    ),
                    None,
                )),
            };
        }
        let mut events = EventStream::default();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            for data in events.push(&chunk.map_err(unreachable)?) {
                let Ok(message) = serde_json::from_str::<Value>(&data) else {
                    continue;
                };
                if message.get("id").is_some() {
                    return answer(message);
                }
                relay_progress(&message, progress.as_ref()).await;
            }
        }
        Err(McpError::internal_error(
            format!(
                "replica {}, which holds the session, ended its answer before the result",
                self.replica.id
            ),
            None,
        ))
    }
}

/// The tool call as a sessionless request: the protocol and (empty) capabilities in
/// its `_meta`, with the caller's progress token when it gave one.
fn sessionless_call(request: &CallToolRequestParams, progress: Option<&ProgressToken>) -> Value {
    let mut meta = json!({
        "io.modelcontextprotocol/protocolVersion": SESSIONLESS,
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    if let (Some(token), Value::Object(meta)) = (progress, &mut meta) {
        meta.insert("progressToken".into(), json!(token));
    }
    json!({
        "jsonrpc": "2.0",
        "id": REQUEST_ID,
        "method": "tools/call",
        "params": {
            "name": request.name,
            "arguments": request.arguments.clone().unwrap_or_default(),
            "_meta": meta,
        },
    })
}

/// The holder's JSON-RPC response as this call's result or error.
fn answer(mut message: Value) -> Result<CallToolResult, McpError> {
    if let Some(error) = message.get_mut("error").map(Value::take) {
        return Err(serde_json::from_value(error.clone()).unwrap_or_else(|_| {
            McpError::internal_error(format!("the holder answered an error: {error}"), None)
        }));
    }
    let result = message
        .get_mut("result")
        .map(Value::take)
        .unwrap_or_default();
    serde_json::from_value(result).map_err(|err| {
        McpError::internal_error(
            format!("the holder's answer is not a tool result: {err}"),
            None,
        )
    })
}

/// A progress notification of the holder, passed on to the caller under its own token.
async fn relay_progress(message: &Value, progress: Option<&(ProgressToken, Client<RoleServer>)>) {
    let Some((token, client)) = progress else {
        return;
    };
    if message.get("method").and_then(Value::as_str) != Some("notifications/progress") {
        return;
    }
    let Some(Ok(mut param)) = message
        .get("params")
        .map(|params| serde_json::from_value::<ProgressNotificationParam>(params.clone()))
    else {
        return;
    };
    param.progress_token = token.clone();
    // A client that stopped listening does not stop the call.
    let _ = client.notify_progress(param).await;
}

/// Server-sent events as they arrive: the data of each whole event.
#[derive(Default)]
struct EventStream {
    pending: String,
}

impl EventStream {
    /// Takes `chunk` and returns the data of the events it completes (events without
    /// data, such as the stream's priming event, give none).
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending
            .push_str(&String::from_utf8_lossy(chunk).replace("\r\n", "\n"));
        let mut complete = Vec::new();
        while let Some(end) = self.pending.find("\n\n") {
            let event: String = self.pending.drain(..end + 2).collect();
            let data: Vec<&str> = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|data| data.strip_prefix(' ').unwrap_or(data))
                .collect();
            if !data.is_empty() && data.iter().any(|line| !line.is_empty()) {
                complete.push(data.join("\n"));
            }
        }
        complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_whole_before_their_data_is_read() {
        let mut events = EventStream::default();
        assert!(events.push(b"id: 0\nretry: 3000\ndata:\n\n").is_empty());
        assert!(events.push(b"data: {\"a\":").is_empty());
        assert_eq!(
            events.push(b"1}\r\n\r\ndata: 2\n\n"),
            vec!["{\"a\":1}", "2"]
        );
        assert_eq!(events.push(b"data: x\ndata: y\n\n"), vec!["x\ny"]);
    }

    #[test]
    fn the_holder_s_answer_is_the_call_s() {
        let ok = answer(json!({"jsonrpc": "2.0", "id": 1, "result": {
            "content": [{"type": "text", "text": "42"}], "isError": false}}))
        .expect("a result");
        assert_eq!(ok.is_error, Some(false));
        let refused = answer(json!({"jsonrpc": "2.0", "id": 1,
            "error": {"code": -32602, "message": "unknown tool"}}))
        .expect_err("an error");
        assert_eq!(refused.message, "unknown tool");
        assert_eq!(refused.code.0, -32602);
    }

    #[test]
    fn the_call_names_the_sessionless_protocol_and_the_caller_s_token() {
        let request: CallToolRequestParams = serde_json::from_value(json!({
            "name": "run_python", "arguments": {"code": "1", "session_id": "s"}}))
        .expect("params");
        let token = ProgressToken(rmcp::model::NumberOrString::Number(7));
        let call = sessionless_call(&request, Some(&token));
        assert_eq!(call["params"]["name"], "run_python");
        assert_eq!(call["params"]["arguments"]["session_id"], "s");
        assert_eq!(
            call["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            SESSIONLESS
        );
        assert_eq!(call["params"]["_meta"]["progressToken"], 7);
    }
}
