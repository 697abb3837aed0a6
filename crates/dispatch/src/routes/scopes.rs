//! The scope each route needs is stated once, in its OpenAPI description
//! (`security(("bearer" = ["run"]))`); this reads it from there and checks it for every
//! request before the handler runs, so the document and the check cannot disagree.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use runbox_core::config::ALL_SCOPES;
use serde_json::Value;

use crate::auth::Principal;
use crate::error::ApiError;

/// The scopes of each (method, route pattern) whose description names any.
#[derive(Debug, Default)]
pub(crate) struct RouteScopes(HashMap<(Method, String), Vec<&'static str>>);

impl RouteScopes {
    /// Reads the `bearer` scopes of every operation of `description`.
    pub(crate) fn from_description(description: &utoipa::openapi::OpenApi) -> Self {
        let mut table = HashMap::new();
        let Ok(document) = serde_json::to_value(description) else {
            return RouteScopes(table);
        };
        let paths = document.get("paths").and_then(Value::as_object);
        for (path, item) in paths.into_iter().flatten() {
            let Some(operations) = item.as_object() else {
                continue;
            };
            for (method, operation) in operations {
                let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                    continue;
                };
                let scopes: Vec<&'static str> = operation
                    .get("security")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|requirement| requirement.get("bearer"))
                    .filter_map(Value::as_array)
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(known_scope)
                    .collect();
                if !scopes.is_empty() {
                    table.insert((method, path.clone()), scopes);
                }
            }
        }
        RouteScopes(table)
    }

    pub(crate) fn of(&self, method: &Method, path: &str) -> Option<&[&'static str]> {
        self.0
            .get(&(method.clone(), path.to_string()))
            .map(Vec::as_slice)
    }
}

/// A scope named in a description is one of [`ALL_SCOPES`]; any other is a mistake in
/// the description, and asks for `admin` rather than for nothing.
fn known_scope(scope: &str) -> &'static str {
    ALL_SCOPES
        .iter()
        .copied()
        .find(|known| *known == scope)
        .unwrap_or("admin")
}

/// Route middleware behind `require_bearer`: 403 unless the principal has every scope
/// the route's description names.
pub(crate) async fn require_scope(
    State(scopes): State<Arc<RouteScopes>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    if let Some(needed) = path.and_then(|path| scopes.of(request.method(), path)) {
        let principal = request
            .extensions()
            .get::<Principal>()
            .ok_or(ApiError::MissingAuth)?;
        for scope in needed {
            principal.require(scope)?;
        }
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_read_from_the_bearer_requirements_of_each_operation() {
        let description: utoipa::openapi::OpenApi = serde_json::from_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/run": {"post": {"responses": {}, "security": [{"bearer": ["run"]}]}},
                "/odd": {"get": {"responses": {}, "security": [{"bearer": ["everything"]}]}},
                "/open": {"get": {"responses": {}}},
                "/any": {"get": {"responses": {}, "security": [{"bearer": []}]}}
            }
        }))
        .expect("a valid description");
        let scopes = RouteScopes::from_description(&description);
        assert_eq!(scopes.of(&Method::POST, "/run"), Some(&["run"][..]));
        assert_eq!(scopes.of(&Method::GET, "/run"), None);
        assert_eq!(scopes.of(&Method::GET, "/odd"), Some(&["admin"][..]));
        assert_eq!(scopes.of(&Method::GET, "/open"), None);
        assert_eq!(scopes.of(&Method::GET, "/any"), None);
    }
}
