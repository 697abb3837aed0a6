//! Opening the database: URL parsing, pool setup, migrations, health.

use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Connection, PgConnection};

use crate::{with_pool, Pool, Store, StoreError};

/// SQLite serialises writers anyway; a few connections let reads overlap a write.
const SQLITE_MAX_CONNECTIONS: u32 = 4;
const POSTGRES_MAX_CONNECTIONS: u32 = 8;
/// How long a writer waits for SQLite's lock before failing with "database is locked".
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a query waits for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the first PostgreSQL connection attempt (sqlx has no connect timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_secs(2);

impl Store {
    /// Opens `sqlite://path/to/file.db` (relative; `sqlite:///abs/path.db` for absolute,
    /// `sqlite::memory:` for a private in-memory database) or `postgres://…` /
    /// `postgresql://…`, and brings the schema up to date. The SQLite file and its
    /// parent directories are created when missing.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let shown = redact_url(url);
        let pool = if url.starts_with("sqlite:") {
            Pool::Sqlite(connect_sqlite(url, &shown).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pool::Postgres(connect_postgres(url, &shown).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(shown));
        };
        let store = Store { pool };
        if let Err(e) = store.migrate(url, &shown).await {
            store.close().await;
            return Err(e);
        }
        tracing::info!(url = %shown, backend = %store.backend(), "store connected");
        Ok(store)
    }

    async fn migrate(&self, url: &str, shown: &str) -> Result<(), StoreError> {
        let result = match &self.pool {
            Pool::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
            Pool::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        };
        result.map_err(|e| StoreError::Migrate {
            url: shown.to_owned(),
            reason: scrub(&e.to_string(), url),
        })
    }

    /// The SQLite database's file (`None` for PostgreSQL or an in-memory database).
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let path = pool.connect_options().get_filename().to_path_buf();
                (!path.as_os_str().is_empty() && path != std::path::Path::new(":memory:"))
                    .then_some(path)
            }
            Pool::Postgres(_) => None,
        }
    }

    /// Cheap liveness check for health endpoints: `SELECT 1`, bounded to 2 s including
    /// the wait for a pooled connection.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let query = async {
            with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
        };
        tokio::time::timeout(PING_TIMEOUT, query)
            .await
            .map_err(|_| StoreError::Timeout(PING_TIMEOUT))?
            .map_err(StoreError::db("pinging"))
    }

    /// Waits for checked-out connections to come back and closes them all. Every clone
    /// of this store fails with a pool-closed error afterwards.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

async fn connect_sqlite(url: &str, shown: &str) -> Result<sqlx::SqlitePool, StoreError> {
    let invalid = |reason: String| StoreError::InvalidUrl {
        url: shown.to_owned(),
        reason,
    };
    let options = SqliteConnectOptions::from_str(url).map_err(|e| invalid(e.to_string()))?;
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let mut pool_options = SqlitePoolOptions::new()
        .max_connections(SQLITE_MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT);
    let options = if in_memory {
        // An in-memory database lives only as long as a connection to it: keep exactly
        // one, forever, so every query sees the same data.
        pool_options = pool_options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
        options
    } else {
        let path = options.get_filename();
        if path.as_os_str().is_empty() {
            // SQLite would silently open a temporary database that vanishes on close.
            return Err(invalid(
                "no file path (use sqlite://path/to/file.db)".into(),
            ));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|source| StoreError::CreateDir {
                    path: parent.to_path_buf(),
                    source,
                })?;
        }
        // WAL lets readers proceed during a write. Synchronous stays at sqlx's FULL: a
        // revocation must survive a power cut once `revoke_token` has returned.
        options.journal_mode(SqliteJournalMode::Wal)
    };
    let options = options
        .create_if_missing(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true);
    pool_options
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Connect {
            url: shown.to_owned(),
            reason: e.to_string(),
        })
}

async fn connect_postgres(url: &str, shown: &str) -> Result<sqlx::PgPool, StoreError> {
    let mut options = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl {
        url: shown.to_owned(),
        reason: scrub(&e.to_string(), url),
    })?;
    if options.get_application_name().is_none() {
        // Makes runbox's sessions recognisable in pg_stat_activity.
        options = options.application_name("runbox");
    }
    let connect_error = |reason: String| StoreError::Connect {
        url: shown.to_owned(),
        reason: scrub(&reason, url),
    };
    // One direct attempt before building the pool: the pool retries refused connections
    // until its acquire timeout and then reports only "pool timed out", hiding whether
    // the server is down, the password is wrong or the database does not exist.
    let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
        .await
        .map_err(|_| connect_error(format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| connect_error(e.to_string()))?;
    if let Err(e) = probe.close().await {
        tracing::debug!(error = %e, "closing the probe connection failed");
    }
    Ok(PgPoolOptions::new()
        .max_connections(POSTGRES_MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options))
}

/// `url` with its password (in the user-info part or a `password=` query parameter)
/// replaced by `***`, for logs and error messages. Anything that is not a URL is
/// returned unchanged.
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut copied = 0;
    for range in password_ranges(url) {
        out.push_str(&url[copied..range.start]);
        out.push_str("***");
        copied = range.end;
    }
    out.push_str(&url[copied..]);
    out
}

/// Byte ranges of the passwords in `url`, in order and not overlapping: the one in the
/// user info (`scheme://user:PASSWORD@host`) and the values of `password=` parameters.
fn password_ranges(url: &str) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut query_search_from = 0;
    if let Some(authority) = url.find("://").map(|i| i + 3) {
        let rest = &url[authority..];
        // The user info ends at the last `@` before the query: stopping at the first `/`
        // instead would miss passwords that contain an unencoded `/`.
        let before_query = rest.find(['?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..before_query].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                ranges.push(authority + colon + 1..authority + at);
            }
            query_search_from = authority + at;
        }
    }
    if let Some(q) = url[query_search_from..].find('?') {
        let query_start = query_search_from + q + 1;
        let query_end = url[query_start..]
            .find('#')
            .map_or(url.len(), |i| query_start + i);
        let mut pair_start = query_start;
        for pair in url[query_start..query_end].split('&') {
            if let Some((key, _)) = pair.split_once('=') {
                if key.eq_ignore_ascii_case("password") {
                    ranges.push(pair_start + key.len() + 1..pair_start + pair.len());
                }
            }
            pair_start += pair.len() + 1;
        }
    }
    ranges
}

/// Removes the passwords of `url`, raw and percent-decoded, from `message`: driver
/// messages are not written with secrets in mind.
fn scrub(message: &str, url: &str) -> String {
    let mut message = message.to_owned();
    for range in password_ranges(url) {
        let raw = &url[range];
        for secret in [raw.to_owned(), percent_decode(raw)] {
            if !secret.is_empty() {
                message = message.replace(&secret, "***");
            }
        }
    }
    message
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo_password() {
        assert_eq!(
            redact_url("postgres://runbox:hunter2@db.example:5432/runbox"),
            "postgres://runbox:***@db.example:5432/runbox"
        );
        assert_eq!(
            redact_url("postgresql://u:p%40ss/w@host/db?sslmode=disable"),
            "postgresql://u:***@host/db?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://u:a@b@host/db"),
            "postgres://u:***@host/db"
        );
    }

    #[test]
    fn redacts_password_query_parameter() {
        assert_eq!(
            redact_url("postgres://host/db?user=u&password=hunter2&sslmode=disable"),
            "postgres://host/db?user=u&password=***&sslmode=disable"
        );
    }

    #[test]
    fn leaves_urls_without_password_alone() {
        for url in [
            "postgres://postgres@127.0.0.1:55432/runbox_test",
            "postgres://localhost/db",
            "sqlite://data/runbox.db",
            "sqlite:///var/lib/runbox/runbox.db",
            "sqlite::memory:",
            "not a url",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn scrub_hides_raw_and_decoded_passwords() {
        let url = "postgres://u:p%40ss@host/db?password=other";
        let message = "failed for p%40ss, p@ss and other";
        assert_eq!(scrub(message, url), "failed for ***, *** and ***");
    }

    #[test]
    fn percent_decode_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }
}
