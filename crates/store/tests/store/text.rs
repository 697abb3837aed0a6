//! NUL characters: PostgreSQL text cannot hold them, SQLite's can. Both backends must
//! answer alike, and no request may turn a lookup into a database error: a key with a
//! NUL names nothing, a value with one is invalid input.

use chrono::{Duration, Utc};
use serde_json::json;

use crate::harness::{unique, TestDb};
use runbox_store::{NewFunctionVersion, NewTask, StoreError, TaskFilter, TaskStatus};

on_both_backends!(keys_with_nul_name_nothing, values_with_nul_are_refused);

const NUL_KEY: &str = "a\0b";

async fn keys_with_nul_name_nothing(db: &TestDb) {
    let store = &db.store;
    assert!(store.task(NUL_KEY).await.unwrap().is_none());
    assert!(!store.mark_task_started(NUL_KEY).await.unwrap());
    assert!(store.claim_task(NUL_KEY, "r").await.unwrap().is_none());
    assert!(!store.request_task_cancel(NUL_KEY).await.unwrap());
    assert!(!store
        .finish_task(NUL_KEY, TaskStatus::Done, None, None)
        .await
        .unwrap());
    for filter in [
        TaskFilter {
            function_name: Some(NUL_KEY.into()),
            status: None,
            subject: None,
            limit: 10,
        },
        TaskFilter {
            function_name: None,
            status: Some(TaskStatus::Done),
            subject: Some(NUL_KEY.into()),
            limit: 10,
        },
    ] {
        assert!(store.list_tasks(&filter).await.unwrap().is_empty());
    }
    assert!(store.function(NUL_KEY, None).await.unwrap().is_none());
    assert!(store.function(NUL_KEY, Some(1)).await.unwrap().is_none());
    assert!(store.function_versions(NUL_KEY).await.unwrap().is_empty());
    assert_eq!(store.delete_function(NUL_KEY).await.unwrap(), 0);
    assert!(!store.is_token_revoked(NUL_KEY).await.unwrap());
}

async fn values_with_nul_are_refused(db: &TestDb) {
    let store = &db.store;
    let function = |description: &str| NewFunctionVersion {
        name: unique("f"),
        code: "def f(): pass".into(),
        description: description.into(),
        dependencies: Vec::new(),
        args: json!([{"name": "x\0", "type": "any", "required": false, "description": "\0"}]),
        parameters: json!([]),
        max_concurrency: None,
        timeout_ms: None,
        created_by: "tester".into(),
        isolation: "standard".into(),
    };
    assert!(matches!(
        store.create_function(&function("no\0pe")).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        store.put_function_version(&function("no\0pe")).await,
        Err(StoreError::InvalidInput(_))
    ));
    // NULs inside JSON are escaped, so stored and read back as they were.
    let stored = store
        .create_function(&function("fine"))
        .await
        .unwrap()
        .unwrap();
    let read = store.function(&stored.name, None).await.unwrap().unwrap();
    assert_eq!(read.args[0]["name"], "x\0");

    let task = NewTask {
        id: unique("task"),
        function_name: stored.name.clone(),
        function_version: 1,
        args: json!({"text": "a\0b"}),
        subject: "sub\0ject".into(),
        isolation: String::new(),
    };
    assert!(matches!(
        store.insert_task(&task).await,
        Err(StoreError::InvalidInput(_))
    ));
    let task = NewTask {
        subject: "subject".into(),
        ..task
    };
    store.insert_task(&task).await.unwrap();
    assert_eq!(
        store.task(&task.id).await.unwrap().unwrap().args["text"],
        "a\0b"
    );
    // A task always ends, even with a reason that quotes a NUL.
    assert!(store
        .finish_task(&task.id, TaskStatus::Failed, None, Some("error: \0"))
        .await
        .unwrap());
    let ended = store.task(&task.id).await.unwrap().unwrap();
    assert_eq!(ended.status, TaskStatus::Failed);
    assert!(ended.reason.unwrap().starts_with("error: "));

    assert!(matches!(
        store
            .revoke_token("j\0ti", Utc::now() + Duration::hours(1))
            .await,
        Err(StoreError::InvalidInput(_))
    ));
}
