//! Bearer authentication on the HTTP surface: the middleware turns a request's
//! `Authorization` header into a [`Principal`] (the runtime's authenticator decides who
//! a token is) or rejects it with the exact 401 bodies of API.md; the scope a route
//! needs is checked from its description (`routes/scopes.rs`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

pub use runbox_runtime::auth::{Authenticator, Principal};

use crate::error::ApiError;

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(header: Option<&str>) -> Result<&str, ApiError> {
    header
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty())
        .ok_or(ApiError::MissingAuth)
}

/// Middleware for every route that needs a bearer token.
pub async fn require_bearer(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or_default());
    let principal = auth.authenticate(bearer_token(header)?).await?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_header_with_a_token_is_read() {
        assert_eq!(bearer_token(Some("Bearer abc")).ok(), Some("abc"));
        assert_eq!(bearer_token(Some("  bearer   abc ")).ok(), Some("abc"));
        for wrong in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer  "),
            Some("Basic abc"),
        ] {
            assert!(
                matches!(bearer_token(wrong), Err(ApiError::MissingAuth)),
                "{wrong:?}"
            );
        }
    }
}
