//! Request bodies that cannot be worth waiting for are refused before anything reads
//! them: a declared `Content-Length` above `server.max_body_bytes` is 413 at once (the
//! body limit of the extractors only notices once that much has arrived), and a body
//! that pauses longer than `server.client_timeout` fails instead of holding its request
//! open.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::Response;
use tower_http::timeout::TimeoutBody;

use crate::error::ApiError;

/// What a request body is held to.
#[derive(Clone, Copy)]
pub struct BodyRules {
    /// `server.max_body_bytes`.
    pub limit: u64,
    /// How long the body may pause between two pieces: `server.client_timeout`.
    pub idle: Duration,
}

/// A body only somewhat over the limit is read and thrown away before the 413: answering
/// while the client is still sending makes the kernel reset the connection, and the
/// client would see a broken pipe instead of the answer. Far larger ones are not read.
const DRAIN_FACTOR: u64 = 16;
const DRAIN_MAX: u64 = 64 * 1024 * 1024;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn guard_body(
    State(BodyRules { limit, idle }): State<BodyRules>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if let Some(length) = declared.filter(|length| *length > limit) {
        if length <= limit.saturating_mul(DRAIN_FACTOR).min(DRAIN_MAX) {
            let body = request.into_body();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard(body)).await;
        }
        return Err(ApiError::PayloadTooLarge);
    }
    let (parts, body) = request.into_parts();
    let body = Body::new(TimeoutBody::new(idle, body));
    Ok(next.run(Request::from_parts(parts, body)).await)
}

async fn discard(mut body: Body) {
    use http_body_util::BodyExt;
    while let Some(Ok(_)) = body.frame().await {}
}
