//! `/sessions`: open, inspect, list, delete, and execute in a stateful session. The
//! rules (ownership, one exec at a time, how a session ends) live in `runbox_runtime::sessions`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use runbox_core::Language;

use crate::exec_body::parse_isolation;
use runbox_runtime::result::ResultObject;
use runbox_runtime::sessions::SessionInfo;
use runbox_runtime::Job;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::exec_body::ExecBody;
use crate::openapi::{
    BadRequest, Conflict, Forbidden, Gone, NotFound, Overloaded, PayloadTooLarge, StreamEvent,
    TooManySessions, Unavailable,
};
use crate::routes::forward;
use crate::routes::json::{from_object, json_object};
use crate::routes::stream::{self, wants_stream, OnDisconnect};
use crate::state::AppState;

/// `GET /sessions`.
#[derive(Serialize, ToSchema)]
pub struct SessionList {
    /// The caller's sessions, oldest first (ended ones included while they answer 410).
    pub sessions: Vec<SessionInfo>,
}

/// `DELETE /sessions/{id}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionDeleted {
    pub id: String,
    /// Always true.
    pub deleted: bool,
}

/// A new session; the body may be empty.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct CreateSessionBody {
    /// Only `python`.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::SessionLanguage>)]
    language: Option<String>,
    /// Seconds without an execution after which the session ends; above 0, at most
    /// `sessions.idle_timeout` (also the default).
    #[serde(default)]
    #[schema(example = 600, exclusive_minimum = 0)]
    idle_timeout: Option<f64>,
    /// `standard` (default), `strong` (a kernel of its own: gVisor), or an OCI runtime
    /// the engine has; refused (400) when no engine offers it, never downgraded. A
    /// token's own isolation is the least a session gets.
    #[serde(default)]
    #[schema(example = "strong")]
    isolation: Option<String>,
}

/// Open a session
///
/// Starts a dedicated sandbox whose interpreter keeps globals, imports and files between
/// executions. It ends when deleted, idle for `idle_timeout`, older than
/// `sessions.max_lifetime`, or when an execution times out or kills the interpreter.
#[utoipa::path(
    post,
    path = "/sessions",
    tag = "sessions",
    security(("bearer" = ["run"])),
    request_body(content = Option<CreateSessionBody>, description = "May be empty."),
    responses(
        (status = 201, body = SessionInfo, description = "The session is ready."),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 429, response = TooManySessions),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn create_session(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<SessionInfo>)> {
    let body: CreateSessionBody = from_object(json_object(body, true)?)?;
    let language = match body.language.as_deref().map(str::trim) {
        None | Some("") => Language::Python,
        Some(name) => match Language::parse(name) {
            Some(Language::Python) => Language::Python,
            _ => {
                return Err(ApiError::invalid_field(
                    "language",
                    format!("sessions run python, not `{name}`"),
                ))
            }
        },
    };
    let idle_timeout = match body.idle_timeout {
        None => None,
        Some(seconds) if seconds.is_finite() && seconds > 0.0 => {
            Some(Duration::from_secs_f64(seconds.min(86_400.0 * 365.0)))
        }
        Some(_) => {
            return Err(ApiError::invalid_field(
                "idle_timeout",
                "must be a positive number of seconds",
            ))
        }
    };
    let isolation = parse_isolation(body.isolation.as_deref())?;
    let session = state
        .runtime
        .open_session(&principal, language, idle_timeout, isolation)
        .await?;
    Ok((StatusCode::CREATED, Json(session)))
}

/// List the caller's sessions
#[utoipa::path(
    get,
    path = "/sessions",
    tag = "sessions",
    security(("bearer" = ["run"])),
    responses(
        (status = 200, body = SessionList),
        (status = 403, response = Forbidden),
    ),
)]
pub async fn list_sessions(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Json<SessionList> {
    let mut sessions = state.runtime.sessions_of(&principal);
    // With replicas, the ones the others hold too (each lists its own).
    sessions.extend(forward::sessions_at_peers(&state, &headers, &principal).await);
    sessions.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Json(SessionList { sessions })
}

/// Show a session
#[utoipa::path(
    get,
    path = "/sessions/{id}",
    tag = "sessions",
    security(("bearer" = ["run"])),
    params(("id" = String, Path, description = "The session id")),
    responses(
        (status = 200, body = SessionInfo, description = "Also for an ended session (`alive: false`) while it is remembered."),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 410, response = Gone),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn get_session(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionInfo>> {
    let session = state.runtime.session(&principal, &id)?;
    Ok(Json(session.info()))
}

/// End a session
///
/// Stops a running execution and removes the session's container before answering.
#[utoipa::path(
    delete,
    path = "/sessions/{id}",
    tag = "sessions",
    security(("bearer" = ["run"])),
    params(("id" = String, Path, description = "The session id")),
    responses(
        (status = 200, body = SessionDeleted),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 410, response = Gone),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn delete_session(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionDeleted>> {
    state.runtime.end_session(&principal, &id).await?;
    Ok(Json(SessionDeleted { id, deleted: true }))
}

/// Run code in a session
///
/// The body of `POST /execute` (code only; `session_id` is the path's). One execution at
/// a time: a second one while the first runs answers 409. Streams like `POST /execute`;
/// closing the stream lets the execution finish, so that the session stays consistent.
#[utoipa::path(
    post,
    path = "/sessions/{id}/execute",
    tag = "sessions",
    security(("bearer" = ["run"])),
    params(("id" = String, Path, description = "The session id")),
    request_body(content = ExecBody, example = json!({"code": "import math\nr = 2\nmath.pi * r ** 2"})),
    responses(
        (status = 200, description = "The result object (or a stream of events, see `POST /execute`).",
         content(
            (ResultObject = "application/json"),
            (StreamEvent = "text/event-stream"),
         )),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 410, response = Gone),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
        (status = 504, response = Overloaded),
    ),
)]
pub async fn execute_in_session(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body: ExecBody = from_object(json_object(body, false)?)?;
    let stream = wants_stream(&headers, body.stream);
    run_in_session(state, &principal, &id, body, stream).await
}

/// Runs `body` in session `id` (also `POST /execute` with a `session_id`). A client
/// that goes away lets the execution finish (the runtime runs it in a task of its own).
pub(crate) async fn run_in_session(
    state: AppState,
    principal: &Principal,
    id: &str,
    body: ExecBody,
    stream: bool,
) -> ApiResult<Response> {
    let session = state.runtime.session(principal, id)?;
    let request = body.into_request(&state.config, session.language)?;
    let job = Job::InSession { session, request };
    let run = state.runtime.start(principal, job).await?;
    stream::answer(run, stream, OnDisconnect::Finish).await
}
