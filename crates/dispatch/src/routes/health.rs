//! `GET /health`: is the engine reachable, is the database answering, how is the pool.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::openapi::Health;
use crate::state::AppState;

/// Health
///
/// Whether the Docker engine and the database answer, and how the warm pool is doing.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, body = Health, description = "Everything answers (`status: ok`)."),
        (status = 503, body = Health, description = "Docker or the database does not answer (`status: degraded`)."),
    ),
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (docker, database) = tokio::join!(state.sandboxes.docker_status(), state.store.ping());
    let engine = state.sandboxes.status();
    let (ready, target) = engine.pools.iter().fold((0, 0), |(ready, target), pool| {
        (ready + pool.ready, target + pool.target)
    });
    let database_ok = database.is_ok();
    let healthy = docker.reachable && database_ok;
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "docker": docker,
        "database": {
            "ok": database_ok,
            "backend": state.store.backend().as_str(),
            "error": database.err().map(|e| e.to_string()),
        },
        "pool": {
            "ready": ready,
            "target": target,
            "in_use": engine.in_use,
            "pools": engine.pools,
        },
        "port_leases": engine.port_leases,
        "running": state.admission.running(),
        "sessions": state.sessions.live(),
        "image": state.sandboxes.default_image(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
