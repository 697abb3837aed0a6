//! `GET /health`: is the engine reachable, is the database answering, how is the pool.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use runbox_runtime::HealthReport;

use crate::state::AppState;

/// Health
///
/// Whether the Docker engine and the database answer, whether the configured sandbox
/// runtime is there, and how the warm pool is doing.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, body = HealthReport, description = "Everything answers (`status: ok`)."),
        (status = 503, body = HealthReport, description = "Docker or the database does not answer, or the configured runtime is missing (`status: degraded`)."),
    ),
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthReport>) {
    let report = state.runtime.health().await;
    let status = if report.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}
