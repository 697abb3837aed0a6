//! Async tasks across replicas: several servers on one PostgreSQL database work one
//! queue. Tasks submitted to one replica run on several; a cancel sent to a replica
//! that does not run the task stops it where it runs; a replica killed with SIGKILL is
//! taken over by another within 30 s (its running task FAILED `interrupted`, the queued
//! ones still run). Skipped, with the reason printed, on the suite's SQLite pass.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{remove_containers, Options, Server, SharedDatabase, TOKEN};
use crate::tasks::{register_sleeper, start_task, task, wait_status};

/// Fast enough that a test sees a kill within seconds.
const QUICK_CLUSTER: &str = "cluster:\n  heartbeat: 1s\n  dead_after: 4s\n";

async fn replica(db: &SharedDatabase, max_concurrent_runs: usize, cluster_yaml: &str) -> Server {
    Server::start_with(Options {
        shared_database: Some(db.url.clone()),
        max_concurrent_runs,
        extra_yaml: cluster_yaml.to_string(),
        timeout: "90s",
        ..Options::default()
    })
    .await
}

async fn submit(server: &Server, seconds: u64) -> String {
    start_task(server, json!({ "seconds": seconds })).await
}

async fn result(server: &Server, id: &str) -> Value {
    let (status, body) = server
        .get(&format!("/tasks/{id}/result?wait=60"), Some(TOKEN))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_spread_over_replicas_and_a_cancel_reaches_the_runner() {
    let Some(db) = SharedDatabase::create("cluster_tasks").await else {
        return;
    };
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica(&db, 2, QUICK_CLUSTER).await);
    }
    register_sleeper(&replicas[0], json!({"timeout": 90})).await;

    // Six tasks at the first replica, which runs two at once: the others claim the rest.
    let started = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(submit(&replicas[0], 4).await);
    }
    let mut ran_here = [false; 3];
    let deadline = Instant::now() + Duration::from_secs(30);
    while ran_here.contains(&false) && Instant::now() < deadline {
        for (n, server) in replicas.iter().enumerate() {
            ran_here[n] |= !server.containers().is_empty();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ran_here, [true; 3], "every replica ran some of the tasks");
    for id in &ids {
        let body = result(&replicas[1], id).await;
        assert_eq!(body["success"], true, "{body}");
        assert_eq!(body["value"], 4);
        assert_eq!(body["task_id"], id.as_str());
    }
    let took = started.elapsed();
    eprintln!("6 tasks of 4 s over 3 replicas of 2 slots: all done in {took:?}");
    assert!(
        took < Duration::from_secs(20),
        "one replica alone would need 12 s and more; took {took:?}"
    );

    // A cancel sent to a replica that does not run the task.
    let long = submit(&replicas[1], 60).await;
    wait_status(&replicas[1], &long, "RUNNING", Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while replicas[1].containers().is_empty() {
        assert!(Instant::now() < deadline, "no sandbox for the long task");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let asked = Instant::now();
    let (status, body) = replicas[2]
        .delete(&format!("/tasks/{long}"), Some(TOKEN))
        .await;
    let answered = asked.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "CANCELLED", "{body}");
    eprintln!("a cancel through another replica answered in {answered:?}");
    let left = replicas[1]
        .wait_containers_at_most(0, Duration::from_secs(10))
        .await;
    assert!(
        left.is_empty(),
        "the runner's sandbox is still there: {left:?}"
    );
    let cancelled = result(&replicas[0], &long).await;
    assert_eq!(cancelled["success"], false, "{cancelled}");
    assert_eq!(cancelled["error"]["kind"], "killed", "{cancelled}");
    let (status, body) = replicas[0]
        .delete(&format!("/tasks/{long}"), Some(TOKEN))
        .await;
    assert_eq!(status, 409, "{body}");

    for server in replicas {
        server.stop().await;
    }
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_replica_is_taken_over_within_30_s() {
    let Some(db) = SharedDatabase::create("cluster_tasks").await else {
        return;
    };
    // The default heartbeat and dead_after: what a user gets.
    let mut doomed = replica(&db, 1, "").await;
    let survivor = replica(&db, 1, "").await;
    register_sleeper(&doomed, json!({"timeout": 90})).await;

    // The survivor is busy for a while; the doomed replica runs a long task; two more
    // wait in the queue, since neither has room.
    let busy = submit(&survivor, 20).await;
    let long = submit(&doomed, 120).await;
    wait_status(&doomed, &long, "RUNNING", Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while doomed.containers().is_empty() {
        assert!(Instant::now() < deadline, "no sandbox for the long task");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let queued = [submit(&doomed, 1).await, submit(&doomed, 1).await];
    for id in &queued {
        assert_eq!(task(&survivor, id).await["status"], "QUEUED");
    }
    // A queued task is nobody's: any replica cancels it at once.
    let unwanted = submit(&doomed, 1).await;
    let (status, body) = survivor
        .delete(&format!("/tasks/{unwanted}"), Some(TOKEN))
        .await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("CANCELLED")),
        "{body}"
    );

    doomed.kill9();
    let killed = Instant::now();

    let failed = wait_status(&survivor, &long, "FAILED", Duration::from_secs(30)).await;
    let taken_over = killed.elapsed();
    eprintln!("a SIGKILLed replica's running task was FAILED after {taken_over:?}");
    assert_eq!(failed["reason"], "interrupted", "{failed}");
    let body = result(&survivor, &long).await;
    assert_eq!(body["success"], false, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("interrupted")),
        "{body}"
    );
    assert_eq!(result(&survivor, &busy).await["value"], 20);
    for id in &queued {
        let body = result(&survivor, id).await;
        assert_eq!(body["success"], true, "a queued task still runs: {body}");
    }
    let health = survivor.health().await;
    let replicas = health["cluster"]["replicas"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        replicas.len(),
        1,
        "the dead replica left the registry: {health}"
    );

    // What the killed replica left on the engine goes, by id.
    remove_containers(&doomed.containers());
    assert!(doomed.containers().is_empty());
    doomed.stop().await;
    survivor.stop().await;
    db.remove().await;
}
