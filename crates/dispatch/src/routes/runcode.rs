//! The compatibility surface: `/runcode` exactly as the original Flask "Code Interpreter
//! API" answered it, so its clients and `concurrent_test.py` work unchanged.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use runbox_core::fence::extract_first_fenced_block;
use runbox_core::numbers;
use runbox_core::{ErrorKind, ExecMode, ExecRequest, Language};
use runbox_runtime::metrics::Surface;
use runbox_runtime::result::Executed;
use runbox_runtime::Job;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::openapi::{
    BadRequest, Forbidden, Overloaded, PayloadTooLarge, RuncodeBody, Unavailable,
};
use crate::routes::json::body_rejection;
use crate::state::AppState;

const INVALID_JSON: &str = "Invalid JSON";

/// Run code (compatibility)
///
/// The original API's call: runs `code` in a fresh sandbox and answers what it printed.
/// Other methods than GET and POST answer 405 `{"error": "Method not allowed"}`.
#[utoipa::path(
    post,
    path = "/runcode",
    tag = "compat",
    security(("bearer" = ["run"])),
    request_body = RuncodeBody,
    responses(
        (status = 200, body = RuncodeAnswer,
         description = "The code ran: `output` (stdout, and `images` by file name), or \
                        `error` (stderr, `Code execution timed out`, `Unsupported language`).",
         example = json!({"output": "6\n"})),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
        (status = 504, response = Overloaded),
    ),
)]
#[axum::debug_handler]
pub async fn post_runcode(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<RuncodeAnswer>> {
    post_body(&state, &principal, body)
        .await
        .map_err(without_detail)
}

async fn post_body(
    state: &AppState,
    caller: &Principal,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<RuncodeAnswer>> {
    let body = body.map_err(body_rejection)?;
    let parsed: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request_because(INVALID_JSON, e.to_string()))?;
    let Value::Object(mut fields) = parsed else {
        return Err(ApiError::bad_request_because(
            INVALID_JSON,
            "the body must be a JSON object",
        ));
    };
    let code = match fields.remove("code") {
        Some(Value::String(code)) => code,
        Some(_) => {
            return Err(ApiError::bad_request_because(
                INVALID_JSON,
                "`code` must be a string",
            ))
        }
        None => {
            return Err(ApiError::bad_request_because(
                INVALID_JSON,
                "`code` is missing",
            ))
        }
    };
    let language = match fields.remove("languageType") {
        Some(Value::String(language)) => language,
        None | Some(Value::Null) => "python".to_string(),
        Some(_) => {
            return Err(ApiError::bad_request_because(
                INVALID_JSON,
                "`languageType` must be a string",
            ))
        }
    };
    let variables = match fields.remove("variables") {
        Some(Value::Object(variables)) => variables,
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(ApiError::bad_request("Invalid variables format")),
    };
    run(state, caller, &language, &code, variables).await
}

/// The compatibility surface answers a 400 with the original's exact body (old clients
/// compare it byte for byte); what exactly was wrong goes to the request's log line.
fn without_detail(err: ApiError) -> ApiError {
    match err {
        ApiError::BadRequest {
            message,
            detail: Some(detail),
        } => {
            tracing::info!(%detail, "/runcode answered 400 {message:?}");
            ApiError::bad_request(message)
        }
        other => other,
    }
}

/// Run code from a query (compatibility)
///
/// `POST /runcode` with the three fields as query parameters, all required
/// (400 `Invalid parameters`); `variables` must be a JSON object (400 `Invalid variables
/// format`).
#[utoipa::path(
    get,
    path = "/runcode",
    tag = "compat",
    security(("bearer" = ["run"])),
    params(
        ("languageType" = String, Query, description = "`python` or `bash`", example = "python"),
        ("variables" = String, Query, description = "A JSON object", example = "{\"n\": 3}"),
        ("code" = String, Query, example = "print(n * 2)"),
    ),
    responses(
        (status = 200, body = RuncodeAnswer, description = "As `POST /runcode`."),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
        (status = 504, response = Overloaded),
    ),
)]
pub async fn get_runcode(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<RuncodeAnswer>> {
    get_query(&state, &principal, query)
        .await
        .map_err(without_detail)
}

async fn get_query(
    state: &AppState,
    caller: &Principal,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<RuncodeAnswer>> {
    let Ok(Query(params)) = query else {
        return Err(ApiError::bad_request("Invalid parameters"));
    };
    let (Some(language), Some(variables), Some(code)) = (
        params.get("languageType"),
        params.get("variables"),
        params.get("code"),
    ) else {
        return Err(ApiError::bad_request("Invalid parameters"));
    };
    let variables = match serde_json::from_str::<Value>(variables) {
        Ok(Value::Object(variables)) => variables,
        _ => return Err(ApiError::bad_request("Invalid variables format")),
    };
    run(state, caller, language, code, variables).await
}

async fn run(
    state: &AppState,
    caller: &Principal,
    language: &str,
    code: &str,
    variables: Map<String, Value>,
) -> ApiResult<Json<RuncodeAnswer>> {
    if let Some(inexact) = numbers::find_inexact_in(&variables) {
        return Err(ApiError::bad_request_because(
            "Invalid variables format",
            format!("variables.{}: {}", inexact.path, inexact.message),
        ));
    }
    let Some(language) = Language::parse(language) else {
        return Ok(Json(RuncodeAnswer::error("Unsupported language")));
    };
    if code.contains('\0') {
        return Err(ApiError::bad_request_because(
            INVALID_JSON,
            "`code` must not contain NUL characters",
        ));
    }
    let mut request = ExecRequest::new(
        language,
        extract_first_fenced_block(code),
        state.config.default_timeout(),
    );
    request.variables = variables;
    request.mode = ExecMode::Script;
    let job = Job::OneShot {
        surface: Surface::Runcode,
        request,
    };
    let executed = state.runtime.start(caller, job).await?.finish(None).await?;
    Ok(Json(render(executed)))
}

/// The answer of `/runcode`: what the code printed, or what went wrong.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RuncodeAnswer {
    Output(RuncodeOutput),
    Error(RuncodeError),
}

/// The code ran without writing to stderr.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuncodeOutput {
    /// Image files the code wrote, by file name: their URLs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<BTreeMap<String, String>>,
    /// stdout.
    pub output: String,
}

/// stderr (any output there counts), `Code execution timed out`, `Unsupported language`,
/// or why the run failed.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuncodeError {
    pub error: String,
}

impl RuncodeAnswer {
    fn error(message: impl Into<String>) -> Self {
        RuncodeAnswer::Error(RuncodeError {
            error: message.into(),
        })
    }
}

/// The original's answer: stdout on success, stderr (or why the run failed) as `error`.
/// Its keys are in the original's (sorted) order: old clients compare bytes.
fn render(executed: Executed) -> RuncodeAnswer {
    // /runcode makes no outputs (it does not ask for them): its answer is the original's.
    let Executed {
        outcome, images, ..
    } = executed;
    if let Some(error) = &outcome.error {
        let message = match error.kind {
            ErrorKind::Timeout => "Code execution timed out".to_string(),
            _ if !outcome.stderr.is_empty() => outcome.stderr,
            _ => error.message.clone(),
        };
        return RuncodeAnswer::error(message);
    }
    if !outcome.stderr.is_empty() {
        return RuncodeAnswer::error(outcome.stderr);
    }
    let images = (!images.is_empty()).then(|| {
        images
            .into_iter()
            .map(|image| (image.name, image.url))
            .collect()
    });
    RuncodeAnswer::Output(RuncodeOutput {
        images,
        output: outcome.stdout,
    })
}

/// `/runcode` with another method: 405 with a JSON body.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use runbox_core::{ExecError, ExecOutcome};
    use serde_json::json;

    fn rendered(outcome: ExecOutcome) -> Value {
        serde_json::to_value(render(executed(outcome))).expect("json")
    }

    fn executed(outcome: ExecOutcome) -> Executed {
        Executed {
            outcome,
            images: Vec::new(),
            outputs: Vec::new(),
        }
    }

    #[test]
    fn stdout_is_the_output() {
        let outcome = ExecOutcome {
            stdout: "hi\n".into(),
            ..Default::default()
        };
        assert_eq!(rendered(outcome), json!({"output": "hi\n"}));
    }

    #[test]
    fn images_come_before_the_output_as_the_original_sorted_them() {
        let answer = render(Executed {
            outcome: ExecOutcome {
                stdout: "ok\n".into(),
                ..Default::default()
            },
            images: vec![runbox_runtime::result::StoredImageRef {
                name: "plot.png".into(),
                url: "http://h/image/a.png".into(),
                mime: "image/png".into(),
                bytes: 3,
            }],
            outputs: Vec::new(),
        });
        assert_eq!(
            serde_json::to_string(&answer).expect("json"),
            r#"{"images":{"plot.png":"http://h/image/a.png"},"output":"ok\n"}"#
        );
    }

    #[test]
    fn any_stderr_is_the_error() {
        let outcome = ExecOutcome {
            stdout: "partial".into(),
            stderr: "warning\n".into(),
            ..Default::default()
        };
        assert_eq!(rendered(outcome), json!({"error": "warning\n"}));
    }

    #[test]
    fn a_timeout_has_the_original_words() {
        let outcome = ExecOutcome {
            error: Some(ExecError::new(ErrorKind::Timeout, "exceeded 2 s")),
            ..Default::default()
        };
        assert_eq!(
            rendered(outcome),
            json!({"error": "Code execution timed out"})
        );
    }

    #[test]
    fn a_silent_failure_says_why() {
        let outcome = ExecOutcome {
            error: Some(ExecError::new(ErrorKind::Runtime, "exited with code 3")),
            exit_code: Some(3),
            ..Default::default()
        };
        assert_eq!(rendered(outcome), json!({"error": "exited with code 3"}));
    }
}
