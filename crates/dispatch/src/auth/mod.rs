//! Bearer authentication: static tokens from config.yaml and HS256 JWTs. The middleware
//! turns a request's `Authorization` header into a [`Principal`] or rejects it with the
//! exact 401 bodies of API.md; the scope a route needs is checked from its description (`routes/scopes.rs`).

pub mod jwt;
mod secret;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use runbox_core::config::AuthConfig;
use runbox_store::Store;
use sha2::{Digest, Sha256};

pub use jwt::{Claims, JwtKeys};
pub use secret::{load_or_create_secret, SecretError};

use crate::error::ApiError;

/// Who a request acts for, and what it may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub scopes: BTreeSet<String>,
}

impl Principal {
    /// Who the runtime hears the request from.
    pub fn caller(&self) -> runbox_runtime::Caller {
        runbox_runtime::Caller {
            subject: self.subject.clone(),
        }
    }

    pub fn require(&self, scope: &'static str) -> Result<(), ApiError> {
        if self.scopes.contains(scope) || self.scopes.contains("admin") {
            Ok(())
        } else {
            Err(ApiError::InsufficientScope(scope))
        }
    }
}

pub struct Authenticator {
    /// SHA-256 of each static token → its principal. Comparing digests keeps the
    /// lookup from leaking how much of a guessed token was right.
    static_tokens: HashMap<[u8; 32], Principal>,
    jwt: JwtKeys,
    store: Store,
}

impl Authenticator {
    pub fn new(config: &AuthConfig, jwt_secret: &[u8], store: Store) -> Self {
        let static_tokens = config
            .tokens
            .iter()
            .map(|token| {
                (
                    digest(token.token()),
                    Principal {
                        subject: token.subject(),
                        scopes: token.scopes().into_iter().collect(),
                    },
                )
            })
            .collect();
        Authenticator {
            static_tokens,
            jwt: JwtKeys::new(jwt_secret),
            store,
        }
    }

    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, ApiError> {
        let token = header
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or(ApiError::MissingAuth)?;
        if let Some(principal) = self.static_tokens.get(&digest(token)) {
            return Ok(principal.clone());
        }
        let claims = self.jwt.verify(token).map_err(|_| ApiError::InvalidToken)?;
        if self.store.is_token_revoked(&claims.jti).await? {
            return Err(ApiError::InvalidToken);
        }
        Ok(Principal {
            subject: claims.sub,
            scopes: claims
                .scope
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        })
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
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
    let principal = auth.authenticate(header).await?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}
