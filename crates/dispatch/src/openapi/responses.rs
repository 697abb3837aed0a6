//! The error responses operations share, as `ApiError` (crate::error) renders them.

#![allow(dead_code)] // The inner bodies are read by the derives, not by code.

use utoipa::ToResponse;

use crate::error::{
    ErrorBody, FunctionRejection, OverConcurrencyBody, RateLimitBody, ScopeErrorBody,
    TooManySessionsBody,
};

/// The request is malformed: `Invalid JSON` (`detail` says why), `Invalid parameters`,
/// `Invalid variables format`, or a field of the wrong type or value (`field` names it).
#[derive(ToResponse)]
#[response(example = json!({"error": "invalid `timeout`: must be a positive number of seconds", "field": "timeout"}))]
pub struct BadRequest(ErrorBody);

/// No usable bearer token: `Authorization header is missing or invalid` when the header is
/// missing or not `Bearer …`; `Invalid token` when the token is unknown, badly signed,
/// expired or revoked.
#[derive(ToResponse)]
#[response(example = json!({"error": "Invalid token"}))]
pub struct Unauthorized(ErrorBody);

/// The token is valid but lacks the scope the operation needs (`required`).
#[derive(ToResponse)]
#[response(example = json!({"error": "Insufficient scope", "required": "run"}))]
pub struct Forbidden(ScopeErrorBody);

/// Nothing of that name or id, or it belongs to another token subject.
#[derive(ToResponse)]
#[response(example = json!({"error": "Session not found"}))]
pub struct NotFound(ErrorBody);

/// The request contradicts what exists: a function name that is taken, a session running
/// another execution, a task that has already finished.
#[derive(ToResponse)]
#[response(example = json!({"error": "the session is busy: another execution is running in it"}))]
pub struct Conflict(ErrorBody);

/// The session has ended (idle, too old, its interpreter died, a timeout); the body says
/// why. Ended sessions answer 410 for ten minutes, then 404.
#[derive(ToResponse)]
#[response(example = json!({"error": "session ended: it was idle for 10 min"}))]
pub struct Gone(ErrorBody);

/// The body is over `server.max_body_bytes`, or the input files decode to more than
/// `limits.file_bytes`.
#[derive(ToResponse)]
#[response(example = json!({"error": "Request body too large"}))]
pub struct PayloadTooLarge(ErrorBody);

/// The function definition or call was refused before anything ran, or the code failed
/// its check: `error.kind` is `invalid_definition`, `invalid_args`, `dependency` (with
/// pip's `log`), `syntax`, `runtime` or `timeout`; `field` and `argument` name what is
/// wrong.
#[derive(ToResponse)]
#[response(example = json!({"success": false, "error": {"kind": "invalid_args", "message": "missing required argument `count`", "argument": "count"}}))]
pub struct FunctionRejected(FunctionRejection);

/// The function already runs `max_concurrency` calls.
#[derive(ToResponse)]
#[response(example = json!({"success": false, "message": "Over Max Concurrency 4", "task_id": ""}))]
pub struct OverConcurrency(OverConcurrencyBody);

/// The token subject has `sessions.max_per_subject` live sessions; `Retry-After` says when
/// the first of them would expire.
#[derive(ToResponse)]
#[response(
    headers(("Retry-After" = u64, description = "Seconds")),
    example = json!({"error": "too many live sessions: at most 4 per subject", "max_per_subject": 4})
)]
pub struct TooManySessions(TooManySessionsBody);

/// The token subject made more than `rate_limit.per_minute` requests a minute (beyond
/// its burst); `Retry-After` says when to try again. Only when `rate_limit` is set.
#[derive(ToResponse)]
#[response(
    headers(("Retry-After" = u64, description = "Seconds")),
    example = json!({"error": "Rate limit exceeded", "retry_after": 3})
)]
pub struct RateLimited(RateLimitBody);

/// runbox cannot serve this now: Docker or the database is not answering, the sandbox
/// image is missing, no port is free for a sandbox, or the server is shutting down.
#[derive(ToResponse)]
#[response(example = json!({"error": "sandbox unavailable: the Docker engine is not answering"}))]
pub struct Unavailable(ErrorBody);

/// No sandbox could be started within `admission.max_wait` (overload).
#[derive(ToResponse)]
#[response(example = json!({"error": "Request timed out"}))]
pub struct Overloaded(ErrorBody);
