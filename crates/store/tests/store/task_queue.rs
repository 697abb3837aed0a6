//! The task queue: claims, cancel requests, signals, and the takeover of a dead replica.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use runbox_store::{Backend, ReplicaRecord, TaskSignal, TaskStatus};
use serde_json::json;

use crate::harness::{unique, TestDb};
use crate::tasks::task;

on_both_backends!(
    concurrent_claimers_never_take_the_same_task,
    claims_go_oldest_first_and_skip_cancel_requests,
    a_claim_skips_full_functions_and_a_task_given_back_keeps_its_place,
    a_dead_replica_is_taken_over_exactly_once,
    signals_reach_every_listener,
);

const TASKS: usize = 60;
const CLAIMERS: usize = 8;

async fn concurrent_claimers_never_take_the_same_task(db: &TestDb) {
    let store = &db.store;
    for _ in 0..TASKS {
        store.insert_task(&task("f", "a")).await.unwrap();
    }
    let claimers = (0..CLAIMERS).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let runner = format!("claimer-{n}");
            let mut claimed = Vec::new();
            while let Some(task) = store.claim_next_task(&runner).await.unwrap() {
                assert_eq!(task.runner, runner);
                assert_eq!(task.status, TaskStatus::Running);
                claimed.push(task.id);
            }
            claimed
        })
    });
    let per_claimer: Vec<Vec<String>> = futures::future::join_all(claimers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let all: Vec<&String> = per_claimer.iter().flatten().collect();
    let distinct: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len(), TASKS, "every task claimed once: {per_claimer:?}");
    assert_eq!(distinct.len(), TASKS, "no task claimed twice");
    let busy = per_claimer.iter().filter(|c| !c.is_empty()).count();
    eprintln!("{TASKS} tasks over {CLAIMERS} claimers, {busy} of them claimed some");
    assert!(store.claim_next_task("late").await.unwrap().is_none());
}

async fn claims_go_oldest_first_and_skip_cancel_requests(db: &TestDb) {
    let store = &db.store;
    let (a, b, c) = (task("f", "s"), task("f", "s"), task("f", "s"));
    for new in [&a, &b, &c] {
        store.insert_task(new).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(store.request_task_cancel(&a.id).await.unwrap());
    let first = store.claim_next_task("r").await.unwrap().unwrap();
    assert_eq!(
        first.id, b.id,
        "the oldest claimable one; a waits for its cancel"
    );
    assert!(store.claim_task(&a.id, "r").await.unwrap().is_none());
    let cancelled = json!({"success": false});
    assert!(store.cancel_queued_task(&a.id, &cancelled).await.unwrap());
    let record = store.task(&a.id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Cancelled);
    assert_eq!(record.reason.as_deref(), Some("cancelled"));
    assert_eq!(record.result, Some(cancelled.clone()));
    assert!(!store.request_task_cancel(&a.id).await.unwrap(), "ended");

    assert!(
        !store.cancel_queued_task(&b.id, &cancelled).await.unwrap(),
        "a claimed task is its runner's to stop"
    );
    assert!(store.cancel_requests_for("r").await.unwrap().is_empty());
    assert!(store.request_task_cancel(&b.id).await.unwrap());
    assert_eq!(
        store.cancel_requests_for("r").await.unwrap(),
        vec![b.id.clone()]
    );
    assert!(store.cancel_requests_for("other").await.unwrap().is_empty());
    assert!(store
        .finish_task(&b.id, TaskStatus::Cancelled, None, Some("cancelled"))
        .await
        .unwrap());
    assert!(store.cancel_requests_for("r").await.unwrap().is_empty());

    assert_eq!(store.claim_next_task("r").await.unwrap().unwrap().id, c.id);
    assert!(store.claim_next_task("r").await.unwrap().is_none());
}

async fn a_claim_skips_full_functions_and_a_task_given_back_keeps_its_place(db: &TestDb) {
    let store = &db.store;
    let (f1, g, f2) = (task("f", "s"), task("g", "s"), task("f", "s"));
    for new in [&f1, &g, &f2] {
        store.insert_task(new).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let full = vec!["f".to_string(), "h".to_string()];
    let first = store
        .claim_next_task_except("r", &full)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.id, g.id, "f is full: its tasks stay queued");
    assert!(store
        .claim_next_task_except("r", &full)
        .await
        .unwrap()
        .is_none());

    let claimed = store.claim_next_task("r").await.unwrap().unwrap();
    assert_eq!(claimed.id, f1.id);
    assert!(
        !store.unclaim_task(&f1.id, "other").await.unwrap(),
        "not its to give"
    );
    assert!(store.unclaim_task(&f1.id, "r").await.unwrap());
    let record = store.task(&f1.id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Queued);
    assert_eq!(record.runner, "");
    assert!(record.started_at.is_none());
    assert_eq!(
        store.claim_next_task("r").await.unwrap().unwrap().id,
        f1.id,
        "given back, it is still the oldest"
    );
    assert!(store.request_task_cancel(&f1.id).await.unwrap());
    assert!(
        !store.unclaim_task(&f1.id, "r").await.unwrap(),
        "asked to cancel: its runner ends it instead"
    );
}

fn replica(id: &str) -> ReplicaRecord {
    ReplicaRecord {
        id: id.to_string(),
        address: format!("http://{id}:8000"),
        instance: format!("instance-{id}"),
        capacity: 4,
        running: 2,
        available: true,
        started_at: Utc::now(),
        heartbeat_at: Utc::now(),
    }
}

async fn a_dead_replica_is_taken_over_exactly_once(db: &TestDb) {
    let store = &db.store;
    let dead = unique("dead");
    store.heartbeat(&replica(&dead)).await.unwrap();
    let (one, two, queued) = (task("f", "s"), task("f", "s"), task("f", "s"));
    for new in [&one, &two, &queued] {
        store.insert_task(new).await.unwrap();
    }
    store.claim_task(&one.id, &dead).await.unwrap().unwrap();
    store.claim_task(&two.id, &dead).await.unwrap().unwrap();

    let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(
        store
            .take_over_replica(&dead, Some(an_hour_ago))
            .await
            .unwrap(),
        None,
        "it beat within the hour: alive"
    );
    // Its heartbeat is older than a cutoff in the future: several peers see it dead at
    // once, and exactly one takes it over.
    let silent_since = Some(Utc::now() + chrono::Duration::minutes(1));
    let peers = (0..4).map(|_| {
        let store = store.clone();
        let dead = dead.clone();
        tokio::spawn(async move { store.take_over_replica(&dead, silent_since).await.unwrap() })
    });
    let outcomes: Vec<Option<u64>> = futures::future::join_all(peers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let takers: Vec<&Option<u64>> = outcomes.iter().filter(|o| o.is_some()).collect();
    assert_eq!(takers, vec![&Some(2)], "{outcomes:?}");
    for id in [&one.id, &two.id] {
        let record = store.task(id).await.unwrap().unwrap();
        assert_eq!(record.status, TaskStatus::Failed);
        assert_eq!(record.reason.as_deref(), Some("interrupted"));
    }
    assert_eq!(
        store.task(&queued.id).await.unwrap().unwrap().status,
        TaskStatus::Queued,
        "queued tasks were never its own"
    );
    assert!(!store.replicas().await.unwrap().iter().any(|r| r.id == dead));

    // A runner the registry does not know (it died before it registered).
    let alive = unique("alive");
    store.heartbeat(&replica(&alive)).await.unwrap();
    let (orphan, kept) = (task("f", "s"), task("f", "s"));
    store.insert_task(&orphan).await.unwrap();
    store.insert_task(&kept).await.unwrap();
    store
        .claim_task(&orphan.id, "ghost")
        .await
        .unwrap()
        .unwrap();
    store.claim_task(&kept.id, &alive).await.unwrap().unwrap();
    assert_eq!(store.fail_orphaned_tasks().await.unwrap(), 1);
    assert_eq!(
        store.task(&orphan.id).await.unwrap().unwrap().status,
        TaskStatus::Failed
    );
    assert_eq!(
        store.task(&kept.id).await.unwrap().unwrap().status,
        TaskStatus::Running
    );
    assert_eq!(
        store.take_over_replica(&alive, None).await.unwrap(),
        Some(1),
        "None: taken over whatever its heartbeat"
    );
}

async fn signals_reach_every_listener(db: &TestDb) {
    let store = &db.store;
    let signals = store.task_signals().await.unwrap();
    let listeners = (
        signals.listen().await.unwrap(),
        signals.listen().await.unwrap(),
    );
    let (Some(mut first), Some(mut second)) = listeners else {
        assert_eq!(store.backend(), Backend::Sqlite, "PostgreSQL listens");
        assert!(!signals.is_shared());
        signals.send(&TaskSignal::Queued).await.unwrap();
        return;
    };
    assert!(signals.is_shared());
    let cancel = TaskSignal::Cancel(unique("task"));
    signals.send(&TaskSignal::Queued).await.unwrap();
    signals.send(&cancel).await.unwrap();
    for listener in [&mut first, &mut second] {
        for expected in [TaskSignal::Queued, cancel.clone()] {
            let heard = tokio::time::timeout(Duration::from_secs(10), listener.next())
                .await
                .expect("a signal within 10 s")
                .unwrap();
            assert_eq!(heard, Some(expected));
        }
    }
}
