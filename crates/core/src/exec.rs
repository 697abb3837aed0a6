//! The one internal shape of "run this code" and of its outcome. The compatibility
//! surface (/runcode) and the native surface (/execute, sessions, functions) both map
//! onto these types; only the rendering of the response differs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::isolation::Isolation;
use crate::outputs::OutputItem;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    Bash,
}

impl Language {
    /// Accepts the names clients send; `None` means "Unsupported language".
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "python" | "python3" | "py" => Some(Language::Python),
            "bash" | "sh" | "shell" => Some(Language::Bash),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Bash => "bash",
        }
    }
}

/// How the agent treats python code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecMode {
    /// Like `python -c`: no value is computed (the /runcode contract).
    Script,
    /// Like a notebook cell: the trailing expression, else the global `result`, is the value.
    Cell,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// Relative path inside the sandbox's work dir.
    pub path: String,
    #[serde(with = "base64_bytes")]
    pub content: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct ExecRequest {
    pub language: Language,
    pub code: String,
    pub variables: Map<String, Value>,
    pub files: Vec<InputFile>,
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    pub mode: ExecMode,
    /// Call a function the code defines (stored functions) instead of only running it.
    pub call: Option<FunctionCall>,
    /// Only check that the code defines a callable of this name (function registration).
    pub check: Option<String>,
    /// Make notebook outputs (figures shown, `display()`, the value's rich
    /// representation); `/runcode` leaves it off and runs exactly as before.
    pub outputs: bool,
    /// The kernel boundary the run asks for (a session's is fixed when it opens).
    pub isolation: Isolation,
}

/// After running the code as a module, call `function(**args)`; its return is the value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub function: String,
    pub args: Map<String, Value>,
}

impl ExecRequest {
    pub fn new(language: Language, code: impl Into<String>, timeout: Duration) -> Self {
        ExecRequest {
            language,
            code: code.into(),
            variables: Map::new(),
            files: Vec::new(),
            env: BTreeMap::new(),
            timeout,
            mode: ExecMode::Script,
            call: None,
            check: None,
            outputs: false,
            isolation: Isolation::Standard,
        }
    }
}

/// Why user code failed: `syntax` (it does not parse), `runtime` (an exception or a
/// non-zero exit), `timeout` (killed at the wall-clock limit), `memory` (killed at the
/// memory limit), `output_limit` (wrote more than runbox keeps), `killed` (cancelled,
/// terminated or interrupted), `invalid_args` (a function call's arguments do not fit its
/// definition), `dependency` (the function's environment could not be built), `sandbox`
/// (what came out of the sandbox broke runbox's protocol with its agent, e.g. after the
/// code tampered with it; the sandbox was destroyed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Syntax,
    Runtime,
    Timeout,
    Memory,
    OutputLimit,
    Killed,
    InvalidArgs,
    Dependency,
    Sandbox,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "syntax",
            ErrorKind::Runtime => "runtime",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Memory => "memory",
            ErrorKind::OutputLimit => "output_limit",
            ErrorKind::Killed => "killed",
            ErrorKind::InvalidArgs => "invalid_args",
            ErrorKind::Dependency => "dependency",
            ErrorKind::Sandbox => "sandbox",
        }
    }
}

/// How user code failed (`error` of the result object).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecError {
    pub kind: ErrorKind,
    pub message: String,
    /// The Python traceback, or pip's log for `dependency`.
    #[serde(default)]
    pub traceback: Option<String>,
}

impl ExecError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ExecError {
            kind,
            message: message.into(),
            traceback: None,
        }
    }
}

/// An image file the code left in its work dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFile {
    pub name: String,
    pub mime: String,
    pub data: Vec<u8>,
}

/// What a sandbox run produced. User-code failures live in `error`; failures of runbox
/// itself are `Err` values of the sandbox crate, never an `ExecOutcome`.
#[derive(Clone, Debug, Default)]
pub struct ExecOutcome {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i64>,
    pub value: Option<Value>,
    pub error: Option<ExecError>,
    pub images: Vec<ImageFile>,
    /// The display items, in the order they were made.
    pub outputs: Vec<OutputItem>,
    pub truncated: bool,
    pub execution_time: Duration,
}

impl ExecOutcome {
    pub fn failed(kind: ErrorKind, message: impl Into<String>) -> Self {
        ExecOutcome {
            error: Some(ExecError::new(kind, message)),
            ..ExecOutcome::default()
        }
    }

    pub fn success(&self) -> bool {
        self.error.is_none()
    }
}

/// Output as it happens, for streaming responses.
#[derive(Clone, Debug, PartialEq)]
pub enum ExecEvent {
    Stdout(String),
    Stderr(String),
    /// A display item, as it is made (in order with the output around it).
    Display(OutputItem),
}

/// Mime type for the image extensions runbox returns; `None` for anything else.
pub fn image_mime(file_name: &str) -> Option<&'static str> {
    let extension = file_name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "webp" => "image/webp",
        _ => return None,
    })
}

/// Whether `data` begins the way a file of `mime` (one of [`image_mime`]'s) does, so
/// that bytes of another kind (HTML named `x.png`) are never served as an image.
pub fn image_signature_matches(mime: &str, data: &[u8]) -> bool {
    match mime {
        "image/png" => data.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => data.starts_with(&[0xff, 0xd8, 0xff]),
        "image/gif" => data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a"),
        "image/webp" => data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP",
        "image/svg+xml" => looks_like_svg(data),
        _ => false,
    }
}

/// An SVG is XML text whose first element is `<svg`; before it may come a byte-order
/// mark, white space, an XML declaration, comments and a doctype.
fn looks_like_svg(data: &[u8]) -> bool {
    let head = &data[..data.len().min(4096)];
    let Ok(text) =
        std::str::from_utf8(head).or_else(|e| std::str::from_utf8(&head[..e.valid_up_to()]))
    else {
        return false;
    };
    let mut rest = text.trim_start_matches('\u{feff}').trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("<?") {
            let Some((_, tail)) = after.split_once("?>") else {
                return false;
            };
            rest = tail.trim_start();
        } else if let Some(after) = rest.strip_prefix("<!--") {
            let Some((_, tail)) = after.split_once("-->") else {
                return false;
            };
            rest = tail.trim_start();
        } else if let Some(after) = rest.strip_prefix("<!") {
            let Some((_, tail)) = after.split_once('>') else {
                return false;
            };
            rest = tail.trim_start();
        } else {
            return rest.starts_with("<svg")
                && rest[4..].starts_with(|c: char| c.is_whitespace() || c == '>' || c == '/');
        }
    }
}

mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_parse_case_insensitively() {
        assert_eq!(Language::parse("Python"), Some(Language::Python));
        assert_eq!(Language::parse("bash"), Some(Language::Bash));
        assert_eq!(Language::parse("cobol"), None);
    }

    #[test]
    fn image_extensions_map_to_mime_types() {
        assert_eq!(image_mime("plot.PNG"), Some("image/png"));
        assert_eq!(image_mime("a.svg"), Some("image/svg+xml"));
        assert_eq!(image_mime("notes.txt"), None);
        assert_eq!(image_mime("png"), None);
    }

    #[test]
    fn image_contents_must_match_their_names() {
        assert!(image_signature_matches(
            "image/png",
            b"\x89PNG\r\n\x1a\n...."
        ));
        assert!(!image_signature_matches(
            "image/png",
            b"<html><script>alert(1)</script>"
        ));
        assert!(image_signature_matches(
            "image/jpeg",
            &[0xff, 0xd8, 0xff, 0xe0]
        ));
        assert!(image_signature_matches("image/gif", b"GIF89a..."));
        assert!(image_signature_matches(
            "image/webp",
            b"RIFF\0\0\0\0WEBPVP8 "
        ));
        assert!(!image_signature_matches("image/webp", b"RIFF\0\0\0\0WAVE"));
        let svg =
            "\u{feff}<?xml version=\"1.0\"?>\n<!-- a plot -->\n<!DOCTYPE svg>\n<svg xmlns=\"x\"/>";
        assert!(image_signature_matches("image/svg+xml", svg.as_bytes()));
        assert!(!image_signature_matches(
            "image/svg+xml",
            b"<html><svg></svg></html>"
        ));
        assert!(!image_signature_matches("image/svg+xml", b"<svgx>"));
        assert!(!image_signature_matches("image/png", b""));
    }

    #[test]
    fn input_files_travel_as_base64() {
        let file = InputFile {
            path: "a.bin".into(),
            content: vec![0, 255, 7],
        };
        let json = serde_json::to_value(&file).expect("serializes");
        assert_eq!(json["content"], "AP8H");
        let back: InputFile = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, file);
    }
}
