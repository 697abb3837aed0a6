//! Frames over the engine's attach stream. The container has no network interface at all;
//! this also works against a remote engine.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::messages::{parse_message, report_failed_preload, EventForwarder, ExecEnd};
use crate::backend::{Attached, Backend, InputWriter, OutputChunk, OutputStream};
use crate::frame::{encode_frame, FrameDecoder};
use crate::protocol::{AgentMessage, ExecMessage, PING};
use crate::SandboxError;

/// The agent's own stderr is diagnostics; only its tail is kept.
const DIAGNOSTICS_TAIL: usize = 4096;
/// Messages buffered between the attach stream and the exec loop; when full, runbox
/// stops reading and the agent blocks on its writes (backpressure, bounded memory).
const CHANNEL_DEPTH: usize = 64;

pub(crate) struct StdioConnection {
    input: InputWriter,
    messages: mpsc::Receiver<Result<AgentMessage, SandboxError>>,
    reader: JoinHandle<()>,
    diagnostics: Arc<Mutex<String>>,
}

impl Drop for StdioConnection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl StdioConnection {
    /// Attaches to a created (not yet started) container, so that nothing the agent
    /// writes at start-up is missed.
    pub async fn attach(
        engine: &dyn Backend,
        id: &str,
        max_frame: usize,
    ) -> Result<Self, SandboxError> {
        let Attached { input, output } = engine
            .attach(id)
            .await
            .map_err(SandboxError::docker("attaching to a sandbox"))?;
        let (tx, messages) = mpsc::channel(CHANNEL_DEPTH);
        let diagnostics = Arc::new(Mutex::new(String::new()));
        let reader = tokio::spawn(read_loop(output, tx, max_frame, diagnostics.clone()));
        Ok(StdioConnection {
            input,
            messages,
            reader,
            diagnostics,
        })
    }

    pub async fn wait_ready(&mut self, within: Duration) -> Result<Vec<String>, SandboxError> {
        let wait = async {
            loop {
                match self.messages.recv().await {
                    Some(Ok(AgentMessage::Ready { preloaded, failed })) => {
                        report_failed_preload(&failed);
                        return Ok(preloaded);
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(err)) => return Err(err),
                    None => {
                        return Err(SandboxError::AgentExited(self.diagnostics()));
                    }
                }
            }
        };
        tokio::time::timeout(within, wait)
            .await
            .map_err(|_| SandboxError::AgentStartup(within))?
    }

    pub async fn exec(
        &mut self,
        message: &ExecMessage<'_>,
        events: &mut EventForwarder<'_>,
    ) -> Result<ExecEnd, SandboxError> {
        self.send(message).await?;
        loop {
            match self.messages.recv().await {
                Some(Ok(message)) => {
                    if let Some(result) = events.handle(message).await {
                        return Ok(ExecEnd::Result(result));
                    }
                }
                Some(Err(err)) => return Err(err),
                None => return Ok(ExecEnd::Lost),
            }
        }
    }

    pub async fn ping(&mut self, within: Duration) -> bool {
        let round_trip = async {
            self.send(&PING).await.ok()?;
            loop {
                match self.messages.recv().await {
                    Some(Ok(AgentMessage::Pong)) => return Some(()),
                    Some(Ok(_)) => continue,
                    _ => return None,
                }
            }
        };
        matches!(tokio::time::timeout(within, round_trip).await, Ok(Some(())))
    }

    pub fn seems_alive(&self) -> bool {
        !self.reader.is_finished()
    }

    pub fn diagnostics(&self) -> String {
        self.diagnostics
            .lock()
            .map(|text| text.trim().to_string())
            .unwrap_or_default()
    }

    async fn send(&mut self, message: &impl serde::Serialize) -> Result<(), SandboxError> {
        let frame = encode_frame(message)?;
        let write = async {
            self.input.write_all(&frame).await?;
            self.input.flush().await
        };
        // A write to a dead container's stdin fails or, when the pipe is full, never ends.
        match tokio::time::timeout(Duration::from_secs(10), write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SandboxError::Protocol(format!(
                "cannot write to the agent: {e}"
            ))),
            Err(_) => Err(SandboxError::Protocol(
                "the agent did not read its input for 10 s".into(),
            )),
        }
    }
}

async fn read_loop(
    mut output: OutputStream,
    tx: mpsc::Sender<Result<AgentMessage, SandboxError>>,
    max_frame: usize,
    diagnostics: Arc<Mutex<String>>,
) {
    let mut decoder = FrameDecoder::new(max_frame);
    while let Some(item) = output.next().await {
        match item {
            Ok(OutputChunk::Stdout(message)) => {
                decoder.push(&message);
                loop {
                    match decoder.next_frame() {
                        Ok(Some(frame)) => {
                            if tx.send(parse_message(&frame)).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(err) => {
                            let _ = tx.send(Err(err)).await;
                            return;
                        }
                    }
                }
            }
            Ok(OutputChunk::Stderr(message)) => {
                let text = String::from_utf8_lossy(&message);
                tracing::debug!(agent_stderr = %text.trim_end(), "sandbox agent diagnostics");
                if let Ok(mut tail) = diagnostics.lock() {
                    tail.push_str(&text);
                    if tail.len() > DIAGNOSTICS_TAIL {
                        let mut cut = tail.len() - DIAGNOSTICS_TAIL;
                        while !tail.is_char_boundary(cut) {
                            cut += 1;
                        }
                        tail.drain(..cut);
                    }
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "attach stream ended with an error");
                return;
            }
        }
    }
}
