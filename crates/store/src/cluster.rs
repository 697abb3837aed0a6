//! What the replicas of one service share beyond their data: settings made once for all
//! of them (the JWT secret, so that a token one replica issued is valid at every other),
//! and the registry of replicas — where each is, how much it can run and runs now, and
//! when it last said so.

use chrono::{DateTime, Utc};

use crate::images::now;
use crate::{with_pool, Store, StoreError};

/// One replica as the registry knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaRecord {
    pub id: String,
    /// Where its peers reach it (`http://10.0.0.2:8000`).
    pub address: String,
    /// The label of its containers on its engine.
    pub instance: String,
    /// Runs it executes at once (`admission.max_concurrent_runs`).
    pub capacity: i64,
    /// Runs executing at its last heartbeat.
    pub running: i64,
    /// Whether it takes work (its engine answers).
    pub available: bool,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ReplicaRow {
    id: String,
    address: String,
    instance: String,
    capacity: i64,
    running: i64,
    available: bool,
    started_at: DateTime<Utc>,
    heartbeat_at: DateTime<Utc>,
}

impl From<ReplicaRow> for ReplicaRecord {
    fn from(row: ReplicaRow) -> Self {
        ReplicaRecord {
            id: row.id,
            address: row.address,
            instance: row.instance,
            capacity: row.capacity,
            running: row.running,
            available: row.available,
            started_at: row.started_at,
            heartbeat_at: row.heartbeat_at,
        }
    }
}

impl Store {
    /// The setting `name`, made by `make` and stored when no replica has made it yet;
    /// every replica gets the same value (the first one stored wins a race).
    pub async fn shared_setting(
        &self,
        name: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        const READ: &str = "SELECT value FROM settings WHERE name = $1";
        const CLAIM: &str =
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
        let found: Option<(String,)> = with_pool!(self, pool => sqlx::query_as(READ)
            .bind(name)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::db("reading a setting"))?;
        if let Some((value,)) = found {
            return Ok(value);
        }
        let value = make();
        with_pool!(self, pool => sqlx::query(CLAIM)
            .bind(name)
            .bind(&value)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::db("storing a setting"))?;
        let (stored,): (String,) = with_pool!(self, pool => sqlx::query_as(READ)
            .bind(name)
            .fetch_one(pool)
            .await)
        .map_err(StoreError::db("reading a setting"))?;
        Ok(stored)
    }

    /// Registers a replica, or refreshes its row: its load and heartbeat.
    pub async fn heartbeat(&self, replica: &ReplicaRecord) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO replicas \
             (id, address, instance, capacity, running, available, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET address = excluded.address, \
             capacity = excluded.capacity, running = excluded.running, \
             available = excluded.available, heartbeat_at = excluded.heartbeat_at";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(&replica.id)
            .bind(&replica.address)
            .bind(&replica.instance)
            .bind(replica.capacity)
            .bind(replica.running)
            .bind(replica.available)
            .bind(replica.started_at)
            .bind(now())
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::db("recording a heartbeat"))
    }

    /// Every registered replica, oldest first.
    pub async fn replicas(&self) -> Result<Vec<ReplicaRecord>, StoreError> {
        const SQL: &str = "SELECT id, address, instance, capacity, running, available, \
                           started_at, heartbeat_at FROM replicas ORDER BY started_at, id";
        let rows: Vec<ReplicaRow> = with_pool!(self, pool => sqlx::query_as(SQL)
            .fetch_all(pool)
            .await)
        .map_err(StoreError::db("listing replicas"))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Forgets every replica but `id`: on SQLite there is only one, and rows of a server
    /// that ended without leaving are history.
    pub async fn forget_replicas_except(&self, id: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM replicas WHERE id <> $1";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::db("forgetting replicas"))
    }

    /// A replica leaves the registry (it stopped; or its peers found it dead).
    pub async fn remove_replica(&self, id: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM replicas WHERE id = $1";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::db("removing a replica"))
    }
}
