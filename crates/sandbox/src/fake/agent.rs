//! The fake engine's stand-in for docker/agent.py: speaks the stdio protocol (frames of
//! frame.rs, messages of protocol.rs). It says `ready` with the modules of
//! RUNBOX_PRELOAD, answers `ping` with `pong` and `exec` with a result whose stdout is
//! the code itself, and exits when its stdin closes, as the real agent does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, DuplexStream};
use tokio::sync::mpsc;

use crate::backend::{BackendError, OutputChunk};
use crate::frame::{encode_frame, FrameDecoder};

pub(super) type OutputSender = mpsc::Sender<Result<OutputChunk, BackendError>>;

/// What a fake container's agent works with.
pub(super) struct AgentIo {
    pub stdin: DuplexStream,
    pub stdout: OutputSender,
}

/// How the agent behaves.
pub(super) struct AgentPlan {
    pub preload: Vec<String>,
    pub answer_delay: Duration,
    /// Set when the container died without its output noticing: the next message
    /// finds the agent gone, as a pooled sandbox that died while idle.
    pub died: Arc<AtomicBool>,
}

/// Runs until stdin closes (or the container dies); `ready` is called once the ready
/// frame is out.
pub(super) async fn run(io: AgentIo, plan: AgentPlan, ready: impl FnOnce()) {
    let AgentIo { mut stdin, stdout } = io;
    let hello = json!({"type": "ready", "preloaded": plan.preload, "failed": []});
    let sent = send(&stdout, &hello).await;
    ready();
    if !sent {
        return;
    }
    let mut decoder = FrameDecoder::new(1 << 24);
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match stdin.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        decoder.push(&buffer[..read]);
        while let Ok(Some(frame)) = decoder.next_frame() {
            if plan.died.load(Ordering::SeqCst) {
                return;
            }
            let Ok(message) = serde_json::from_slice::<Value>(&frame) else {
                return;
            };
            let answer = match message.get("type").and_then(Value::as_str) {
                Some("ping") => json!({"type": "pong"}),
                Some("exec") => {
                    tokio::time::sleep(plan.answer_delay).await;
                    let code = message.get("code").and_then(Value::as_str).unwrap_or("");
                    json!({
                        "type": "result",
                        "stdout": code,
                        "stderr": "",
                        "exit_code": 0,
                        "duration_ms": 1.0,
                    })
                }
                _ => continue,
            };
            if !send(&stdout, &answer).await {
                return;
            }
        }
    }
}

async fn send(stdout: &OutputSender, message: &Value) -> bool {
    let Ok(frame) = encode_frame(message) else {
        return false;
    };
    stdout
        .send(Ok(OutputChunk::Stdout(Bytes::from(frame))))
        .await
        .is_ok()
}
