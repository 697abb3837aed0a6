//! The messages of docs/agent-protocol.md and their translation into core's types.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use runbox_core::exec::{image_mime, image_signature_matches};
use runbox_core::{
    ExecError, ExecMode, ExecOutcome, ExecRequest, FunctionCall, ImageFile, InputFile, Language,
    OutputItem,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::outputs::OutputBudget;

/// Caps the agent applies; runbox applies them again to what it receives.
#[derive(Clone, Copy, Debug)]
pub struct OutputCaps {
    pub output_bytes: u64,
    pub output_kill_bytes: u64,
    pub image_bytes: u64,
    /// The text of the notebook outputs, in all.
    pub outputs_bytes: u64,
}

impl OutputCaps {
    /// The largest frame a well-behaved agent can send under these caps: two capped
    /// streams and the outputs' text (JSON escaping can grow text up to 6×), base64
    /// images (4/3) and slack.
    pub fn max_frame(&self) -> usize {
        let text = self
            .output_bytes
            .saturating_mul(2)
            .saturating_add(self.outputs_bytes)
            .saturating_mul(6);
        let images = self.image_bytes.saturating_mul(4) / 3 + 4096;
        usize::try_from(text.saturating_add(images).saturating_add(1 << 20)).unwrap_or(usize::MAX)
    }
}

#[derive(Serialize)]
pub struct ExecMessage<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub language: Language,
    pub mode: ExecMode,
    pub code: &'a str,
    pub variables: &'a Map<String, Value>,
    pub files: &'a [InputFile],
    pub env: &'a BTreeMap<String, String>,
    pub stream: bool,
    pub persistent: bool,
    /// The agent stops the code at this limit itself and answers with the output so far;
    /// runbox's own timer, a little later, is the backstop.
    pub timeout_ms: u64,
    pub output_bytes: u64,
    pub output_kill_bytes: u64,
    pub image_bytes: u64,
    /// Make notebook outputs (docs/agent-protocol.md, Outputs).
    pub outputs: bool,
    pub outputs_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<&'a FunctionCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<&'a str>,
}

/// `{"type": "ping"}`: the agent answers `pong` when it is idle and alive.
#[derive(Serialize)]
pub struct PingMessage {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

pub const PING: PingMessage = PingMessage { kind: "ping" };

impl<'a> ExecMessage<'a> {
    pub fn new(request: &'a ExecRequest, caps: OutputCaps, stream: bool, persistent: bool) -> Self {
        ExecMessage {
            kind: "exec",
            language: request.language,
            mode: request.mode,
            code: &request.code,
            variables: &request.variables,
            files: &request.files,
            env: &request.env,
            stream,
            persistent,
            timeout_ms: u64::try_from(request.timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            output_bytes: caps.output_bytes,
            output_kill_bytes: caps.output_kill_bytes,
            image_bytes: caps.image_bytes,
            outputs: request.outputs,
            outputs_bytes: caps.outputs_bytes,
            call: request.call.as_ref(),
            check: request.check.as_deref(),
        }
    }
}

#[derive(Debug)]
pub enum AgentMessage {
    Ready {
        preloaded: Vec<String>,
        /// Modules that failed to import (names, or objects with a reason).
        failed: Value,
    },
    Stdout {
        data: String,
    },
    Stderr {
        data: String,
    },
    /// A display item as it is made (unchecked: see `outputs.rs`).
    Display {
        output: Value,
    },
    Pong,
    Result(Box<AgentResult>),
}

#[derive(Deserialize)]
struct ReadyFields {
    #[serde(default)]
    preloaded: Vec<String>,
    #[serde(default)]
    failed: Value,
}

#[derive(Deserialize)]
struct OutputFields {
    data: String,
}

#[derive(Deserialize)]
struct DisplayFields {
    output: Value,
}

impl AgentMessage {
    /// Reads one frame's body. Not `#[serde(tag = "type")]`: an internally tagged enum
    /// buffers its fields, and a buffered number (kept as its JSON text so that integers
    /// stay exact) no longer reads as an `f64` or `i64` field.
    pub fn parse(frame: &[u8]) -> Result<Self, serde_json::Error> {
        let message: Value = serde_json::from_slice(frame)?;
        let kind = message.get("type").and_then(Value::as_str).unwrap_or("");
        Ok(match kind {
            "ready" => {
                let ReadyFields { preloaded, failed } = serde_json::from_value(message)?;
                AgentMessage::Ready { preloaded, failed }
            }
            "stdout" => AgentMessage::Stdout {
                data: serde_json::from_value::<OutputFields>(message)?.data,
            },
            "stderr" => AgentMessage::Stderr {
                data: serde_json::from_value::<OutputFields>(message)?.data,
            },
            "display" => AgentMessage::Display {
                output: serde_json::from_value::<DisplayFields>(message)?.output,
            },
            "pong" => AgentMessage::Pong,
            "result" => AgentMessage::Result(Box::new(serde_json::from_value(message)?)),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "unknown message type {other:?}"
                )))
            }
        })
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct AgentResult {
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    #[serde(default)]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub has_value: bool,
    #[serde(default)]
    pub value: Value,
    #[serde(default)]
    pub error: Option<ExecError>,
    #[serde(default)]
    pub images: Vec<AgentImage>,
    /// Display items, unchecked (see `outputs.rs`).
    #[serde(default)]
    pub outputs: Vec<Value>,
    #[serde(default)]
    pub truncated: bool,
    #[serde(default)]
    pub duration_ms: f64,
    /// A session's interpreter is gone (timeout, crash): the session cannot go on.
    #[serde(default)]
    pub session_ended: bool,
}

#[derive(Debug, Deserialize)]
pub struct AgentImage {
    pub name: String,
    pub data_base64: String,
}

impl AgentResult {
    /// Applies runbox's own caps (the agent is inside the sandbox and not trusted) and
    /// keeps only images whose names are plain file names with an image extension.
    pub fn into_outcome(self, caps: OutputCaps) -> ExecOutcome {
        let mut truncated = self.truncated;
        let stdout = cap_text(self.stdout, caps.output_bytes, &mut truncated);
        let stderr = cap_text(self.stderr, caps.output_bytes, &mut truncated);
        // As the agent does: the outputs' images first, the image files get what is left.
        let mut budget = OutputBudget::new(caps.outputs_bytes, caps.image_bytes);
        let outputs: Vec<OutputItem> = self
            .outputs
            .iter()
            .filter_map(|raw| budget.admit(raw))
            .collect();
        truncated |= budget.truncated;
        let mut images = Vec::new();
        let mut image_total = caps.image_bytes - budget.images;
        for image in self.images {
            let plain_name = !image.name.is_empty()
                && !image.name.contains(['/', '\\', '\0'])
                && image.name != "."
                && image.name != "..";
            let Some(mime) = image_mime(&image.name).filter(|_| plain_name) else {
                continue;
            };
            let Ok(data) = STANDARD.decode(image.data_base64.as_bytes()) else {
                continue;
            };
            // Bytes that are not what their name says are not an image of the run.
            if !image_signature_matches(mime, &data) {
                continue;
            }
            image_total = image_total.saturating_add(data.len() as u64);
            if image_total > caps.image_bytes {
                truncated = true;
                continue;
            }
            images.push(ImageFile {
                name: image.name,
                mime: mime.to_string(),
                data,
            });
        }
        ExecOutcome {
            stdout,
            stderr,
            exit_code: self.exit_code,
            value: self.has_value.then_some(self.value),
            error: self.error,
            images,
            outputs,
            truncated,
            // The agent is inside the sandbox: a forged, negative, infinite or NaN
            // duration must not panic the server.
            execution_time: Duration::try_from_secs_f64(self.duration_ms / 1000.0)
                .unwrap_or_default(),
        }
    }
}

fn cap_text(mut text: String, cap: u64, truncated: &mut bool) -> String {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    if text.len() > cap {
        let mut cut = cap;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        *truncated = true;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> OutputCaps {
        OutputCaps {
            output_bytes: 8,
            output_kill_bytes: 64,
            image_bytes: 6,
            outputs_bytes: 1024,
        }
    }

    #[test]
    fn a_result_is_capped_again_by_runbox() {
        let result: AgentResult = serde_json::from_value(serde_json::json!({
            "stdout": "ééééé", "stderr": "", "exit_code": 0, "has_value": true, "value": 3,
            "images": [
                {"name": "a.gif", "data_base64": "R0lGODlh"},
                {"name": "html.png", "data_base64": "PGh0bWw+"},
                {"name": "../etc/passwd.gif", "data_base64": "R0lGODlh"},
                {"name": "b.gif", "data_base64": "R0lGODlh"}
            ]
        }))
        .expect("parses");
        let outcome = result.into_outcome(caps());
        assert_eq!(outcome.stdout, "éééé");
        assert!(outcome.truncated);
        assert_eq!(outcome.value, Some(serde_json::json!(3)));
        assert_eq!(
            outcome.images.len(),
            1,
            "HTML named png and traversal name dropped, cap reached"
        );
        assert_eq!(outcome.images[0].name, "a.gif");
    }

    #[test]
    fn a_forged_duration_does_not_panic() {
        for duration in [f64::INFINITY, f64::NAN, -5.0, 1e300] {
            let result = AgentResult {
                duration_ms: duration,
                ..AgentResult::default()
            };
            assert_eq!(result.into_outcome(caps()).execution_time, Duration::ZERO);
        }
    }

    #[test]
    fn messages_parse_by_type() {
        let ready = AgentMessage::parse(br#"{"type":"ready","pid":7}"#).expect("ready");
        assert!(matches!(ready, AgentMessage::Ready { .. }));
        let out = AgentMessage::parse(br#"{"type":"stdout","data":"hi"}"#).expect("stdout");
        assert!(matches!(out, AgentMessage::Stdout { data } if data == "hi"));
        assert!(AgentMessage::parse(br#"{"type":"forged"}"#).is_err());
    }

    #[test]
    fn a_result_keeps_integers_of_any_size_and_reads_its_numbers() {
        let frame = br#"{"type":"result","exit_code":0,"has_value":true,
            "value":[1180591620717411303424,-18446744073709551617,0.5],"duration_ms":12.5}"#;
        let Ok(AgentMessage::Result(result)) = AgentMessage::parse(frame) else {
            panic!("a result");
        };
        assert_eq!(result.exit_code, Some(0));
        assert_eq!(result.duration_ms, 12.5);
        assert_eq!(
            result.value.to_string(),
            "[1180591620717411303424,-18446744073709551617,0.5]"
        );
    }
}
