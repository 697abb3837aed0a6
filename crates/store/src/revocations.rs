//! Revoked JWT ids (`runbox token revoke`). A row only has to outlive the token it
//! revokes: after `expires_at` the token is rejected as expired anyway.

use chrono::{DateTime, SubsecRound, Utc};

use crate::images::now;
use crate::text::{refuse_nul, storable};
use crate::{with_pool, Store, StoreError};

impl Store {
    /// Records `jti` as revoked until `expires_at`. Revoking again is not an error; the
    /// later of the two expiry times is kept so a revocation never gets shorter.
    pub async fn revoke_token(
        &self,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        refuse_nul("a token id", jti)?;
        const SQL: &str = "INSERT INTO revoked_tokens (jti, revoked_at, expires_at) \
                           VALUES ($1, $2, $3) \
                           ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at \
                           WHERE excluded.expires_at > revoked_tokens.expires_at";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(jti)
            .bind(now())
            .bind(expires_at.trunc_subsecs(6))
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::db("revoking a token"))
    }

    /// Whether `jti` has been revoked (and the revocation not yet swept).
    pub async fn is_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        if !storable(jti) {
            return Ok(false);
        }
        const SQL: &str = "SELECT 1 FROM revoked_tokens WHERE jti = $1";
        let row: Option<(i32,)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(jti)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::db("checking a token revocation"))?;
        Ok(row.is_some())
    }

    /// Deletes revocations whose token expired strictly before `now`; returns how many
    /// went. Callers should pass a `now` that allows for the leeway their JWT validation
    /// grants past `exp` (the retention sweep does).
    pub async fn delete_expired_revocations(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM revoked_tokens WHERE expires_at < $1";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::db("deleting expired revocations"))
    }
}
