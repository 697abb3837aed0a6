//! `GET /health`: is the engine reachable, is the database answering, how is the pool.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use runbox_sandbox::docker_runtimes;
use serde_json::{json, Value};

use crate::openapi::Health;
use crate::state::AppState;

const RUNTIME_PROBE: Duration = Duration::from_secs(3);

/// Health
///
/// Whether the Docker engine and the database answer, whether the configured sandbox
/// runtime is there, and how the warm pool is doing.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, body = Health, description = "Everything answers (`status: ok`)."),
        (status = 503, body = Health, description = "Docker or the database does not answer, or the configured runtime is missing (`status: degraded`)."),
    ),
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (docker, database, runtime) = tokio::join!(
        state.sandboxes.docker_status(),
        state.store.ping(),
        runtime_status(&state)
    );
    let engine = state.sandboxes.status();
    let (ready, target) = engine.pools.iter().fold((0, 0), |(ready, target), pool| {
        (ready + pool.ready, target + pool.target)
    });
    let database_ok = database.is_ok();
    // A configured runtime the engine does not have fails every sandbox.
    let runtime_ok = !docker.reachable || runtime["installed"] != json!(false);
    let healthy = docker.reachable && database_ok && runtime_ok;
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
            "live_containers": engine.live_containers,
            "pools": engine.pools,
        },
        "runtime": runtime,
        "port_leases": engine.port_leases,
        "running": state.runtime.admission().running(),
        "sessions": state.runtime.sessions.live(),
        "image": state.sandboxes.default_image(),
        "version": env!("CARGO_PKG_VERSION"),
        "builds": {"engine_failure": state.functions.environments.engine_failure()},
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// `sandbox.runtime` and whether the engine knows it (asked only when one is set).
async fn runtime_status(state: &AppState) -> Value {
    let configured = state.config.sandbox.runtime.trim();
    if configured.is_empty() {
        return json!({"name": "default"});
    }
    match tokio::time::timeout(RUNTIME_PROBE, docker_runtimes(state.sandboxes.engine())).await {
        Ok(known) => json!({
            "name": configured,
            "installed": known.iter().any(|name| name == configured),
            "known": known,
        }),
        Err(_) => json!({"name": configured, "installed": null}),
    }
}
