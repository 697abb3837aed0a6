//! HS256 JWTs: issued by `runbox token create`, checked on every request. Only HS256 is
//! accepted (`alg: none` and every other algorithm are refused by the validation).

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// How far past `exp` (and before `nbf`) a token is still accepted, for clock skew.
const LEEWAY_SECONDS: u64 = 5;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    #[serde(default)]
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: String,
    /// The isolation tier (or OCI runtime) every run of the token gets at least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("cannot sign the token: {0}")]
    Sign(jsonwebtoken::errors::Error),
    #[error("the token is not valid: {0}")]
    Invalid(jsonwebtoken::errors::Error),
    #[error("the time to live is too long")]
    TtlTooLong,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn issue(
        &self,
        subject: &str,
        scopes: &[String],
        ttl: Duration,
    ) -> Result<(String, Claims), JwtError> {
        self.issue_with_isolation(subject, scopes, None, ttl)
    }

    /// [`JwtKeys::issue`], with the isolation floor of the token's runs.
    pub fn issue_with_isolation(
        &self,
        subject: &str,
        scopes: &[String],
        isolation: Option<&str>,
        ttl: Duration,
    ) -> Result<(String, Claims), JwtError> {
        let now = Utc::now().timestamp();
        let ttl = i64::try_from(ttl.as_secs()).map_err(|_| JwtError::TtlTooLong)?;
        let claims = Claims {
            sub: subject.to_string(),
            iat: now,
            nbf: None,
            exp: now.checked_add(ttl).ok_or(JwtError::TtlTooLong)?,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            scope: scopes.join(" "),
            isolation: isolation.map(str::to_string),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(JwtError::Sign)?;
        Ok((token, claims))
    }

    /// Checks the signature only: `runbox token revoke` must accept an expired token.
    pub fn verify_ignoring_expiry(&self, token: &str) -> Result<Claims, JwtError> {
        let mut validation = self.validation.clone();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(JwtError::Invalid)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(JwtError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_carry_their_scopes() {
        let keys = JwtKeys::new(b"secret");
        let (token, claims) = keys
            .issue(
                "alice",
                &["run".into(), "tasks".into()],
                Duration::from_secs(60),
            )
            .expect("issues");
        let verified = keys.verify(&token).expect("verifies");
        assert_eq!(verified, claims);
        assert_eq!(verified.scope, "run tasks");
    }

    #[test]
    fn another_secret_is_refused() {
        let (token, _) = JwtKeys::new(b"one")
            .issue("alice", &[], Duration::from_secs(60))
            .expect("issues");
        assert!(JwtKeys::new(b"two").verify(&token).is_err());
    }

    #[test]
    fn alg_none_is_refused() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let exp = Utc::now().timestamp() + 600;
        let payload = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"x","exp":{exp},"jti":"j","scope":"run"}}"#
        ));
        let token = format!("{header}.{payload}.");
        assert!(JwtKeys::new(b"secret").verify(&token).is_err());
    }
}
