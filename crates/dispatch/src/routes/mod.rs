//! The router: which path goes to which handler, and which need a bearer token.

mod body_guard;
mod exec_body;
mod execute;
mod execute_function;
mod health;
mod image;
mod json;
mod playground;
mod runcode;
mod sessions;
mod stream;

use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::auth::require_bearer;
use crate::error::ApiError;
use crate::rate_limit::{limit_rate, RateLimiter};
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let body_limit =
        usize::try_from(state.config.server.max_body_bytes.bytes()).unwrap_or(usize::MAX);
    let protected = Router::new()
        .route(
            "/runcode",
            get(runcode::get_runcode)
                .post(runcode::post_runcode)
                .fallback(runcode::method_not_allowed),
        )
        .route("/execute", post(execute::post_execute))
        .route(
            "/sessions",
            post(sessions::create_session).get(sessions::list_sessions),
        )
        .route(
            "/sessions/{id}",
            get(sessions::get_session).delete(sessions::delete_session),
        )
        .route("/sessions/{id}/execute", post(sessions::execute_in_session));
    // Route layers run last-added first: authentication, then the rate limit.
    let protected = match RateLimiter::from_config(&state.config.rate_limit) {
        Some(limiter) => protected.route_layer(middleware::from_fn_with_state(limiter, limit_rate)),
        None => protected,
    };
    let protected = protected.route_layer(middleware::from_fn_with_state(
        state.auth.clone(),
        require_bearer,
    ));

    let images = Router::new().route("/image/{name}", get(image::get_image));
    let images = if state.config.images.require_auth {
        images.route_layer(middleware::from_fn_with_state(
            state.auth.clone(),
            require_bearer,
        ))
    } else {
        images
    };

    let public = Router::new()
        .route("/health", get(health::health))
        .route("/", get(playground::playground));

    Router::new()
        .merge(protected)
        .merge(images)
        .merge(public)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            body_limit as u64,
            body_guard::guard_body,
        ))
}

async fn not_found() -> (StatusCode, Json<serde_json::Value>) {
    (StatusCode::NOT_FOUND, Json(json!({"error": "Not found"})))
}

/// A body that could not be read: too large (413) or broken off.
pub(crate) fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::bad_request_because("Invalid JSON", rejection.body_text())
    }
}
