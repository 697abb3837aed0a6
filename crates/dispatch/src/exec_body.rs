//! The body of `POST /execute` and `POST /sessions/{id}/execute`, and its checks: what
//! the sandbox could not do anything sensible with is a 400 naming the field here,
//! before any container is involved.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use runbox_core::numbers;
use runbox_core::{Config, ExecMode, ExecRequest, InputFile, Isolation, Language};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// Code to run. Fields runbox does not know are ignored; a known field of the wrong type,
/// a bad file path or bad base64 is 400 naming the field.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"code": "result = x + y", "context": {"x": 10, "y": 20}, "timeout": 5.0}))]
pub struct ExecBody {
    /// Python runs like a notebook cell: the value of a trailing expression (else of the
    /// global `result`) is returned as `value`.
    pub code: String,
    /// `python` (default) or `bash`; a session's language when run in a session.
    #[serde(default)]
    #[schema(value_type = Option<Language>)]
    pub language: Option<String>,
    /// Globals for python (JSON values as Python objects), environment variables for
    /// bash (stringified; names must be valid variable names). Alias: `variables`.
    #[serde(default, alias = "variables")]
    pub context: Option<Map<String, Value>>,
    /// Seconds, above 0; capped by `limits.max_timeout`. Default: `limits.timeout`.
    #[serde(default)]
    #[schema(exclusive_minimum = 0)]
    pub timeout: Option<f64>,
    /// Files written into the working directory before the code runs; at most
    /// `limits.file_bytes` decoded in all (413 beyond).
    #[serde(default)]
    pub files: Option<Vec<FileBody>>,
    /// Extra environment variables (names without `=` or NUL, values without NUL).
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    /// Stream the run as server-sent events (same as `Accept: text/event-stream`; an
    /// explicit `false` wins over the header).
    #[serde(default)]
    pub stream: Option<bool>,
    /// Run in this session instead of a fresh sandbox (`POST /execute` only).
    #[serde(default)]
    pub session_id: Option<String>,
    /// `standard` (default), `strong` (a kernel of its own: gVisor), or an OCI runtime
    /// the engine has; refused (400) when no engine offers it, never downgraded. A
    /// token's own isolation is the least a run gets; a session's is fixed when it opens.
    #[serde(default)]
    #[schema(example = "strong")]
    pub isolation: Option<String>,
}

/// `isolation` of a body: a tier or a runtime's name (400 naming the field otherwise).
pub fn parse_isolation(text: Option<&str>) -> ApiResult<Isolation> {
    match text {
        None => Ok(Isolation::Standard),
        Some(text) => Isolation::parse(text).ok_or_else(|| {
            ApiError::invalid_field(
                "isolation",
                format!("`{text}` is not standard, strong or a runtime's name"),
            )
        }),
    }
}

/// An input file.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct FileBody {
    /// Relative to the working directory; never absolute, never with `..`.
    #[schema(example = "data.csv")]
    pub path: String,
    /// The content, base64 (line breaks allowed).
    #[schema(example = "YSxiCjEsMgo=")]
    pub content_base64: String,
}

impl ExecBody {
    /// The request to run; python runs as a notebook cell (its value is returned).
    pub fn into_request(
        self,
        config: &Config,
        default_language: Language,
    ) -> ApiResult<ExecRequest> {
        let language = match self.language.as_deref().map(str::trim) {
            None | Some("") => default_language,
            Some(name) => Language::parse(name).ok_or_else(|| {
                ApiError::invalid_field(
                    "language",
                    format!("unsupported language `{name}` (python or bash)"),
                )
            })?,
        };
        if self.code.contains('\0') {
            return Err(ApiError::invalid_field(
                "code",
                "must not contain NUL characters",
            ));
        }
        let timeout = config.clamp_timeout(self.timeout.map(seconds).transpose()?);
        let variables = self.context.unwrap_or_default();
        if let Some(inexact) = numbers::find_inexact_in(&variables) {
            return Err(ApiError::invalid_field(
                format!("context.{}", inexact.path),
                inexact.message,
            ));
        }
        if language == Language::Bash {
            for name in variables.keys() {
                if !env_name_ok(name) {
                    return Err(ApiError::invalid_field(
                        format!("context.{name}"),
                        "bash receives the context as environment variables; this is not a variable name",
                    ));
                }
            }
        }
        let env = self.env.unwrap_or_default();
        for (name, value) in &env {
            if !env_name_ok(name) || value.contains('\0') {
                return Err(ApiError::invalid_field(
                    format!("env.{name}"),
                    "names must be non-empty without `=` or NUL, values without NUL",
                ));
            }
        }
        let files = decode_files(
            self.files.unwrap_or_default(),
            config.limits.file_bytes.bytes(),
        )?;
        let mut request = ExecRequest::new(language, self.code, timeout);
        request.mode = match language {
            Language::Python => ExecMode::Cell,
            Language::Bash => ExecMode::Script,
        };
        request.variables = variables;
        request.env = env;
        request.files = files;
        request.isolation = parse_isolation(self.isolation.as_deref())?;
        // The native surface shows what a notebook would (figures, display(), rich
        // values); the compatibility surface does not ask for it.
        request.outputs = true;
        Ok(request)
    }
}

fn seconds(value: f64) -> ApiResult<Duration> {
    if !value.is_finite() || value <= 0.0 {
        return Err(ApiError::invalid_field(
            "timeout",
            "must be a positive number of seconds",
        ));
    }
    // Anything above a day is capped by limits.max_timeout anyway.
    Ok(Duration::from_secs_f64(value.min(86_400.0)))
}

fn env_name_ok(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

/// Checks paths and sizes and decodes the contents. Paths are relative to the work dir
/// and never leave it; the decoded contents together stay within `limit` bytes.
fn decode_files(files: Vec<FileBody>, limit: u64) -> ApiResult<Vec<InputFile>> {
    let mut decoded = Vec::with_capacity(files.len());
    let mut total = 0u64;
    for (index, file) in files.into_iter().enumerate() {
        if let Err(why) = check_path(&file.path) {
            return Err(ApiError::invalid_field(format!("files[{index}].path"), why));
        }
        // Line-wrapped base64 (what `base64` prints by default) is accepted.
        let text: String = file
            .content_base64
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let content = STANDARD.decode(text.as_bytes()).map_err(|err| {
            ApiError::invalid_field(
                format!("files[{index}].content_base64"),
                format!("not valid base64: {err}"),
            )
        })?;
        total = total.saturating_add(content.len() as u64);
        if total > limit {
            return Err(ApiError::TooLarge(format!(
                "input files exceed limits.file_bytes ({limit} bytes in all)"
            )));
        }
        decoded.push(InputFile {
            path: file.path,
            content,
        });
    }
    Ok(decoded)
}

/// Why `path` cannot name a file in the work dir, if it cannot: relative, never out of
/// it, a file rather than a directory.
pub(crate) fn check_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("must not be empty");
    }
    if path.contains('\0') {
        return Err("must not contain NUL characters");
    }
    if path.starts_with('/') {
        return Err("must be relative to the work dir, not absolute");
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    if parts.contains(&"..") {
        return Err("must not contain `..`");
    }
    if parts.is_empty() {
        return Err("must name a file");
    }
    if path.ends_with('/') {
        return Err("must name a file, not a directory");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> ExecBody {
        serde_json::from_value(value).expect("a valid body")
    }

    fn config() -> Config {
        Config::defaults()
    }

    #[test]
    fn python_runs_as_a_cell_with_its_context() {
        let request = body(serde_json::json!({"code": "x + y", "variables": {"x": 1, "y": 2}}))
            .into_request(&config(), Language::Python)
            .expect("valid");
        assert_eq!(request.mode, ExecMode::Cell);
        assert_eq!(request.variables["x"], 1);
        assert_eq!(request.timeout, config().default_timeout());
    }

    #[test]
    fn timeouts_are_positive_and_capped() {
        let capped = body(serde_json::json!({"code": "", "timeout": 1e9}))
            .into_request(&config(), Language::Python)
            .expect("valid");
        assert_eq!(capped.timeout, config().limits.max_timeout.get());
        let half = body(serde_json::json!({"code": "", "timeout": 0.5}))
            .into_request(&config(), Language::Python)
            .expect("valid");
        assert_eq!(half.timeout, Duration::from_millis(500));
        for bad in [0.0, -1.0] {
            let err = body(serde_json::json!({"code": "", "timeout": bad}))
                .into_request(&config(), Language::Python)
                .expect_err("not positive");
            assert_eq!(err.body()["field"], "timeout");
        }
    }

    #[test]
    fn file_paths_stay_in_the_work_dir() {
        for good in ["data.csv", "dir/a.txt", "./a", "a/./b"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in ["", "/etc/passwd", "../a", "a/../../b", ".", "dir/", "a\0b"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn files_are_decoded_and_capped() {
        let request = body(serde_json::json!({"code": "", "files": [
            {"path": "a.txt", "content_base64": "aGVs\nbG8="}
        ]}))
        .into_request(&config(), Language::Python)
        .expect("valid");
        assert_eq!(request.files[0].content, b"hello");

        let err = decode_files(
            vec![FileBody {
                path: "a".into(),
                content_base64: STANDARD.encode([0u8; 10]),
            }],
            9,
        )
        .expect_err("over the cap");
        assert_eq!(err.status(), axum::http::StatusCode::PAYLOAD_TOO_LARGE);

        let err = body(serde_json::json!({"code": "", "files": [
            {"path": "a", "content_base64": "%%%"}
        ]}))
        .into_request(&config(), Language::Python)
        .expect_err("not base64");
        assert_eq!(err.body()["field"], "files[0].content_base64");
    }

    #[test]
    fn languages_env_and_bash_context_are_checked() {
        let err = body(serde_json::json!({"code": "", "language": "cobol"}))
            .into_request(&config(), Language::Python)
            .expect_err("unsupported");
        assert_eq!(err.body()["field"], "language");
        let err = body(serde_json::json!({"code": "", "env": {"A=B": "x"}}))
            .into_request(&config(), Language::Python)
            .expect_err("bad name");
        assert_eq!(err.body()["field"], "env.A=B");
        let err =
            body(serde_json::json!({"code": "", "language": "bash", "context": {"not ok=": 1}}))
                .into_request(&config(), Language::Python)
                .expect_err("bad variable");
        assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
        let bash = body(serde_json::json!({"code": "echo", "language": "bash"}))
            .into_request(&config(), Language::Python)
            .expect("valid");
        assert_eq!(bash.language, Language::Bash);
    }
}
