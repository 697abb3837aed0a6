//! Dependency environments: which image a dependency set was built into, whether the
//! build is running, done or failed, and what pip said. The image itself is the Docker
//! engine's; this table is what survives a restart and what other replicas see.

use chrono::{DateTime, Utc};

use crate::functions::json_text;
use crate::images::now;
use crate::{with_pool, Store, StoreError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvironmentStatus {
    Building,
    Ready,
    Failed,
}

impl EnvironmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvironmentStatus::Building => "building",
            EnvironmentStatus::Ready => "ready",
            EnvironmentStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "building" => EnvironmentStatus::Building,
            "ready" => EnvironmentStatus::Ready,
            "failed" => EnvironmentStatus::Failed,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EnvironmentRecord {
    pub hash: String,
    /// The image calls run in: the environment image, or the sandbox image when it
    /// already had every requirement.
    pub image: String,
    pub dependencies: Vec<String>,
    pub status: EnvironmentStatus,
    /// pip's output (its tail); empty while building.
    pub log: String,
    pub builder: String,
    pub build_ms: Option<i64>,
    pub updated_at: DateTime<Utc>,
}

type EnvironmentRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<i64>,
    DateTime<Utc>,
);

impl Store {
    /// Records that `builder` starts building `hash` (again, after a failure or a lost
    /// image): status `building`, log cleared.
    pub async fn environment_building(
        &self,
        hash: &str,
        image: &str,
        dependencies: &[String],
        builder: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO environments \
                           (hash, image, dependencies, status, log, builder, build_ms, updated_at) \
                           VALUES ($1, $2, $3, 'building', '', $4, NULL, $5) \
                           ON CONFLICT (hash) DO UPDATE SET status = 'building', log = '', \
                           builder = excluded.builder, build_ms = NULL, \
                           updated_at = excluded.updated_at";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(hash)
            .bind(image)
            .bind(json_text(dependencies))
            .bind(builder)
            .bind(now())
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::db("recording an environment build"))
    }

    /// Records how a build ended: `ready` (running in `image`) or `failed`, with pip's
    /// log.
    pub async fn environment_finished(
        &self,
        hash: &str,
        status: EnvironmentStatus,
        image: &str,
        log: &str,
        build_ms: i64,
    ) -> Result<(), StoreError> {
        if status == EnvironmentStatus::Building {
            return Err(StoreError::InvalidInput(
                "a finished build is ready or failed".into(),
            ));
        }
        const SQL: &str = "UPDATE environments SET status = $2, log = $3, build_ms = $4, \
                           updated_at = $5, image = $6 WHERE hash = $1";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(hash)
            .bind(status.as_str())
            .bind(log)
            .bind(build_ms)
            .bind(now())
            .bind(image)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::db("recording the end of an environment build"))
    }

    pub async fn environment(&self, hash: &str) -> Result<Option<EnvironmentRecord>, StoreError> {
        const SQL: &str = "SELECT hash, image, dependencies, status, log, builder, build_ms, \
                           updated_at FROM environments WHERE hash = $1";
        let row: Option<EnvironmentRow> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(hash)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::db("loading an environment"))?;
        row.map(decode_environment).transpose()
    }

    /// Every recorded environment (for pruning).
    pub async fn list_environments(&self) -> Result<Vec<EnvironmentRecord>, StoreError> {
        const SQL: &str = "SELECT hash, image, dependencies, status, log, builder, build_ms, \
                           updated_at FROM environments ORDER BY hash";
        let rows: Vec<EnvironmentRow> = with_pool!(self, pool => sqlx::query_as(SQL)
            .fetch_all(pool)
            .await)
        .map_err(StoreError::db("listing environments"))?;
        rows.into_iter().map(decode_environment).collect()
    }

    pub async fn delete_environment(&self, hash: &str) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM environments WHERE hash = $1";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(hash)
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0))
        .map_err(StoreError::db("deleting an environment"))
    }

    /// Builds that `builder` had running when it died can never finish: they are failed
    /// (and rebuilt when next needed). Returns how many.
    pub async fn fail_interrupted_builds(&self, builder: &str) -> Result<u64, StoreError> {
        const SQL: &str = "UPDATE environments SET status = 'failed', \
                           log = 'interrupted: the server stopped during the build', \
                           updated_at = $2 WHERE builder = $1 AND status = 'building'";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(builder)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::db("failing interrupted environment builds"))
    }
}

fn decode_environment(
    (hash, image, dependencies, status, log, builder, build_ms, updated_at): EnvironmentRow,
) -> Result<EnvironmentRecord, StoreError> {
    let corrupt = |reason: String| StoreError::CorruptRow {
        table: "environments",
        key: hash.clone(),
        reason,
    };
    let dependencies = serde_json::from_str(&dependencies)
        .map_err(|e| corrupt(format!("dependencies is not valid JSON: {e}")))?;
    let status = EnvironmentStatus::parse(&status)
        .ok_or_else(|| corrupt(format!("unknown status `{status}`")))?;
    Ok(EnvironmentRecord {
        hash,
        image,
        dependencies,
        status,
        log,
        builder,
        build_ms,
        updated_at,
    })
}
