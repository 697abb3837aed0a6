use std::time::{Duration, Instant};

use runbox_store::{redact_url, Backend, Store, StoreError};

#[tokio::test]
async fn unreachable_postgres_fails_fast_without_leaking_the_password() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let url = "postgres://runbox:s3cr3t-pa55w0rd@127.0.0.1:1/runbox";
    let started = Instant::now();
    let err = Store::connect(url).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
    assert!(err.is_unavailable());
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains("s3cr3t"), "password leaked: {shown}");
        assert!(shown.contains("127.0.0.1:1"), "location missing: {shown}");
    }
}

#[tokio::test]
async fn unsupported_scheme_is_rejected_and_redacted() {
    let err = Store::connect("mysql://root:hunter2@localhost/runbox")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(
        err.to_string()
            .contains("mysql://root:***@localhost/runbox"),
        "{err}"
    );
}

#[tokio::test]
async fn sqlite_without_a_path_is_rejected() {
    let err = Store::connect("sqlite://").await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidUrl { .. }), "{err:?}");
    assert!(
        err.to_string().contains("sqlite://path/to/file.db"),
        "{err}"
    );
}

#[tokio::test]
async fn sqlite_file_gets_parent_dirs_and_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/runbox.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    assert_eq!(store.backend().as_str(), "sqlite");
    assert!(path.is_file());
    store.ping().await.unwrap();

    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    raw.close().await;

    store.close().await;
    let err = store.ping().await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
}

#[tokio::test]
async fn sqlite_in_memory_works_across_queries() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    store.put_image("m", "image/png", b"x").await.unwrap();
    // The same data from a clone: one pool, one in-memory database.
    let clone = store.clone();
    assert_eq!(clone.get_image("m").await.unwrap().unwrap().data, b"x");
    store.close().await;
}

#[test]
fn redact_url_hides_only_the_password() {
    assert_eq!(
        redact_url("postgres://runbox:pw@db:5432/runbox?sslmode=disable"),
        "postgres://runbox:***@db:5432/runbox?sslmode=disable"
    );
    assert_eq!(
        redact_url("postgres://postgres@127.0.0.1:55432/runbox_test"),
        "postgres://postgres@127.0.0.1:55432/runbox_test"
    );
}
