//! Who a request acts for: static tokens from config.yaml and HS256 JWTs (revocable in
//! the store). Every surface authenticates the same way; only how the token arrives
//! (an `Authorization` header, …) is the surface's business.

pub mod jwt;
mod secret;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::future::BoxFuture;
use runbox_core::config::AuthConfig;
use runbox_core::Isolation;
use runbox_store::Store;
use sha2::{Digest, Sha256};

pub use jwt::{Claims, JwtError, JwtKeys};
pub use secret::{jwt_secret, load_or_create_secret, SecretError};

use crate::error::RuntimeError;

/// Who a request acts for, and what it may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub scopes: BTreeSet<String>,
    /// The least isolation every run of this caller gets (a token's `isolation`).
    pub isolation: Isolation,
}

impl Principal {
    /// `admin` implies every other scope.
    pub fn require(&self, scope: &'static str) -> Result<(), RuntimeError> {
        if self.is_admin() || self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(RuntimeError::InsufficientScope(scope))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.scopes.contains("admin")
    }
}

pub struct Authenticator {
    /// SHA-256 of each static token → its principal. Comparing digests keeps the
    /// lookup from leaking how much of a guessed token was right.
    static_tokens: HashMap<[u8; 32], Principal>,
    jwt: JwtKeys,
    revocations: Arc<dyn Revocations>,
}

/// Where the ids of revoked JWTs are looked up: the store (a fake in tests).
pub trait Revocations: Send + Sync {
    fn is_revoked<'a>(&'a self, jti: &'a str) -> BoxFuture<'a, Result<bool, RuntimeError>>;
}

impl Revocations for Store {
    fn is_revoked<'a>(&'a self, jti: &'a str) -> BoxFuture<'a, Result<bool, RuntimeError>> {
        Box::pin(async move { Ok(self.is_token_revoked(jti).await?) })
    }
}

impl Authenticator {
    pub fn new(config: &AuthConfig, jwt_secret: &[u8], revocations: Arc<dyn Revocations>) -> Self {
        let static_tokens = config
            .tokens
            .iter()
            .map(|token| {
                (
                    digest(token.token()),
                    Principal {
                        subject: token.subject(),
                        scopes: token.scopes().into_iter().collect(),
                        // Checked when the configuration is loaded.
                        isolation: token
                            .isolation()
                            .and_then(Isolation::parse)
                            .unwrap_or_default(),
                    },
                )
            })
            .collect();
        Authenticator {
            static_tokens,
            jwt: JwtKeys::new(jwt_secret),
            revocations,
        }
    }

    /// The principal of a bearer token: a static token, or a JWT that verifies and has
    /// not been revoked.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, RuntimeError> {
        if let Some(principal) = self.static_tokens.get(&digest(token)) {
            return Ok(principal.clone());
        }
        let claims = self
            .jwt
            .verify(token)
            .map_err(|_| RuntimeError::InvalidToken)?;
        if self.revocations.is_revoked(&claims.jti).await? {
            return Err(RuntimeError::InvalidToken);
        }
        // A token whose isolation cannot be read would run at less than it asked for.
        let isolation = match claims.isolation.as_deref() {
            None => Isolation::Standard,
            Some(text) => Isolation::parse(text).ok_or(RuntimeError::InvalidToken)?,
        };
        Ok(Principal {
            subject: claims.sub,
            scopes: claims
                .scope
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            isolation,
        })
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}
