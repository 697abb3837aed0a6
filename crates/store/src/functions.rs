//! Stored functions and their versions. A name is created once (POST) and gets a new
//! version on each PUT; every version stays readable, calls use the latest.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::images::now;
use crate::text::{refuse_nul, storable};
use crate::{with_pool, Store, StoreError};

/// Inserts one version row inside the caller's transaction (a macro because the
/// statement runs on whichever backend's transaction `with_pool!` opened).
macro_rules! insert_version {
    ($tx:expr, $new:expr, $version:expr, $at:expr) => {
        sqlx::query(
            "INSERT INTO function_versions (name, version, code, description, \
             dependencies, args, parameters, max_concurrency, timeout_ms, \
             created_by, created_at, isolation) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&$new.name)
        .bind($version)
        .bind(&$new.code)
        .bind(&$new.description)
        .bind(json_text(&$new.dependencies))
        .bind($new.args.to_string())
        .bind($new.parameters.to_string())
        .bind($new.max_concurrency)
        .bind($new.timeout_ms)
        .bind(&$new.created_by)
        .bind($at)
        .bind(&$new.isolation)
        .execute(&mut *$tx)
        .await
    };
}

/// What a registration stores (the store assigns the version and the time).
#[derive(Clone, Debug, PartialEq)]
pub struct NewFunctionVersion {
    pub name: String,
    pub code: String,
    pub description: String,
    /// Normalised requirements.
    pub dependencies: Vec<String>,
    /// The argument specs, as the API renders them.
    pub args: Value,
    /// The signature the code check reported.
    pub parameters: Value,
    pub max_concurrency: Option<i64>,
    pub timeout_ms: Option<i64>,
    pub created_by: String,
    /// The isolation tier (or OCI runtime) its calls run under, as the API spells it.
    pub isolation: String,
}

/// One stored version of a function.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionVersion {
    pub name: String,
    pub version: i64,
    pub code: String,
    pub description: String,
    pub dependencies: Vec<String>,
    pub args: Value,
    pub parameters: Value,
    pub max_concurrency: Option<i64>,
    pub timeout_ms: Option<i64>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub isolation: String,
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    name: String,
    version: i64,
    code: String,
    description: String,
    dependencies: String,
    args: String,
    parameters: String,
    max_concurrency: Option<i64>,
    timeout_ms: Option<i64>,
    created_by: String,
    created_at: DateTime<Utc>,
    isolation: String,
}

const VERSION_COLUMNS: &str = "v.name, v.version, v.code, v.description, v.dependencies, \
     v.args, v.parameters, v.max_concurrency, v.timeout_ms, v.created_by, v.created_at, \
     v.isolation";

impl Store {
    /// Stores version 1 of a new function; `None` when the name is taken (nothing is
    /// changed then).
    pub async fn create_function(
        &self,
        new: &NewFunctionVersion,
    ) -> Result<Option<FunctionVersion>, StoreError> {
        refuse_unstorable(new)?;
        const CLAIM: &str = "INSERT INTO functions (name, latest_version, created_at, updated_at) \
                             VALUES ($1, 1, $2, $2) ON CONFLICT (name) DO NOTHING";
        let at = now();
        let stored = with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let claimed = sqlx::query(CLAIM)
                .bind(&new.name)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if claimed == 0 {
                return Ok(None);
            }
            insert_version!(tx, new, 1_i64, at)?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Some(()))
        }.await)
        .map_err(StoreError::db("creating a function"))?;
        Ok(stored.map(|()| version_from(new, 1, at)))
    }

    /// Stores the next version of `new.name`, creating the function (version 1) when it
    /// does not exist. Returns the stored version and whether the function was created.
    pub async fn put_function_version(
        &self,
        new: &NewFunctionVersion,
    ) -> Result<(FunctionVersion, bool), StoreError> {
        refuse_unstorable(new)?;
        // One statement claims the next number, so concurrent PUTs get distinct versions.
        const BUMP: &str = "INSERT INTO functions (name, latest_version, created_at, updated_at) \
                            VALUES ($1, 1, $2, $2) \
                            ON CONFLICT (name) DO UPDATE \
                            SET latest_version = functions.latest_version + 1, \
                                updated_at = excluded.updated_at \
                            RETURNING latest_version";
        let at = now();
        let version = with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let (version,): (i64,) = sqlx::query_as(BUMP)
                .bind(&new.name)
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
            insert_version!(tx, new, version, at)?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(version)
        }.await)
        .map_err(StoreError::db("storing a function version"))?;
        Ok((version_from(new, version, at), version == 1))
    }

    /// A version of `name` (the latest when `version` is `None`).
    pub async fn function(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<FunctionVersion>, StoreError> {
        if !storable(name) {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM function_versions v \
             JOIN functions f ON f.name = v.name \
             WHERE v.name = $1 AND v.version = COALESCE($2, f.latest_version)"
        );
        let row: Option<VersionRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(name)
            .bind(version)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::db("loading a function"))?;
        row.map(decode_version).transpose()
    }

    /// Every version of `name`, oldest first; empty when there is no such function.
    pub async fn function_versions(&self, name: &str) -> Result<Vec<FunctionVersion>, StoreError> {
        if !storable(name) {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM function_versions v WHERE v.name = $1 ORDER BY v.version"
        );
        let rows: Vec<VersionRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(name)
            .fetch_all(pool)
            .await)
        .map_err(StoreError::db("listing function versions"))?;
        rows.into_iter().map(decode_version).collect()
    }

    /// The latest version of every function, by name.
    pub async fn list_functions(&self) -> Result<Vec<FunctionVersion>, StoreError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM function_versions v \
             JOIN functions f ON f.name = v.name AND f.latest_version = v.version \
             ORDER BY v.name"
        );
        let rows: Vec<VersionRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .fetch_all(pool)
            .await)
        .map_err(StoreError::db("listing functions"))?;
        rows.into_iter().map(decode_version).collect()
    }

    /// Deletes a function with all its versions; returns how many versions went (0: there
    /// was no such function).
    pub async fn delete_function(&self, name: &str) -> Result<u64, StoreError> {
        if !storable(name) {
            return Ok(0);
        }
        const DELETE_VERSIONS: &str = "DELETE FROM function_versions WHERE name = $1";
        const DELETE: &str = "DELETE FROM functions WHERE name = $1";
        // The transaction's first statement writes: one that read first would be refused
        // at once by SQLite when another writer got in between (its busy timeout does not
        // cover a read lock's upgrade), and the rows deleted are the count anyway.
        with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let count = sqlx::query(DELETE_VERSIONS)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(DELETE).bind(name).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(count)
        }.await)
        .map_err(StoreError::db("deleting a function"))
    }
}

fn version_from(new: &NewFunctionVersion, version: i64, at: DateTime<Utc>) -> FunctionVersion {
    FunctionVersion {
        name: new.name.clone(),
        version,
        code: new.code.clone(),
        description: new.description.clone(),
        dependencies: new.dependencies.clone(),
        args: new.args.clone(),
        parameters: new.parameters.clone(),
        max_concurrency: new.max_concurrency,
        timeout_ms: new.timeout_ms,
        created_by: new.created_by.clone(),
        created_at: at,
        isolation: new.isolation.clone(),
    }
}

fn decode_version(row: VersionRow) -> Result<FunctionVersion, StoreError> {
    let corrupt = |column: &str, e: serde_json::Error| StoreError::CorruptRow {
        table: "function_versions",
        key: format!("{} v{}", row.name, row.version),
        reason: format!("{column} is not valid JSON: {e}"),
    };
    let dependencies =
        serde_json::from_str(&row.dependencies).map_err(|e| corrupt("dependencies", e))?;
    let args = serde_json::from_str(&row.args).map_err(|e| corrupt("args", e))?;
    let parameters = serde_json::from_str(&row.parameters).map_err(|e| corrupt("parameters", e))?;
    Ok(FunctionVersion {
        name: row.name,
        version: row.version,
        code: row.code,
        description: row.description,
        dependencies,
        args,
        parameters,
        max_concurrency: row.max_concurrency,
        timeout_ms: row.timeout_ms,
        created_by: row.created_by,
        created_at: row.created_at,
        isolation: row.isolation,
    })
}

pub(crate) fn json_text(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

/// A definition with text that cannot be stored is invalid input (see `crate::text`).
fn refuse_unstorable(new: &NewFunctionVersion) -> Result<(), StoreError> {
    refuse_nul("a function name", &new.name)?;
    refuse_nul("the code", &new.code)?;
    refuse_nul("the description", &new.description)?;
    refuse_nul("the creator", &new.created_by)
}
