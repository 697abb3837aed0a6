//! What both transports do with the agent's messages: read them, pass streamed output
//! on within its caps, and tell how an exec ended.

use runbox_core::ExecEvent;
use tokio::sync::mpsc;

use crate::outputs::OutputBudget;
use crate::protocol::{AgentMessage, AgentResult, OutputCaps};
use crate::SandboxError;

/// How an exec ended, from the transport's point of view.
pub(crate) enum ExecEnd {
    /// The agent answered with a result.
    Result(Box<AgentResult>),
    /// The agent went away before answering (the container died or was killed).
    Lost,
}

/// Passes streamed output and display items on to the caller, within the same caps as
/// the final result so that a streaming client cannot be sent more than a buffered one.
pub(crate) struct EventForwarder<'a> {
    sink: Option<&'a mpsc::Sender<ExecEvent>>,
    stdout_left: u64,
    stderr_left: u64,
    outputs: OutputBudget,
}

impl<'a> EventForwarder<'a> {
    pub fn new(sink: Option<&'a mpsc::Sender<ExecEvent>>, caps: OutputCaps) -> Self {
        EventForwarder {
            sink,
            stdout_left: caps.output_bytes,
            stderr_left: caps.output_bytes,
            outputs: OutputBudget::new(caps.outputs_bytes, caps.image_bytes),
        }
    }

    /// Handles one message of an exec; returns the result when it is the final one.
    pub async fn handle(&mut self, message: AgentMessage) -> Option<Box<AgentResult>> {
        match message {
            AgentMessage::Result(result) => Some(result),
            AgentMessage::Stdout { data } => {
                let data = take_within(data, &mut self.stdout_left);
                self.forward(data.map(ExecEvent::Stdout)).await;
                None
            }
            AgentMessage::Stderr { data } => {
                let data = take_within(data, &mut self.stderr_left);
                self.forward(data.map(ExecEvent::Stderr)).await;
                None
            }
            AgentMessage::Display { output } => {
                let item = self.outputs.admit(&output);
                self.forward(item.map(ExecEvent::Display)).await;
                None
            }
            AgentMessage::Ready { .. } | AgentMessage::Pong => None,
        }
    }

    async fn forward(&mut self, event: Option<ExecEvent>) {
        if let (Some(sink), Some(event)) = (self.sink, event) {
            // A receiver that went away (client disconnected) is not an error here: the
            // request is being cancelled and the sandbox will be removed with it.
            let _ = sink.send(event).await;
        }
    }
}

fn take_within(mut data: String, left: &mut u64) -> Option<String> {
    if *left == 0 || data.is_empty() {
        return None;
    }
    let budget = usize::try_from(*left).unwrap_or(usize::MAX);
    if data.len() > budget {
        let mut cut = budget;
        while !data.is_char_boundary(cut) {
            cut -= 1;
        }
        data.truncate(cut);
    }
    *left = left.saturating_sub(data.len() as u64);
    Some(data)
}

/// A module of `sandbox.preload` that does not import is worth a warning, not a failure:
/// the code that needs it will say so itself.
pub(super) fn report_failed_preload(failed: &serde_json::Value) {
    let nothing = failed.is_null() || failed.as_array().is_some_and(Vec::is_empty);
    if !nothing {
        tracing::warn!(%failed, "some sandbox.preload modules failed to import");
    }
}

pub(super) fn parse_message(frame: &[u8]) -> Result<AgentMessage, SandboxError> {
    AgentMessage::parse(frame)
        .map_err(|e| SandboxError::Protocol(format!("an unreadable message from the agent: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streamed_output_is_capped_like_the_result() {
        let (tx, mut rx) = mpsc::channel(8);
        let caps = OutputCaps {
            output_bytes: 5,
            output_kill_bytes: 64,
            image_bytes: 64,
            outputs_bytes: 64,
        };
        let mut forwarder = EventForwarder::new(Some(&tx), caps);
        for chunk in ["abc", "defg", "hij"] {
            let message = AgentMessage::Stdout { data: chunk.into() };
            assert!(forwarder.handle(message).await.is_none());
        }
        drop(tx);
        let mut seen = String::new();
        while let Some(ExecEvent::Stdout(text)) = rx.recv().await {
            seen.push_str(&text);
        }
        assert_eq!(seen, "abcde");
    }

    #[tokio::test]
    async fn display_items_are_checked_before_they_are_passed_on() {
        let (tx, mut rx) = mpsc::channel(8);
        let caps = OutputCaps {
            output_bytes: 5,
            output_kill_bytes: 64,
            image_bytes: 64,
            outputs_bytes: 1024,
        };
        let mut forwarder = EventForwarder::new(Some(&tx), caps);
        for output in [
            serde_json::json!({"type": "display_data", "data": {"text/plain": "ok"}}),
            serde_json::json!({"type": "forged", "data": {"text/plain": "no"}}),
        ] {
            let message = AgentMessage::Display { output };
            assert!(forwarder.handle(message).await.is_none());
        }
        drop(tx);
        let mut items = Vec::new();
        while let Some(event) = rx.recv().await {
            items.push(event);
        }
        assert_eq!(items.len(), 1);
        assert!(matches!(&items[0], ExecEvent::Display(item) if item.data.len() == 1));
    }
}
