//! `/sessions` (API.md "Sessions"): state that persists within a session and never
//! across sessions, ownership, the per-subject cap, reaping, and how a session ends.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{Options, Server, OTHER_TOKEN, TOKEN};
use crate::sse::open_stream;

async fn open(server: &Server, token: &str, body: Value) -> String {
    let (status, session) = server.post("/sessions", Some(token), &body).await;
    assert_eq!(status, 201, "{session}");
    session["id"].as_str().expect("id").to_string()
}

async fn exec(server: &Server, id: &str, body: Value) -> (u16, Value) {
    server
        .post(&format!("/sessions/{id}/execute"), Some(TOKEN), &body)
        .await
}

async fn value_of(server: &Server, id: &str, code: &str) -> Value {
    let (status, result) = exec(server, id, json!({"code": code})).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["success"], true, "{code}: {result}");
    result["value"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn state_persists_within_a_session_and_belongs_to_its_subject() {
    let server = Server::start().await;

    let (status, created) = server
        .post("/sessions", Some(TOKEN), &json!({"language": "python"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let first = created["id"].as_str().expect("id").to_string();
    assert!(created["expires_at"].as_str().is_some(), "{created}");
    assert_eq!(created["idle_timeout"], 600.0);
    let second = open(&server, TOKEN, json!({})).await;
    assert_eq!(server.containers().len(), 2, "one container per session");

    let (status, result) = exec(&server, &first, json!({"code": "x = 41"})).await;
    assert_eq!(
        (status, &result["success"]),
        (200, &json!(true)),
        "{result}"
    );
    assert_eq!(value_of(&server, &first, "x + 1").await, 42);
    // Imports, files and context persist too.
    value_of(
        &server,
        &first,
        "import json\nopen('note.txt', 'w').write('kept')",
    )
    .await;
    let (_, result) = exec(
        &server,
        &first,
        json!({"code": "json.dumps([open('note.txt').read(), y])", "context": {"y": 7}}),
    )
    .await;
    assert_eq!(result["value"], "[\"kept\", 7]", "{result}");

    let (_, result) = exec(&server, &second, json!({"code": "x"})).await;
    assert_eq!(result["success"], false);
    assert_eq!(result["error"]["kind"], "runtime");
    let message = result["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("NameError"), "{message}");

    // `session_id` in /execute runs in the session.
    let (status, result) = server
        .post(
            "/execute",
            Some(TOKEN),
            &json!({"code": "x * 2", "session_id": first}),
        )
        .await;
    assert_eq!((status, &result["value"]), (200, &json!(82)), "{result}");

    // Streaming in a session.
    let code = "for i in range(3):\n    print(i)\nx";
    let events = open_stream(
        &server,
        &format!("/sessions/{first}/execute"),
        TOKEN,
        &json!({"code": code}),
    )
    .await
    .collect()
    .await;
    let last = events.last().expect("events");
    assert_eq!(last.name, "result", "{events:?}");
    assert_eq!(last.data["value"], 41);
    assert!(events.iter().any(|e| e.name == "stdout"), "{events:?}");

    let (status, info) = server.get(&format!("/sessions/{first}"), Some(TOKEN)).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["id"], first.as_str());
    assert_eq!(info["alive"], true);
    assert_eq!(info["executions"], 6);
    for key in ["created_at", "last_used_at", "expires_at"] {
        assert!(info[key].as_str().is_some(), "{key}: {info}");
    }

    let (status, list) = server.get("/sessions", Some(TOKEN)).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);

    // Another subject sees nothing of them.
    let path = format!("/sessions/{first}");
    let (status, _) = server.get(&path, Some(OTHER_TOKEN)).await;
    assert_eq!(status, 404);
    let (status, _) = server
        .post(
            &format!("{path}/execute"),
            Some(OTHER_TOKEN),
            &json!({"code": "x"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .post(
            "/execute",
            Some(OTHER_TOKEN),
            &json!({"code": "x", "session_id": first}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = server.delete(&path, Some(OTHER_TOKEN)).await;
    assert_eq!(status, 404);
    let (_, list) = server.get("/sessions", Some(OTHER_TOKEN)).await;
    assert_eq!(list, json!({"sessions": []}));
    let (status, _) = server.get("/sessions/no-such-id", Some(TOKEN)).await;
    assert_eq!(status, 404);

    // Deleting removes the container before it answers.
    let (status, _) = server.delete(&path, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(
        server.containers().len(),
        1,
        "the deleted session's container"
    );
    let (status, _) = server.get(&path, Some(TOKEN)).await;
    assert_eq!(status, 404);
    let (status, _) = exec(&server, &first, json!({"code": "1"})).await;
    assert_eq!(status, 404);
    assert_eq!(
        value_of(&server, &second, "'still here'").await,
        "still here"
    );

    // The second session is still open: stopping the server removes it.
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_end_when_idle_timed_out_or_killed() {
    let server = Server::start().await;

    // Reaped after its idle timeout.
    let idle = open(&server, TOKEN, json!({"idle_timeout": 1})).await;
    let (_, info) = server.get(&format!("/sessions/{idle}"), Some(TOKEN)).await;
    assert_eq!(info["idle_timeout"], 1.0);
    let started = Instant::now();
    let left = server
        .wait_containers_at_most(0, Duration::from_secs(5))
        .await;
    assert!(left.is_empty(), "the idle session's container: {left:?}");
    let reaped_after = started.elapsed();
    eprintln!("idle session (1 s) reaped after {reaped_after:?}");
    assert!(reaped_after < Duration::from_secs(3), "{reaped_after:?}");
    let (status, info) = server.get(&format!("/sessions/{idle}"), Some(TOKEN)).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["alive"], false);
    assert!(
        info["ended_reason"].as_str().unwrap_or("").contains("idle"),
        "{info}"
    );
    let (status, answer) = exec(&server, &idle, json!({"code": "1"})).await;
    assert_eq!(status, 410, "{answer}");
    assert!(
        answer["error"].as_str().unwrap_or("").contains("idle"),
        "{answer}"
    );

    // A timeout ends the session and no other.
    let doomed = open(&server, TOKEN, json!({})).await;
    let other = open(&server, TOKEN, json!({})).await;
    value_of(&server, &other, "x = 'mine'").await;
    let started = Instant::now();
    let (status, result) = exec(
        &server,
        &doomed,
        json!({"code": "while True: pass", "timeout": 1}),
    )
    .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["error"]["kind"], "timeout", "{result}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let message = result["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("session has ended"), "{message}");
    let (status, answer) = exec(&server, &doomed, json!({"code": "1"})).await;
    assert_eq!(status, 410, "{answer}");
    assert_eq!(
        server.containers().len(),
        1,
        "only the other session's container"
    );
    assert_eq!(value_of(&server, &other, "x").await, "mine");

    // One execution at a time.
    let slow = server.post_in_background(
        &format!("/sessions/{other}/execute"),
        &json!({"code": "import time\ntime.sleep(1.5)\n'slept'"}),
    );
    let mut conflict = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (status, answer) = exec(&server, &other, json!({"code": "1"})).await;
        if status == 409 {
            conflict = Some(answer);
            break;
        }
    }
    let conflict = conflict.expect("a concurrent execution is refused with 409");
    assert!(
        conflict["error"].as_str().unwrap_or("").contains("busy"),
        "{conflict}"
    );
    let (status, slow) = slow.await.expect("task");
    assert_eq!(status, 200, "{slow}");
    assert_eq!(slow["value"], "slept", "{slow}");
    assert_eq!(value_of(&server, &other, "x").await, "mine");

    // Running out of memory is a typed error, never a server error.
    let (status, result) = exec(&server, &other, json!({"code": "b = bytearray(2*1024**3)"})).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["error"]["kind"], "memory", "{result}");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn live_sessions_per_subject_are_capped() {
    let server = Server::start_with(Options {
        extra_yaml: "sessions:\n  max_per_subject: 2\n  idle_timeout: 5m".into(),
        max_concurrent_runs: 1,
        max_wait: "2s",
        ..Options::default()
    })
    .await;
    let first = open(&server, TOKEN, json!({"idle_timeout": 3600})).await;
    let (_, info) = server.get(&format!("/sessions/{first}"), Some(TOKEN)).await;
    assert_eq!(
        info["idle_timeout"], 300.0,
        "capped by sessions.idle_timeout"
    );
    let second = open(&server, TOKEN, json!({})).await;

    // Open sessions hold no admission slot: with room for one run, a run still starts.
    let (status, result) = server
        .post("/execute", Some(TOKEN), &json!({"code": "1"}))
        .await;
    assert_eq!((status, &result["value"]), (200, &json!(1)), "{result}");

    // A client that leaves a session's stream does not cut its execution off: it
    // finishes, and the session goes on.
    let mut stream = open_stream(
        &server,
        &format!("/sessions/{second}/execute"),
        TOKEN,
        &json!({"code": "import time\nprint('begun')\ntime.sleep(1)\ny = 5"}),
    )
    .await;
    assert_eq!(stream.next().await.expect("an event").name, "stdout");
    drop(stream);
    let mut seen = None;
    for _ in 0..60 {
        let (status, result) = exec(&server, &second, json!({"code": "y"})).await;
        if status != 409 {
            seen = Some((status, result));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, result) = seen.expect("the session is free again");
    assert_eq!((status, &result["value"]), (200, &json!(5)), "{result}");

    let response = server
        .client
        .post(server.url("/sessions"))
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.expect("json");
    assert!(body["error"].as_str().is_some(), "{body}");
    assert_eq!(
        server.containers().len(),
        2,
        "no container for a refused session"
    );

    // The cap is per subject.
    open(&server, OTHER_TOKEN, json!({})).await;

    let (status, _) = server
        .delete(&format!("/sessions/{first}"), Some(TOKEN))
        .await;
    assert_eq!(status, 200);
    open(&server, TOKEN, json!({})).await;

    let (status, answer) = server
        .post("/sessions", Some(TOKEN), &json!({"language": "bash"}))
        .await;
    assert_eq!(
        (status, &answer["field"]),
        (400, &json!("language")),
        "{answer}"
    );
    let (status, answer) = server
        .post("/sessions", Some(TOKEN), &json!({"idle_timeout": "soon"}))
        .await;
    assert_eq!(
        (status, &answer["field"]),
        (400, &json!("idle_timeout")),
        "{answer}"
    );

    server.stop().await;
}
