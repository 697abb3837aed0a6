//! Request bodies that cannot be worth waiting for are refused before anything reads
//! them: a declared `Content-Length` above `server.max_body_bytes` is 413 at once (the
//! body limit of the extractors only notices once that much has arrived), and a body
//! that pauses longer than `server.client_timeout` fails instead of holding its request
//! open. An answer given before its request's body was read to the end (a 401, a 403, a
//! 429 decided on the headers) closes the connection: what is left of the body may
//! still be on its way, and a client that sent its next request on the same connection
//! would find it dropped instead of answered.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use axum::http::{HeaderValue, Version};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
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
    let has_body = declared.is_some_and(|length| length > 0)
        || request.headers().contains_key(TRANSFER_ENCODING);
    let keeps_alive = matches!(request.version(), Version::HTTP_10 | Version::HTTP_11);
    let (parts, body) = request.into_parts();
    let body = Body::new(TimeoutBody::new(idle, body));
    if !(has_body && keeps_alive) {
        return Ok(next.run(Request::from_parts(parts, body)).await);
    }
    let (body, read_to_end) = watched(body);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if !read_to_end.load(Ordering::SeqCst) {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// `body`, and a flag set once it has been read to its end.
fn watched(body: Body) -> (Body, Arc<AtomicBool>) {
    let read_to_end = Arc::new(AtomicBool::new(false));
    let flag = read_to_end.clone();
    let end = futures::stream::poll_fn(move |_| {
        flag.store(true, Ordering::SeqCst);
        Poll::Ready(None)
    });
    (
        Body::from_stream(body.into_data_stream().chain(end)),
        read_to_end,
    )
}

async fn discard(mut body: Body) {
    use http_body_util::BodyExt;
    while let Some(Ok(_)) = body.frame().await {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::post;
    use axum::{middleware, Router};
    use tower::ServiceExt;

    async fn refuses(_request: Request) -> axum::response::Response {
        StatusCode::UNAUTHORIZED.into_response()
    }

    async fn reads(body: axum::body::Bytes) -> String {
        format!("{} bytes", body.len())
    }

    fn app() -> Router {
        Router::new()
            .route("/refuses", post(refuses))
            .route("/reads", post(reads))
            .layer(middleware::from_fn_with_state(
                BodyRules {
                    limit: 1024,
                    idle: Duration::from_secs(5),
                },
                guard_body,
            ))
    }

    async fn connection_of(path: &str, body: &'static str) -> Option<String> {
        let request = Request::post(path)
            .header(CONTENT_LENGTH, body.len())
            .body(Body::from(body))
            .expect("request");
        let response = app().oneshot(request).await.expect("response");
        response
            .headers()
            .get(CONNECTION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    }

    #[tokio::test]
    async fn an_answer_before_the_body_was_read_closes_the_connection() {
        assert_eq!(
            connection_of("/refuses", "{\"a\": 1}").await.as_deref(),
            Some("close")
        );
        assert_eq!(connection_of("/reads", "{\"a\": 1}").await, None);
        // Without a body there is nothing left on the way.
        assert_eq!(connection_of("/refuses", "").await, None);
    }
}
