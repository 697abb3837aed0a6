//! The router: which path goes to which handler, and which need a bearer token.

mod body_guard;
mod exec_body;
mod execute;
mod functions;
mod health;
mod image;
mod json;
mod playground;
mod runcode;
mod sessions;
mod stream;
mod tasks;

use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::middleware;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;

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
        .route("/sessions/{id}/execute", post(sessions::execute_in_session))
        .route("/metrics", get(crate::metrics::scrape))
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
        .route("/tasks/{id}/result", get(tasks::result));
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
        .layer(middleware::from_fn(crate::metrics::track_http))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(request_tracing())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            body_limit as u64,
            body_guard::guard_body,
        ))
}

type RequestTracing = TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    fn(&axum::http::Request<axum::body::Body>) -> tracing::Span,
    (),
    DefaultOnResponse,
    (),
    (),
    (),
>;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// One span per request, carrying its id into everything done for it (sandbox runs
/// included), and one line when it is answered. Only the path is logged: a query string
/// can hold code (GET /runcode) and headers hold tokens.
fn request_tracing() -> RequestTracing {
    fn span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
        let id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info_span!(
            "request",
            id = %id,
            method = %request.method(),
            path = %request.uri().path(),
        )
    }
    TraceLayer::new_for_http()
        .make_span_with(span as fn(&axum::http::Request<axum::body::Body>) -> tracing::Span)
        .on_request(())
        .on_response(
            DefaultOnResponse::new()
                .level(tracing::Level::INFO)
                .latency_unit(LatencyUnit::Millis),
        )
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
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
