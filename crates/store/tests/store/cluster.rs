//! What replicas share: settings made once for all of them, and their registry.

use chrono::Utc;
use runbox_store::ReplicaRecord;

use crate::harness::{unique, TestDb};

on_both_backends!(
    a_shared_setting_is_made_once_and_kept,
    replicas_register_heartbeat_and_leave,
);

async fn a_shared_setting_is_made_once_and_kept(db: &TestDb) {
    let store = &db.store;
    let name = unique("setting");
    let first = store
        .shared_setting(&name, || "made by the first".into())
        .await
        .unwrap();
    let second = store
        .shared_setting(&name, || "made by the second".into())
        .await
        .unwrap();
    assert_eq!(first, "made by the first");
    assert_eq!(second, first, "every replica gets the first one's value");
}

fn replica(id: &str, running: i64) -> ReplicaRecord {
    ReplicaRecord {
        id: id.to_string(),
        address: format!("http://{id}:8000"),
        instance: format!("instance-{id}"),
        capacity: 8,
        running,
        available: true,
        started_at: Utc::now(),
        heartbeat_at: Utc::now(),
    }
}

async fn replicas_register_heartbeat_and_leave(db: &TestDb) {
    let store = &db.store;
    let (a, b) = (unique("a"), unique("b"));
    store.heartbeat(&replica(&a, 1)).await.unwrap();
    store.heartbeat(&replica(&b, 0)).await.unwrap();
    store.heartbeat(&replica(&a, 5)).await.unwrap();
    let listed = store.replicas().await.unwrap();
    let found = listed.iter().find(|r| r.id == a).expect("a is registered");
    assert_eq!(found.running, 5, "a heartbeat refreshes the load");
    assert!(listed.iter().any(|r| r.id == b));
    store.remove_replica(&a).await.unwrap();
    assert!(!store.replicas().await.unwrap().iter().any(|r| r.id == a));
    store.forget_replicas_except(&b).await.unwrap();
    let left: Vec<String> = store
        .replicas()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, vec![b]);
}
