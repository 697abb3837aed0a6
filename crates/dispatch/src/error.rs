//! The one error type of the HTTP surface. Every failure a handler can meet becomes one
//! of these, and each renders as a JSON body with the status API.md gives it. The
//! bodies are the types below; `/openapi.json` describes them from the same types.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use runbox_runtime::{Rejection, RuntimeError};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with an exact compatibility message (`Invalid JSON`, `Invalid parameters`, …)
    /// and optionally what exactly was wrong.
    #[error("{message}")]
    BadRequest {
        message: String,
        detail: Option<String>,
    },
    #[error("Authorization header is missing or invalid")]
    MissingAuth,
    #[error("Invalid token")]
    InvalidToken,
    #[error("Insufficient scope")]
    InsufficientScope(&'static str),
    /// 400 naming the request field that is wrong (`context.x`, `files[0].path`).
    #[error("invalid `{field}`: {message}")]
    InvalidField { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    /// 409: the request contradicts what exists (a session running another execution,
    /// a function name that is taken, a task that has already finished).
    #[error("{0}")]
    Conflict(String),
    /// 410: the resource existed and has ended (a session that timed out or crashed).
    #[error("{0}")]
    Gone(String),
    #[error("Request body too large")]
    PayloadTooLarge,
    /// 413 for a part of a body over its own limit (input files over `limits.file_bytes`).
    #[error("{0}")]
    TooLarge(String),
    /// 422 of the functions surface: `{"success": false, "error": {"kind", "message", …}}`.
    #[error("{}", .0.message)]
    Rejected(Box<Rejection>),
    /// 429: the subject made more requests than `rate_limit` allows.
    #[error("Rate limit exceeded")]
    RateLimited { retry_after: u64 },
    /// 429: a stored function is running `limit` calls already (body fixed by API.md).
    #[error("Over Max Concurrency {limit}")]
    OverConcurrency { limit: usize },
    /// 429: the subject holds `max` live sessions; one ends within `retry_after` s.
    #[error("too many live sessions: at most {max} per subject")]
    TooManySessions { max: usize, retry_after: u64 },
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// Admission could not start the work in time: 504 `Request timed out`.
    #[error("Request timed out")]
    Overloaded,
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

/// The error body of runbox's own failures (`ApiError`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The message; for the compatibility messages exactly as API.md gives them.
    pub error: String,
    /// What exactly was wrong (400 `Invalid JSON`, `Invalid parameters`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request field at fault (`timeout`, `files[0].path`, `context.x`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// 403: the token lacks a scope.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeErrorBody {
    #[schema(example = "Insufficient scope")]
    pub error: String,
    /// The scope the operation needs.
    #[schema(example = "run")]
    pub required: String,
}

/// 422 of the functions surface.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionRejection {
    /// Always false.
    pub success: bool,
    pub error: Rejection,
}

/// 429 of a function call at its `max_concurrency` (the body API.md fixes).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverConcurrencyBody {
    /// Always false.
    pub success: bool,
    #[schema(example = "Over Max Concurrency 4")]
    pub message: String,
    /// Always empty.
    pub task_id: String,
}

/// 429 when opening one session too many.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TooManySessionsBody {
    pub error: String,
    pub max_per_subject: u64,
}

/// 429 of the rate limit (`rate_limit.per_minute` requests a minute per token subject).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitBody {
    #[schema(example = "Rate limit exceeded")]
    pub error: String,
    /// Seconds until the next request is allowed (also in `Retry-After`).
    pub retry_after: u64,
}

/// The `error` event: runbox itself failed after the stream had begun. The error body
/// with the status the request would have had.
#[derive(Serialize, ToSchema)]
pub struct StreamErrorEvent {
    pub error: String,
    pub status: u16,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            detail: None,
        }
    }

    pub fn bad_request_because(message: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            detail: Some(detail.into()),
        }
    }

    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } | ApiError::InvalidField { .. } => StatusCode::BAD_REQUEST,
            ApiError::MissingAuth | ApiError::InvalidToken => StatusCode::UNAUTHORIZED,
            ApiError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge | ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. }
            | ApiError::OverConcurrency { .. }
            | ApiError::TooManySessions { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Overloaded => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body of the response.
    pub fn body(&self) -> Value {
        let body = match self {
            ApiError::BadRequest { message, detail } => serde_json::to_value(ErrorBody {
                error: message.clone(),
                detail: detail.clone(),
                field: None,
            }),
            ApiError::InvalidField { field, .. } => serde_json::to_value(ErrorBody {
                error: self.to_string(),
                detail: None,
                field: Some(field.clone()),
            }),
            ApiError::InsufficientScope(scope) => serde_json::to_value(ScopeErrorBody {
                error: self.to_string(),
                required: scope.to_string(),
            }),
            ApiError::Rejected(rejection) => serde_json::to_value(FunctionRejection {
                success: false,
                error: (**rejection).clone(),
            }),
            ApiError::RateLimited { retry_after } => serde_json::to_value(RateLimitBody {
                error: self.to_string(),
                retry_after: *retry_after,
            }),
            ApiError::OverConcurrency { .. } => serde_json::to_value(OverConcurrencyBody {
                success: false,
                message: self.to_string(),
                task_id: String::new(),
            }),
            ApiError::TooManySessions { max, .. } => serde_json::to_value(TooManySessionsBody {
                error: self.to_string(),
                max_per_subject: *max as u64,
            }),
            other => serde_json::to_value(ErrorBody {
                error: other.to_string(),
                detail: None,
                field: None,
            }),
        };
        // Plain strings and numbers always serialise.
        body.unwrap_or(Value::Null)
    }

    /// The `error` event that ends a stream instead of its `result`. Only runbox's own
    /// failures come after a stream has begun, and their bodies are a message alone.
    pub fn stream_event(&self) -> StreamErrorEvent {
        StreamErrorEvent {
            error: self.to_string(),
            status: self.status().as_u16(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "request failed");
        }
        let mut response = (status, Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750: what an HTTP client (MCP clients among them) reads to know that a
            // bearer token is wanted.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="runbox""#),
            );
        }
        if let ApiError::RateLimited {
            retry_after: seconds,
        }
        | ApiError::TooManySessions {
            retry_after: seconds,
            ..
        } = &self
        {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// The one place that picks the status and body of each failure of the domain.
impl From<RuntimeError> for ApiError {
    fn from(err: RuntimeError) -> Self {
        match err {
            RuntimeError::Overloaded => ApiError::Overloaded,
            RuntimeError::ShuttingDown => ApiError::Unavailable(err.to_string()),
            RuntimeError::InvalidToken => ApiError::InvalidToken,
            RuntimeError::InsufficientScope(scope) => ApiError::InsufficientScope(scope),
            RuntimeError::NotFound(message) => ApiError::NotFound(message),
            RuntimeError::Conflict(message) => ApiError::Conflict(message),
            RuntimeError::Gone(message) => ApiError::Gone(message),
            RuntimeError::TooManySessions { max, retry_after } => {
                ApiError::TooManySessions { max, retry_after }
            }
            RuntimeError::OverConcurrency { limit } => ApiError::OverConcurrency { limit },
            RuntimeError::Rejected(rejection) => ApiError::Rejected(rejection),
            RuntimeError::InvalidInput(message) => ApiError::bad_request(message),
            RuntimeError::IsolationNotOffered(message) => {
                ApiError::invalid_field("isolation", message)
            }
            RuntimeError::Unavailable(message) => ApiError::Unavailable(message),
            RuntimeError::Internal(message) => ApiError::Internal(message),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_body_has_the_shape_api_md_gives_it() {
        assert_eq!(
            ApiError::bad_request("Invalid JSON").body(),
            json!({"error": "Invalid JSON"})
        );
        assert_eq!(
            ApiError::bad_request_because("Invalid parameters", "wait").body(),
            json!({"error": "Invalid parameters", "detail": "wait"})
        );
        assert_eq!(
            ApiError::InsufficientScope("run").body(),
            json!({"error": "Insufficient scope", "required": "run"})
        );
        assert_eq!(
            ApiError::OverConcurrency { limit: 2 }.body(),
            json!({"success": false, "message": "Over Max Concurrency 2", "task_id": ""})
        );
        let rejected = ApiError::from(RuntimeError::from(Rejection {
            argument: Some("x".into()),
            ..Rejection::new("invalid_args", "bad x")
        }));
        assert_eq!(rejected.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            rejected.body(),
            json!({"success": false, "error": {"kind": "invalid_args", "message": "bad x", "argument": "x"}})
        );
        let event = serde_json::to_value(ApiError::Overloaded.stream_event()).expect("json");
        assert_eq!(event, json!({"error": "Request timed out", "status": 504}));
    }
}
