use chrono::{Duration, Utc};
use serde_json::json;

use crate::harness::{unique, TestDb};
use runbox_store::{NewTask, TaskFilter, TaskStatus};

on_both_backends!(
    a_task_runs_and_finishes_once,
    a_cancel_wins_over_a_late_finish,
    tasks_are_filtered_and_newest_first,
    interrupted_tasks_fail_at_start_up,
    finished_tasks_are_deleted_after_retention,
);

pub(crate) fn task(function: &str, subject: &str) -> NewTask {
    NewTask {
        id: unique("task"),
        function_name: function.to_string(),
        function_version: 1,
        args: json!({"count": 3}),
        subject: subject.to_string(),
        isolation: "standard".to_string(),
    }
}

async fn a_task_runs_and_finishes_once(db: &TestDb) {
    let store = &db.store;
    let new = task("f", "alice");
    let inserted = store.insert_task(&new).await.unwrap();
    assert_eq!(inserted.status, TaskStatus::Queued);
    assert_eq!(store.task(&new.id).await.unwrap().unwrap(), inserted);
    assert_eq!(inserted.runner, "", "nobody's until claimed");
    let claimed = store.claim_task(&new.id, "r").await.unwrap().unwrap();
    assert!(store.claim_task(&new.id, "r2").await.unwrap().is_none());
    assert_eq!(claimed.status, TaskStatus::Running);
    assert_eq!(claimed.runner, "r");
    assert_eq!(claimed.isolation, "standard");
    assert!(store.mark_task_started(&new.id).await.unwrap());
    let running = store.task(&new.id).await.unwrap().unwrap();
    assert_eq!(running.status, TaskStatus::Running);
    assert!(running.started_at.unwrap() >= claimed.started_at.unwrap());
    let result = json!({"success": true, "value": 42.5});
    assert!(store
        .finish_task(&new.id, TaskStatus::Done, Some(&result), None)
        .await
        .unwrap());
    assert!(!store
        .finish_task(&new.id, TaskStatus::Failed, None, Some("late"))
        .await
        .unwrap());
    let done = store.task(&new.id).await.unwrap().unwrap();
    assert_eq!(done.status, TaskStatus::Done);
    assert_eq!(done.result, Some(result));
    assert_eq!(done.reason, None);
    assert!(done.finished_at.unwrap() >= done.started_at.unwrap());
    assert_eq!(done.args, json!({"count": 3}));
    assert!(store
        .finish_task(&new.id, TaskStatus::Running, None, None)
        .await
        .is_err());
    assert!(store.task(&unique("none")).await.unwrap().is_none());
}

async fn a_cancel_wins_over_a_late_finish(db: &TestDb) {
    let store = &db.store;
    let new = task("f", "alice");
    store.insert_task(&new).await.unwrap();
    assert!(store
        .finish_task(&new.id, TaskStatus::Cancelled, None, Some("cancelled"))
        .await
        .unwrap());
    assert!(store.claim_task(&new.id, "r").await.unwrap().is_none());
    assert!(!store.mark_task_started(&new.id).await.unwrap());
    assert!(!store
        .finish_task(&new.id, TaskStatus::Done, Some(&json!({})), None)
        .await
        .unwrap());
    let record = store.task(&new.id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Cancelled);
    assert_eq!(record.result, None);
}

async fn tasks_are_filtered_and_newest_first(db: &TestDb) {
    let store = &db.store;
    let f = unique("f");
    let g = unique("g");
    let first = task(&f, "alice");
    let second = task(&f, "bob");
    let third = task(&g, "alice");
    for new in [&first, &second, &third] {
        store.insert_task(new).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    store
        .finish_task(&second.id, TaskStatus::Done, None, None)
        .await
        .unwrap();
    let ids = |tasks: Vec<runbox_store::TaskRecord>| -> Vec<String> {
        tasks.into_iter().map(|t| t.id).collect()
    };
    let all = TaskFilter {
        limit: 100,
        ..TaskFilter::default()
    };
    let listed = ids(store.list_tasks(&all).await.unwrap());
    assert_eq!(
        listed,
        vec![third.id.clone(), second.id.clone(), first.id.clone()]
    );
    let by_function = TaskFilter {
        function_name: Some(f.clone()),
        ..all.clone()
    };
    assert_eq!(
        ids(store.list_tasks(&by_function).await.unwrap()),
        vec![second.id.clone(), first.id.clone()]
    );
    let done = TaskFilter {
        status: Some(TaskStatus::Done),
        ..all.clone()
    };
    assert_eq!(
        ids(store.list_tasks(&done).await.unwrap()),
        vec![second.id.clone()]
    );
    let alices = TaskFilter {
        subject: Some("alice".into()),
        ..all.clone()
    };
    assert_eq!(
        ids(store.list_tasks(&alices).await.unwrap()),
        vec![third.id.clone(), first.id.clone()]
    );
    let one = TaskFilter { limit: 1, ..all };
    assert_eq!(ids(store.list_tasks(&one).await.unwrap()), vec![third.id]);
    assert_eq!(TaskStatus::parse("running"), Some(TaskStatus::Running));
    assert_eq!(TaskStatus::parse("nope"), None);
}

async fn interrupted_tasks_fail_at_start_up(db: &TestDb) {
    let store = &db.store;
    let me = unique("runner");
    let queued = task("f", "a");
    let running = task("f", "a");
    let done = task("f", "a");
    let elsewhere = task("f", "a");
    for new in [&queued, &running, &done, &elsewhere] {
        store.insert_task(new).await.unwrap();
    }
    store.claim_task(&running.id, &me).await.unwrap().unwrap();
    store.claim_task(&done.id, &me).await.unwrap().unwrap();
    store
        .claim_task(&elsewhere.id, "another-runner")
        .await
        .unwrap()
        .unwrap();
    store
        .finish_task(&done.id, TaskStatus::Done, None, None)
        .await
        .unwrap();
    assert_eq!(store.fail_interrupted_tasks(&me).await.unwrap(), 1);
    let record = store.task(&running.id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Failed);
    assert_eq!(record.reason.as_deref(), Some("interrupted"));
    assert!(record.finished_at.is_some());
    assert_eq!(
        store.task(&done.id).await.unwrap().unwrap().status,
        TaskStatus::Done
    );
    assert_eq!(
        store.task(&queued.id).await.unwrap().unwrap().status,
        TaskStatus::Queued,
        "a queued task was nobody's: it stays in the queue"
    );
    assert_eq!(
        store.task(&elsewhere.id).await.unwrap().unwrap().status,
        TaskStatus::Running,
        "another server's task is not touched"
    );
}

async fn finished_tasks_are_deleted_after_retention(db: &TestDb) {
    let store = &db.store;
    let finished = task("f", "a");
    let running = task("f", "a");
    store.insert_task(&finished).await.unwrap();
    store.insert_task(&running).await.unwrap();
    store.claim_task(&running.id, "r").await.unwrap().unwrap();
    store
        .finish_task(&finished.id, TaskStatus::Done, None, None)
        .await
        .unwrap();
    let before = Utc::now() - Duration::hours(1);
    assert_eq!(store.delete_tasks_finished_before(before).await.unwrap(), 0);
    let after = Utc::now() + Duration::seconds(1);
    assert_eq!(store.delete_tasks_finished_before(after).await.unwrap(), 1);
    assert!(store.task(&finished.id).await.unwrap().is_none());
    assert!(
        store.task(&running.id).await.unwrap().is_some(),
        "unfinished tasks stay"
    );
}
