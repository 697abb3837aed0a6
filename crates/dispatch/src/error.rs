//! The one error type of the HTTP surface. Every failure a handler can meet becomes one
//! of these, and each renders as a JSON body with the status API.md gives it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use runbox_runtime::sessions::SessionError;
use runbox_runtime::RuntimeError;
use runbox_sandbox::SandboxError;
use runbox_store::StoreError;
use serde_json::{json, Map, Value};

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
    /// 422 of the functions surface: `{"success": false, "error": {"kind", "message", …}}`
    /// with `extra` fields beside them (the argument that is wrong, pip's log).
    #[error("{message}")]
    Rejected {
        kind: &'static str,
        message: String,
        extra: Map<String, Value>,
    },
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
            ApiError::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. }
            | ApiError::OverConcurrency { .. }
            | ApiError::TooManySessions { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Overloaded => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body of the response (also sent as the `error` event of a stream).
    pub fn body(&self) -> Value {
        match self {
            ApiError::BadRequest {
                message,
                detail: Some(detail),
            } => json!({"error": message, "detail": detail}),
            ApiError::InvalidField { field, .. } => {
                json!({"error": self.to_string(), "field": field})
            }
            ApiError::InsufficientScope(scope) => {
                json!({"error": "Insufficient scope", "required": scope})
            }
            ApiError::Rejected {
                kind,
                message,
                extra,
            } => {
                let mut error = Map::new();
                error.insert("kind".into(), json!(kind));
                error.insert("message".into(), json!(message));
                error.extend(extra.clone());
                json!({"success": false, "error": error})
            }
            ApiError::RateLimited { retry_after } => {
                json!({"error": self.to_string(), "retry_after": retry_after})
            }
            ApiError::OverConcurrency { .. } => {
                json!({"success": false, "message": self.to_string(), "task_id": ""})
            }
            ApiError::TooManySessions { max, .. } => {
                json!({"error": self.to_string(), "max_per_subject": max})
            }
            other => json!({"error": other.to_string()}),
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
            RuntimeError::Session(err) => ApiError::from(err),
            RuntimeError::Sandbox(err) => ApiError::from(err),
            RuntimeError::Store(err) => ApiError::from(err),
            RuntimeError::EnvironmentUnbuildable(_) => ApiError::Unavailable(err.to_string()),
            RuntimeError::Internal(message) => ApiError::Internal(message),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::NotFound => ApiError::NotFound(err.to_string()),
            SessionError::Ended(_) => ApiError::Gone(err.to_string()),
            SessionError::Busy => ApiError::Conflict(err.to_string()),
            SessionError::TooMany { max, retry_after } => {
                ApiError::TooManySessions { max, retry_after }
            }
            SessionError::ShuttingDown => ApiError::Unavailable(err.to_string()),
            SessionError::Sandbox(err) => ApiError::from(err),
        }
    }
}

impl From<SandboxError> for ApiError {
    fn from(err: SandboxError) -> Self {
        match err {
            SandboxError::PortsExhausted { .. } | SandboxError::PortTaken(_) => {
                ApiError::Unavailable(format!("no sandbox can be started right now: {err}"))
            }
            err if err.is_unavailable() => {
                ApiError::Unavailable(format!("sandbox unavailable: {err}"))
            }
            SandboxError::ImageMissing(_) | SandboxError::ImageWithoutAgent(_) => {
                ApiError::Unavailable(err.to_string())
            }
            other => ApiError::Internal(format!("sandbox failure: {other}")),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::InvalidInput(message) => ApiError::bad_request(message),
            other => ApiError::Unavailable(format!("database unavailable: {other}")),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
