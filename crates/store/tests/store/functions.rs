use serde_json::json;

use crate::harness::{unique, TestDb};
use runbox_store::NewFunctionVersion;

on_both_backends!(
    a_function_is_created_once,
    put_adds_versions_and_keeps_old_ones,
    concurrent_puts_get_distinct_versions,
    listing_shows_latest_versions,
    deleting_removes_every_version,
    deletes_racing_writes_never_fail,
);

fn definition(name: &str, code: &str) -> NewFunctionVersion {
    NewFunctionVersion {
        name: name.to_string(),
        code: code.to_string(),
        description: "adds".into(),
        dependencies: vec!["tabulate==0.9.0".into()],
        args: json!([{"name": "x", "type": "int", "required": true}]),
        parameters: json!([{"name": "x", "kind": "positional_or_keyword", "has_default": false}]),
        max_concurrency: Some(2),
        timeout_ms: Some(1500),
        created_by: "tester".into(),
        isolation: "strong".into(),
    }
}

async fn a_function_is_created_once(db: &TestDb) {
    let store = &db.store;
    let name = unique("f");
    let created = store
        .create_function(&definition(&name, "def f(x): return x"))
        .await
        .unwrap()
        .expect("created");
    assert_eq!(created.version, 1);
    assert!(store
        .create_function(&definition(&name, "def f(x): return 2"))
        .await
        .unwrap()
        .is_none());
    let stored = store.function(&name, None).await.unwrap().expect("stored");
    assert_eq!(stored, created, "reads back exactly what was written");
    assert_eq!(
        stored.code, "def f(x): return x",
        "the duplicate changed nothing"
    );
    assert!(store
        .function(&unique("none"), None)
        .await
        .unwrap()
        .is_none());
}

async fn put_adds_versions_and_keeps_old_ones(db: &TestDb) {
    let store = &db.store;
    let name = unique("f");
    let (first, created) = store
        .put_function_version(&definition(&name, "v1"))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(first.version, 1);
    let (second, created) = store
        .put_function_version(&definition(&name, "v2"))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(second.version, 2);
    assert_eq!(
        store.function(&name, None).await.unwrap().unwrap().code,
        "v2"
    );
    assert_eq!(
        store.function(&name, Some(1)).await.unwrap().unwrap().code,
        "v1"
    );
    assert!(store.function(&name, Some(3)).await.unwrap().is_none());
    let versions = store.function_versions(&name).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

async fn concurrent_puts_get_distinct_versions(db: &TestDb) {
    let store = &db.store;
    let name = unique("f");
    store
        .create_function(&definition(&name, "v1"))
        .await
        .unwrap()
        .unwrap();
    let puts = (0..6).map(|i| {
        let store = store.clone();
        let new = definition(&name, &format!("code {i}"));
        async move { store.put_function_version(&new).await.unwrap().0.version }
    });
    let mut versions = futures::future::join_all(puts).await;
    versions.sort();
    assert_eq!(versions, vec![2, 3, 4, 5, 6, 7]);
    assert_eq!(
        store.function(&name, None).await.unwrap().unwrap().version,
        7
    );
}

async fn listing_shows_latest_versions(db: &TestDb) {
    let store = &db.store;
    let a = format!("a-{}", unique("f"));
    let b = format!("b-{}", unique("f"));
    store.create_function(&definition(&b, "b1")).await.unwrap();
    store.create_function(&definition(&a, "a1")).await.unwrap();
    store
        .put_function_version(&definition(&a, "a2"))
        .await
        .unwrap();
    let listed = store.list_functions().await.unwrap();
    let summary: Vec<(String, i64, String)> = listed
        .into_iter()
        .map(|f| (f.name, f.version, f.code))
        .collect();
    assert_eq!(
        summary,
        vec![(a, 2, "a2".to_string()), (b, 1, "b1".to_string())]
    );
}

async fn deleting_removes_every_version(db: &TestDb) {
    let store = &db.store;
    let name = unique("f");
    store
        .create_function(&definition(&name, "v1"))
        .await
        .unwrap();
    store
        .put_function_version(&definition(&name, "v2"))
        .await
        .unwrap();
    assert_eq!(store.delete_function(&name).await.unwrap(), 2);
    assert!(store.function(&name, None).await.unwrap().is_none());
    assert!(store.function_versions(&name).await.unwrap().is_empty());
    assert_eq!(store.delete_function(&name).await.unwrap(), 0);
    // The name is free again and starts over at version 1.
    let again = store
        .create_function(&definition(&name, "new"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.version, 1);
}

/// A delete that reads before it writes is refused at once by SQLite when another
/// writer got in between (the busy timeout does not apply to that upgrade): deletes
/// racing puts and creates all succeed.
async fn deletes_racing_writes_never_fail(db: &TestDb) {
    let store = &db.store;
    let names: Vec<String> = (0..4).map(|_| unique("race")).collect();
    let work = (0..48).map(|i| {
        let store = store.clone();
        let name = names[i % names.len()].clone();
        async move {
            match i % 3 {
                0 => store.delete_function(&name).await.map(|_| ()),
                1 => store
                    .put_function_version(&definition(&name, "put"))
                    .await
                    .map(|_| ()),
                _ => store
                    .create_function(&definition(&name, "create"))
                    .await
                    .map(|_| ()),
            }
        }
    });
    let failures: Vec<String> = futures::future::join_all(work)
        .await
        .into_iter()
        .filter_map(|result| result.err().map(|e| e.to_string()))
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
}
