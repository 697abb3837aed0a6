use base64::Engine as _;
use chrono::{DateTime, Utc};
use runbox_store::{Backend, Store};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{PgPool, SqlitePool};

pub const POSTGRES_URL_VAR: &str = "RUNBOX_TEST_POSTGRES_URL";

/// Generates, for each named `async fn NAME(db: &TestDb)` of the calling module, a
/// module `NAME` with the tests `sqlite` and `postgres`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::harness::TestDb::sqlite().await;
                super::$scenario(&db).await;
                db.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = $crate::harness::TestDb::postgres().await else {
                    return;
                };
                super::$scenario(&db).await;
                db.cleanup().await;
            }
        }
    )*};
}

/// A freshly migrated, empty database plus a raw pool on the same data, for checks
/// that must look under the store's API.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    raw: Raw,
    // Held so the SQLite file outlives the test.
    _dir: Option<tempfile::TempDir>,
}

enum Raw {
    Sqlite(SqlitePool),
    Postgres {
        pool: PgPool,
        admin: PgPool,
        schema: String,
    },
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/runbox.db");
        let url = format!("sqlite://{}", path.display());
        let store = Store::connect(&url).await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        let raw = SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        TestDb {
            store,
            url,
            raw: Raw::Sqlite(raw),
            _dir: Some(dir),
        }
    }

    /// `None` (the test is skipped, with a note on stderr) when no server is
    /// configured, except under CI, where a missing server fails the test.
    pub async fn postgres() -> Option<TestDb> {
        let base = postgres_url()?;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&base)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}: {e}"));
        // A schema per test keeps tests that count or delete every row independent of
        // the others running at the same time.
        let schema = format!("runbox_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .unwrap();
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options[search_path]={schema}");
        let store = Store::connect(&url).await.unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        Some(TestDb {
            store,
            url,
            raw: Raw::Postgres {
                pool,
                admin,
                schema,
            },
            _dir: None,
        })
    }

    pub async fn cleanup(self) {
        self.store.close().await;
        match self.raw {
            Raw::Sqlite(pool) => pool.close().await,
            Raw::Postgres {
                pool,
                admin,
                schema,
            } => {
                pool.close().await;
                sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
            }
        }
    }

    /// The raw `data_base64` column of image `name`.
    pub async fn raw_data_base64(&self, name: &str) -> Option<String> {
        const SQL: &str = "SELECT data_base64 FROM images WHERE name = $1";
        let row: Option<(String,)> = match &self.raw {
            Raw::Sqlite(pool) => sqlx::query_as(SQL).bind(name).fetch_optional(pool).await,
            Raw::Postgres { pool, .. } => sqlx::query_as(SQL).bind(name).fetch_optional(pool).await,
        }
        .unwrap();
        row.map(|(data,)| data)
    }

    /// Rewrites an image's creation time behind the store's back, the way an operator
    /// or another crate's test would with plain sqlx.
    pub async fn set_created_at(&self, name: &str, at: DateTime<Utc>) {
        const SQL: &str = "UPDATE images SET created_at = $1 WHERE name = $2";
        let updated = match &self.raw {
            Raw::Sqlite(pool) => sqlx::query(SQL)
                .bind(at)
                .bind(name)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
            Raw::Postgres { pool, .. } => sqlx::query(SQL)
                .bind(at)
                .bind(name)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
        }
        .unwrap();
        assert_eq!(updated, 1, "no image named {name}");
    }
}

impl TestDb {
    /// Rewrites when a task finished, as an old task would read.
    pub async fn set_task_finished_at(&self, id: &str, at: DateTime<Utc>) {
        const SQL: &str = "UPDATE tasks SET finished_at = $1 WHERE id = $2";
        let updated = match &self.raw {
            Raw::Sqlite(pool) => sqlx::query(SQL)
                .bind(at)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
            Raw::Postgres { pool, .. } => sqlx::query(SQL)
                .bind(at)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
        }
        .unwrap();
        assert_eq!(updated, 1, "no task {id}");
    }
}

/// The PostgreSQL URL to test against, `None` to skip; panics under CI without one so
/// that a misconfigured pipeline cannot pass without ever touching PostgreSQL.
fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        // CI=true is the convention; anything but an explicit false counts.
        _ if std::env::var("CI").is_ok_and(|v| {
            !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false")
        }) =>
        {
            panic!(
                "{POSTGRES_URL_VAR} is not set but CI=true: the PostgreSQL store tests must run \
             in CI. Start a server with scripts/start-test-postgres.sh and export the URL it \
             prints as {POSTGRES_URL_VAR}."
            )
        }
        _ => {
            eprintln!("skipped: set {POSTGRES_URL_VAR} to run the PostgreSQL store tests");
            None
        }
    }
}

pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A unique name, so that a test failing half-way never trips over leftovers.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
