//! Async calls and tasks: per-function concurrency limits, timeouts, cancellation,
//! long-polls, ownership, and what a killed server leaves behind.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{Options, Server, OTHER_TOKEN, TOKEN};

const SLEEPER: &str =
    "import time\n\ndef sleeper(seconds=2):\n    time.sleep(seconds)\n    return seconds\n";

pub(crate) async fn register_sleeper(server: &Server, extra: Value) {
    let mut definition = json!({"name": "sleeper", "code": SLEEPER});
    if let (Some(target), Some(fields)) = (definition.as_object_mut(), extra.as_object()) {
        target.extend(fields.clone());
    }
    let (status, body) = server.post("/functions", Some(TOKEN), &definition).await;
    assert_eq!(status, 201, "{body}");
}

pub(crate) async fn start_task(server: &Server, args: Value) -> String {
    let (status, body) = server
        .post(
            "/functions/sleeper/call",
            Some(TOKEN),
            &json!({"args": args, "async": true}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "");
    body["task_id"].as_str().expect("task id").to_string()
}

pub(crate) async fn task(server: &Server, id: &str) -> Value {
    let (status, body) = server.get(&format!("/tasks/{id}"), Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls until the task has `status`, for at most `within`.
pub(crate) async fn wait_status(
    server: &Server,
    id: &str,
    status: &str,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let body = task(server, id).await;
        if body["status"] == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} did not become {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn seconds_between(task: &Value, from: &str, to: &str) -> f64 {
    let parse = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(task[field].as_str().expect(field)).expect(field)
    };
    (parse(to) - parse(from)).num_milliseconds() as f64 / 1000.0
}

#[tokio::test(flavor = "multi_thread")]
async fn max_concurrency_counts_running_calls() {
    let server = Server::start().await;
    register_sleeper(&server, json!({"max_concurrency": 2})).await;
    let body = json!({"args": {"seconds": 2}, "async": true});
    let calls = (0..3).map(|_| server.post("/functions/sleeper/call", Some(TOKEN), &body));
    let answers = futures::future::join_all(calls).await;
    let accepted: Vec<String> = answers
        .iter()
        .filter(|(status, _)| *status == 202)
        .map(|(_, body)| body["task_id"].as_str().expect("task id").to_string())
        .collect();
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 429)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(accepted.len(), 2, "{answers:?}");
    assert_eq!(
        refused,
        vec![&json!({"success": false, "message": "Over Max Concurrency 2", "task_id": ""})]
    );
    // Sync calls count too.
    let (status, body) = server
        .post("/functions/sleeper/call", Some(TOKEN), &json!({}))
        .await;
    assert_eq!(status, 429, "{body}");
    let (_, definition) = server.get("/functions/sleeper", Some(TOKEN)).await;
    assert_eq!(definition["running"], 2);

    for id in &accepted {
        let (status, result) = server
            .get(&format!("/tasks/{id}/result?wait=30"), Some(TOKEN))
            .await;
        assert_eq!(status, 200, "{result}");
        assert_eq!(result["success"], true);
        assert_eq!(result["value"], 2);
        assert_eq!(result["task_id"], id.as_str());
        let record = task(&server, id).await;
        assert_eq!(record["status"], "DONE");
        assert_eq!(record["function_name"], "sleeper");
        assert_eq!(record["args"], json!({"seconds": 2}));
        assert!(seconds_between(&record, "started_at", "finished_at") >= 2.0);
    }
    // The slots are free again.
    let (status, result) = server
        .post(
            "/functions/sleeper/call",
            Some(TOKEN),
            &json!({"args": {"seconds": 0}}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["value"], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_over_its_timeout_ends_timeout_and_its_container_goes() {
    let server = Server::start().await;
    register_sleeper(&server, json!({"timeout": 1})).await;
    let id = start_task(&server, json!({"seconds": 5})).await;
    let started = Instant::now();
    let (status, result) = server
        .get(&format!("/tasks/{id}/result?wait=20"), Some(TOKEN))
        .await;
    let waited = started.elapsed();
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["error"]["kind"], "timeout", "{result}");
    let record = task(&server, &id).await;
    assert_eq!(record["status"], "TIMEOUT");
    assert_eq!(record["reason"], "timeout");
    let ran_for = seconds_between(&record, "started_at", "finished_at");
    eprintln!(
        "timeout 1 s: task ran {ran_for:.2} s, answered after {:.2} s",
        waited.as_secs_f64()
    );
    // RUNNING starts when the sandbox is there, so this is the timeout plus the kill.
    assert!(ran_for < 2.0, "TIMEOUT after {ran_for} s");
    assert!(waited < Duration::from_secs(6), "{waited:?}");
    let left = server.containers();
    assert!(
        left.is_empty(),
        "the timed-out sandbox is still there: {left:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_running_task_cancels_it_and_removes_its_container() {
    let server = Server::start().await;
    register_sleeper(&server, json!({})).await;
    let id = start_task(&server, json!({"seconds": 60})).await;
    wait_status(&server, &id, "RUNNING", Duration::from_secs(20)).await;
    // RUNNING is recorded before the sandbox starts; wait for its container.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.containers().is_empty() {
        assert!(Instant::now() < deadline, "the task never got a container");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let (status, body) = server.delete(&format!("/tasks/{id}"), Some(TOKEN)).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "CANCELLED");
    assert_eq!(body["reason"], "cancelled");
    let left = server
        .wait_containers_at_most(0, Duration::from_secs(1))
        .await;
    eprintln!(
        "DELETE /tasks/{{id}} answered after {:.2} s",
        took.as_secs_f64()
    );
    assert!(left.is_empty(), "container still there: {left:?}");
    assert!(took < Duration::from_secs(1), "cancel took {took:?}");

    let (status, result) = server
        .get(&format!("/tasks/{id}/result"), Some(TOKEN))
        .await;
    assert_eq!(status, 200);
    assert_eq!(result["success"], false);
    assert_eq!(result["error"]["kind"], "killed");
    let (status, body) = server.delete(&format!("/tasks/{id}"), Some(TOKEN)).await;
    assert_eq!(status, 409, "{body}");
    // The late end of the run does not overwrite the cancellation.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(task(&server, &id).await["status"], "CANCELLED");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_of_a_killed_server_reads_failed_interrupted_after_restart() {
    let mut server = Server::start().await;
    register_sleeper(&server, json!({})).await;
    let id = start_task(&server, json!({"seconds": 60})).await;
    wait_status(&server, &id, "RUNNING", Duration::from_secs(20)).await;
    server.kill9();
    server.spawn();
    let record = task(&server, &id).await;
    assert_eq!(record["status"], "FAILED", "{record}");
    assert_eq!(record["reason"], "interrupted");
    assert!(record["finished_at"].is_string());
    let (status, result) = server
        .get(&format!("/tasks/{id}/result"), Some(TOKEN))
        .await;
    assert_eq!(status, 200);
    assert_eq!(result["success"], false);
    assert_eq!(result["task_id"], id.as_str());
    assert!(result["error"]["message"]
        .as_str()
        .expect("message")
        .starts_with("interrupted"));
    // The restarted server runs tasks again, and the leftover container was swept.
    let again = start_task(&server, json!({"seconds": 0})).await;
    let (status, result) = server
        .get(&format!("/tasks/{again}/result?wait=30"), Some(TOKEN))
        .await;
    assert_eq!(status, 200);
    assert_eq!(result["value"], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn long_polls_lists_and_ownership() {
    let server = Server::start().await;
    register_sleeper(&server, json!({})).await;
    let id = start_task(&server, json!({"seconds": 1})).await;
    let (status, pending) = server
        .get(&format!("/tasks/{id}/result?wait=0"), Some(TOKEN))
        .await;
    assert_eq!(status, 202, "{pending}");
    assert!(pending["status"] == "QUEUED" || pending["status"] == "RUNNING");
    let started = Instant::now();
    let (status, result) = server
        .get(&format!("/tasks/{id}/result?wait=30"), Some(TOKEN))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["value"], 1);
    assert!(started.elapsed() < Duration::from_secs(10));

    // Another subject sees none of it.
    let (status, _) = server.get(&format!("/tasks/{id}"), Some(OTHER_TOKEN)).await;
    assert_eq!(status, 404);
    let (status, _) = server
        .delete(&format!("/tasks/{id}"), Some(OTHER_TOKEN))
        .await;
    assert_eq!(status, 404);
    let (_, theirs) = server.get("/tasks", Some(OTHER_TOKEN)).await;
    assert_eq!(theirs, json!({"tasks": []}));

    let second = start_task(&server, json!({"seconds": 0})).await;
    server
        .get(&format!("/tasks/{second}/result?wait=30"), Some(TOKEN))
        .await;
    let (status, listed) = server
        .get("/tasks?function=sleeper&status=done&limit=10", Some(TOKEN))
        .await;
    assert_eq!(status, 200, "{listed}");
    let ids: Vec<&str> = listed["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["task_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![second.as_str(), id.as_str()], "newest first");
    let (_, one) = server.get("/tasks?limit=1", Some(TOKEN)).await;
    assert_eq!(one["tasks"].as_array().expect("tasks").len(), 1);
    let (_, none) = server.get("/tasks?function=other", Some(TOKEN)).await;
    assert_eq!(none, json!({"tasks": []}));
    let (status, body) = server.get("/tasks?status=SLEEPING", Some(TOKEN)).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = server.get("/tasks/no-such-task", Some(TOKEN)).await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn terminate_ends_every_running_call_of_a_function() {
    let server = Server::start().await;
    register_sleeper(&server, json!({})).await;
    let first = start_task(&server, json!({"seconds": 60})).await;
    let second = start_task(&server, json!({"seconds": 60})).await;
    let sync_call =
        server.post_in_background("/functions/sleeper/call", &json!({"args": {"seconds": 60}}));
    wait_status(&server, &first, "RUNNING", Duration::from_secs(20)).await;
    wait_status(&server, &second, "RUNNING", Duration::from_secs(20)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, definition) = server.get("/functions/sleeper", Some(TOKEN)).await;
        if definition["running"] == 3 && server.containers().len() == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "three calls never ran: {definition}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = server
        .post("/functions/sleeper/terminate", Some(TOKEN), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["terminated"], 3);
    assert_eq!(body["task_ids"].as_array().expect("ids").len(), 2);
    let (_, result) = sync_call.await.expect("sync call");
    assert_eq!(result["error"]["kind"], "killed", "{result}");
    for id in [&first, &second] {
        assert_eq!(task(&server, id).await["status"], "CANCELLED");
    }
    let left = server
        .wait_containers_at_most(0, Duration::from_secs(1))
        .await;
    assert!(left.is_empty(), "{left:?}");
    let (status, _) = server
        .post("/functions/nothing/terminate", Some(TOKEN), &json!({}))
        .await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_waiting_for_room_starts_when_a_sync_run_ends() {
    let server = Server::start_with(Options {
        max_concurrent_runs: 1,
        ..Options::default()
    })
    .await;
    register_sleeper(&server, json!({})).await;
    let sync_call =
        server.post_in_background("/functions/sleeper/call", &json!({"args": {"seconds": 3}}));
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.containers().is_empty() {
        assert!(Instant::now() < deadline, "the sync call never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = start_task(&server, json!({"seconds": 0})).await;
    assert_eq!(task(&server, &id).await["status"], "QUEUED", "no room yet");
    let (status, body) = sync_call.await.expect("sync call");
    assert_eq!(status, 200, "{body}");
    let sync_ended = chrono::Utc::now();
    let (status, result) = server
        .get(&format!("/tasks/{id}/result?wait=30"), Some(TOKEN))
        .await;
    assert_eq!(status, 200, "{result}");
    let record = task(&server, &id).await;
    let started =
        chrono::DateTime::parse_from_rfc3339(record["started_at"].as_str().expect("started"))
            .expect("a time");
    let after =
        (started.with_timezone(&chrono::Utc) - sync_ended).num_milliseconds() as f64 / 1000.0;
    eprintln!("a queued task started {after:.2} s after the run it waited for ended");
    // Its slot is claimed as soon as it is free (the container start is the rest), not
    // at the queue's 5 s safety poll.
    assert!(after < 2.5, "started {after} s after the slot was free");
    server.stop().await;
}

/// A task claimed from the queue holds its function's `max_concurrency`: two queued
/// tasks of a function limited to one run one after the other even with two run slots
/// free at once (the second stays queued until the first has ended).
#[tokio::test(flavor = "multi_thread")]
async fn a_claimed_task_holds_its_functions_max_concurrency() {
    let server = Server::start_with(Options {
        max_concurrent_runs: 2,
        ..Options::default()
    })
    .await;
    register_sleeper(&server, json!({"max_concurrency": 1})).await;
    // Both run slots taken by runs of no function: the tasks are accepted and queued.
    let busy: Vec<_> = (0..2)
        .map(|_| {
            server.post_in_background(
                "/execute",
                &json!({"code": "import time; time.sleep(3)", "timeout": 20}),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.health().await["running"] != 2 {
        assert!(Instant::now() < deadline, "the slots were never taken");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = start_task(&server, json!({"seconds": 2})).await;
    let second = start_task(&server, json!({"seconds": 2})).await;
    assert_eq!(task(&server, &first).await["status"], "QUEUED");
    assert_eq!(task(&server, &second).await["status"], "QUEUED");
    for run in busy {
        let (status, body) = run.await.expect("busy run");
        assert_eq!(status, 200, "{body}");
    }
    let mut spans = Vec::new();
    for id in [&first, &second] {
        let record = wait_status(&server, id, "DONE", Duration::from_secs(40)).await;
        let at = |field: &str| {
            chrono::DateTime::parse_from_rfc3339(record[field].as_str().expect(field))
                .expect("a time")
        };
        spans.push((at("started_at"), at("finished_at")));
    }
    spans.sort();
    let gap = (spans[1].0 - spans[0].1).num_milliseconds();
    eprintln!("the second task started {gap} ms after the first ended");
    assert!(
        gap >= 0,
        "two tasks of a max_concurrency 1 function ran at once: {spans:?}"
    );
    server.stop().await;
}
