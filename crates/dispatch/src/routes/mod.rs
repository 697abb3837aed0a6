//! The router: which path goes to which handler, and which need a bearer token.

mod functions;
mod health;
mod image;
mod runcode;
mod tasks;

use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::auth::require_bearer;
use crate::error::ApiError;
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
        .route("/functions", get(functions::list).post(functions::create))
        .route("/submit", post(functions::create))
        .route(
            "/functions/{name}",
            get(functions::get)
                .put(functions::put)
                .delete(functions::delete),
        )
        .route(
            "/functions/{name}/versions/{version}",
            get(functions::get_version),
        )
        .route("/functions/{name}/call", post(functions::call))
        .route("/functions/{name}/terminate", post(functions::terminate))
        .route("/tasks", get(tasks::list))
        .route("/tasks/{id}", get(tasks::get).delete(tasks::cancel))
        .route("/tasks/{id}/result", get(tasks::result))
        .route_layer(middleware::from_fn_with_state(
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

    let public = Router::new().route("/health", get(health::health));

    Router::new()
        .merge(protected)
        .merge(images)
        .merge(public)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
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
