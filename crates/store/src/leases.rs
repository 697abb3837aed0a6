//! Leases: what replicas hold against a limit they share (a function's
//! `max_concurrency`, a subject's live sessions). A lease is a row naming its holder; it
//! counts only while the holder's heartbeat is newer than the caller's cutoff, so the
//! leases of a replica that died lapse with it, without anyone deleting them first.

use chrono::{DateTime, Utc};

use crate::images::now;
use crate::{with_pool, Backend, Store, StoreError};

impl Store {
    /// Takes lease `id` on `name` for `holder` when fewer than `limit` leases on `name`
    /// are held by replicas whose heartbeat is newer than `alive_since`. Returns whether
    /// it was taken. On PostgreSQL the count and the insert run under a transaction-scoped
    /// advisory lock on `name`, so two replicas never both take the last one.
    pub async fn acquire_lease(
        &self,
        id: &str,
        name: &str,
        holder: &str,
        limit: i64,
        alive_since: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";
        const TAKE: &str = "INSERT INTO leases (id, name, holder, acquired_at) \
             SELECT $1, $2, $3, $4 WHERE (SELECT count(*) FROM leases \
             WHERE name = $2 AND (holder = $3 OR holder IN \
             (SELECT id FROM replicas WHERE heartbeat_at > $5))) < $6";
        let postgres = self.backend() == Backend::Postgres;
        let taken = with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            if postgres {
                sqlx::query(LOCK).bind(name).execute(&mut *tx).await?;
            }
            let taken = sqlx::query(TAKE)
                .bind(id)
                .bind(name)
                .bind(holder)
                .bind(now())
                .bind(alive_since)
                .bind(limit)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(taken == 1)
        }.await)
        .map_err(StoreError::db("taking a lease"))?;
        Ok(taken)
    }

    /// Gives lease `id` back (nothing happens when it is not held).
    pub async fn release_lease(&self, id: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM leases WHERE id = $1";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::db("releasing a lease"))
    }

    /// Forgets the leases of replicas that are not registered or whose heartbeat is not
    /// newer than `alive_since`: they no longer count, and this keeps the table small.
    pub async fn forget_lapsed_leases(
        &self,
        alive_since: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM leases WHERE holder NOT IN \
             (SELECT id FROM replicas WHERE heartbeat_at > $1)";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(alive_since)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .map_err(StoreError::db("forgetting lapsed leases"))
    }

    /// Gives back every lease `holder` holds (it starts, or stops).
    pub async fn release_leases_of(&self, holder: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM leases WHERE holder = $1";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(holder)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::db("releasing leases"))
    }
}
