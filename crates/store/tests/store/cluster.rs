//! What replicas share: settings made once for all of them, and their registry.

use chrono::{Duration, Utc};
use runbox_store::{ReplicaRecord, SessionRecord};

use crate::harness::{unique, TestDb};

on_both_backends!(
    a_shared_setting_is_made_once_and_kept,
    replicas_register_heartbeat_and_leave,
    leases_hold_a_limit_across_replicas_and_lapse_with_their_holder,
    sessions_are_found_by_id_and_forgotten_when_their_owner_is_gone,
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

async fn leases_hold_a_limit_across_replicas_and_lapse_with_their_holder(db: &TestDb) {
    let store = &db.store;
    let (a, b) = (unique("a"), unique("b"));
    store.heartbeat(&replica(&a, 0)).await.unwrap();
    store.heartbeat(&replica(&b, 0)).await.unwrap();
    let name = unique("function:f");
    let alive_since = Utc::now() - Duration::seconds(30);
    assert!(store
        .acquire_lease("l1", &name, &a, 2, alive_since)
        .await
        .unwrap());
    assert!(store
        .acquire_lease("l2", &name, &b, 2, alive_since)
        .await
        .unwrap());
    assert!(
        !store
            .acquire_lease("l3", &name, &b, 2, alive_since)
            .await
            .unwrap(),
        "the third of a limit of two is refused, whoever holds the others"
    );
    assert!(
        store
            .acquire_lease("l4", &unique("other"), &b, 2, alive_since)
            .await
            .unwrap(),
        "per name"
    );
    store.release_lease("l2").await.unwrap();
    assert!(store
        .acquire_lease("l3", &name, &b, 2, alive_since)
        .await
        .unwrap());
    // a's heartbeat is older than the cutoff: its lease no longer counts for b.
    let later = Utc::now() + Duration::seconds(1);
    assert!(store
        .acquire_lease("l5", &name, &b, 2, later)
        .await
        .unwrap());
    assert!(
        !store
            .acquire_lease("l6", &name, &b, 2, later)
            .await
            .unwrap(),
        "a holder's own leases always count"
    );
    assert!(store.forget_lapsed_leases(later).await.unwrap() >= 1);
    store.release_leases_of(&b).await.unwrap();
    assert!(store
        .acquire_lease("l7", &name, &a, 1, alive_since)
        .await
        .unwrap());
}

async fn sessions_are_found_by_id_and_forgotten_when_their_owner_is_gone(db: &TestDb) {
    let store = &db.store;
    let (a, b) = (unique("a"), unique("b"));
    store.heartbeat(&replica(&a, 0)).await.unwrap();
    let at = Utc::now() - Duration::seconds(60);
    let subject = unique("alice");
    let record = |id: &str, owner: &str| SessionRecord {
        id: id.to_string(),
        owner: owner.to_string(),
        subject: subject.clone(),
        created_at: at,
        last_used_at: at,
    };
    let (on_a, on_b) = (unique("s"), unique("s"));
    store.record_session(&record(&on_a, &a)).await.unwrap();
    store.record_session(&record(&on_b, &b)).await.unwrap();
    let found = store
        .session_record(&on_b)
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(found.owner, b);
    assert_eq!(store.session_ids_of(&a).await.unwrap(), vec![on_a.clone()]);
    let mut owners = store.session_owners_for(&subject).await.unwrap();
    owners.sort();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(owners, both, "where the subject's sessions live");
    assert!(store.session_owners_for("nobody").await.unwrap().is_empty());
    let alive_since = Utc::now() - Duration::seconds(30);
    store
        .forget_sessions_of_dead_owners(alive_since, Utc::now() - Duration::seconds(120))
        .await
        .unwrap();
    assert!(
        store.session_record(&on_b).await.unwrap().is_some(),
        "used recently enough: still answered as gone, not unknown"
    );
    store
        .forget_sessions_of_dead_owners(alive_since, Utc::now())
        .await
        .unwrap();
    assert!(store.session_record(&on_b).await.unwrap().is_none());
    assert!(
        store.session_record(&on_a).await.unwrap().is_some(),
        "a live owner's sessions stay"
    );
    store.touch_session(&on_a).await.unwrap();
    store.forget_session(&on_a).await.unwrap();
    assert!(store.session_record(&on_a).await.unwrap().is_none());
}
