//! Where each session lives: the replica that opened it holds its sandbox, and the other
//! replicas look here to forward a request for it to that owner (or to say that the
//! owner is gone).

use chrono::{DateTime, Utc};

use crate::images::now;
use crate::{with_pool, Store, StoreError};

/// One session as the replicas share it.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct SessionRecord {
    pub id: String,
    /// The id of the replica that holds it.
    pub owner: String,
    pub subject: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
}

impl Store {
    /// Records a session its owner has just opened.
    pub async fn record_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO sessions (id, owner, subject, created_at, last_used_at) \
                           VALUES ($1, $2, $3, $4, $5)";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(&session.id)
            .bind(&session.owner)
            .bind(&session.subject)
            .bind(session.created_at)
            .bind(session.last_used_at)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::db("recording a session"))
    }

    /// The session `id`, wherever it lives.
    pub async fn session_record(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        const SQL: &str = "SELECT id, owner, subject, created_at, last_used_at \
                           FROM sessions WHERE id = $1";
        with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::db("reading a session"))
    }

    /// The sessions `owner` holds.
    pub async fn session_ids_of(&self, owner: &str) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT id FROM sessions WHERE owner = $1";
        let rows: Vec<(String,)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(owner)
            .fetch_all(pool)
            .await)
        .map_err(StoreError::db("listing a replica's sessions"))?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// The replicas that hold sessions of `subject`.
    pub async fn session_owners_for(&self, subject: &str) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT DISTINCT owner FROM sessions WHERE subject = $1";
        let rows: Vec<(String,)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(subject)
            .fetch_all(pool)
            .await)
        .map_err(StoreError::db("listing where a subject's sessions live"))?;
        Ok(rows.into_iter().map(|(owner,)| owner).collect())
    }

    /// Records that session `id` was used now.
    pub async fn touch_session(&self, id: &str) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE sessions SET last_used_at = $2 WHERE id = $1";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(id)
            .bind(now())
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::db("recording a session's use"))
    }

    /// Forgets session `id` (its owner ended it and no longer remembers it).
    pub async fn forget_session(&self, id: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM sessions WHERE id = $1";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::db("forgetting a session"))
    }

    /// Forgets the sessions of owners whose heartbeat is not newer than `alive_since`
    /// (or that left the registry) and that nobody used since `used_before`: they would
    /// have ended by now anyway, so a request for one is a plain 404 from here on.
    pub async fn forget_sessions_of_dead_owners(
        &self,
        alive_since: DateTime<Utc>,
        used_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM sessions WHERE last_used_at < $2 AND owner NOT IN \
             (SELECT id FROM replicas WHERE heartbeat_at > $1)";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(alive_since)
            .bind(used_before)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .map_err(StoreError::db("forgetting the sessions of dead replicas"))
    }
}
