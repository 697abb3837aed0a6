use runbox_store::EnvironmentStatus;

use crate::harness::{unique, TestDb};

on_both_backends!(
    a_build_goes_from_building_to_ready_or_failed,
    interrupted_builds_fail
);

async fn a_build_goes_from_building_to_ready_or_failed(db: &TestDb) {
    let store = &db.store;
    let hash = unique("h");
    let deps = vec!["tabulate==0.9.0".to_string()];
    assert!(store.environment(&hash).await.unwrap().is_none());
    store
        .environment_building(&hash, "runbox-env:x", &deps, "a")
        .await
        .unwrap();
    let building = store.environment(&hash).await.unwrap().unwrap();
    assert_eq!(building.status, EnvironmentStatus::Building);
    assert_eq!(building.dependencies, deps);
    assert_eq!(building.image, "runbox-env:x");
    store
        .environment_finished(
            &hash,
            EnvironmentStatus::Failed,
            "runbox-env:x",
            "ERROR: no such version",
            1200,
        )
        .await
        .unwrap();
    let failed = store.environment(&hash).await.unwrap().unwrap();
    assert_eq!(failed.status, EnvironmentStatus::Failed);
    assert_eq!(failed.log, "ERROR: no such version");
    assert_eq!(failed.build_ms, Some(1200));
    // A retry clears the old log.
    store
        .environment_building(&hash, "runbox-env:x", &deps, "b")
        .await
        .unwrap();
    let retry = store.environment(&hash).await.unwrap().unwrap();
    assert_eq!(retry.status, EnvironmentStatus::Building);
    assert_eq!(retry.log, "");
    assert_eq!(retry.builder, "b");
    store
        .environment_finished(
            &hash,
            EnvironmentStatus::Ready,
            "runbox-sandbox:1",
            "Requirement already satisfied",
            800,
        )
        .await
        .unwrap();
    let ready = store.environment(&hash).await.unwrap().unwrap();
    assert_eq!(ready.status, EnvironmentStatus::Ready);
    assert_eq!(
        ready.image, "runbox-sandbox:1",
        "nothing to install: the sandbox image"
    );
    assert!(store
        .environment_finished(&hash, EnvironmentStatus::Building, "i", "", 0)
        .await
        .is_err());
    assert!(store
        .list_environments()
        .await
        .unwrap()
        .iter()
        .any(|e| e.hash == hash));
    assert!(store.delete_environment(&hash).await.unwrap());
    assert!(store.environment(&hash).await.unwrap().is_none());
}

async fn interrupted_builds_fail(db: &TestDb) {
    let store = &db.store;
    let mine = unique("h");
    let theirs = unique("h");
    let me = unique("instance");
    store
        .environment_building(&mine, "i", &[], &me)
        .await
        .unwrap();
    store
        .environment_building(&theirs, "i", &[], "another")
        .await
        .unwrap();
    assert_eq!(store.fail_interrupted_builds(&me).await.unwrap(), 1);
    let failed = store.environment(&mine).await.unwrap().unwrap();
    assert_eq!(failed.status, EnvironmentStatus::Failed);
    assert!(failed.log.contains("interrupted"));
    assert_eq!(
        store.environment(&theirs).await.unwrap().unwrap().status,
        EnvironmentStatus::Building
    );
}
