//! `POST /execute` with `{"name", "args"}`: a call of a stored function, the same as
//! `POST /functions/{name}/call`. Until the function registry exists, no name is known.

use axum::response::Response;
use serde_json::{Map, Value};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub async fn call_stored_function(
    _state: &AppState,
    _principal: &Principal,
    name: &str,
    _args: Map<String, Value>,
) -> ApiResult<Response> {
    Err(ApiError::NotFound(format!("Function not found: {name}")))
}
