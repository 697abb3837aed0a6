//! Numbers travel exactly (API.md "Numbers"): an integer of any size arrives as the
//! Python int it spells and comes back with every digit, on every surface and through
//! the store; a number a double would change is refused, never rounded.

use serde_json::{json, Value};

use crate::harness::{Server, TOKEN};

/// 2**70 and -(2**64 + 1): beyond both i64 and u64, and not exact as doubles.
const BIG: &str = "1180591620717411303424";
const NEGATIVE_BIG: &str = "-18446744073709551617";

fn big() -> Value {
    serde_json::from_str(BIG).expect("a JSON number")
}

/// The exact text of a JSON value, as a client reading the body sees it.
fn text(value: &Value) -> String {
    value.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn big_integers_reach_the_code_and_come_back_exactly() {
    let server = Server::start().await;

    let (status, body) = server
        .runcode(
            "python",
            "print(type(big).__name__, big, big == 2**70)",
            json!({"big": big()}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"output": format!("int {BIG} True\n")}));

    let (status, result) = server
        .post("/execute", Some(TOKEN), &json!({"code": "2 ** 64 + 1"}))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(text(&result["value"]), "18446744073709551617", "{result}");

    let context: Value = serde_json::from_str(&format!(
        r#"{{"x": {BIG}, "items": [{NEGATIVE_BIG}, 0.1]}}"#
    ))
    .expect("context");
    let (status, result) = server
        .post(
            "/execute",
            Some(TOKEN),
            &json!({"code": "print(type(x).__name__)\n[x == 2**70, items, x + 1]", "context": context}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["stdout"], "int\n");
    assert_eq!(
        text(&result["value"]),
        format!("[true,[{NEGATIVE_BIG},0.1],1180591620717411303425]")
    );

    // The raw bytes of the answer hold the digits: no client-side parsing involved.
    let raw = server
        .client
        .post(server.url("/execute"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"code": "big * 3", "context": {"big": 1180591620717411303424}}"#)
        .send()
        .await
        .expect("post")
        .text()
        .await
        .expect("body");
    assert!(raw.contains(r#""value":3541774862152233910272"#), "{raw}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn big_integers_survive_functions_tasks_and_sessions() {
    let server = Server::start().await;
    let code = "def grow(n: int, by: int = 1):\n    return {'n': n, 'next': n + by, 'type': type(n).__name__}\n";
    let (status, body) = server
        .post(
            "/functions",
            Some(TOKEN),
            &json!({"name": "grow", "code": code}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let (status, result) = server
        .post(
            "/functions/grow/call",
            Some(TOKEN),
            &json!({"args": {"n": big()}}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(
        text(&result["value"]),
        format!(r#"{{"n":{BIG},"next":1180591620717411303425,"type":"int"}}"#),
        "an int argument of any size is an int: {result}"
    );

    // Through the store: an async call's result is read back from the database.
    let (status, started) = server
        .post(
            "/functions/grow/call",
            Some(TOKEN),
            &json!({"args": {"n": big(), "by": big()}, "async": true}),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let id = started["task_id"].as_str().expect("task id");
    let (status, result) = server
        .get(&format!("/tasks/{id}/result?wait=30"), Some(TOKEN))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(
        text(&result["value"]["next"]),
        "2361183241434822606848",
        "{result}"
    );

    let (status, session) = server
        .post("/sessions", Some(TOKEN), &json!({"language": "python"}))
        .await;
    assert_eq!(status, 201, "{session}");
    let id = session["id"].as_str().expect("session id");
    let path = format!("/sessions/{id}/execute");
    let (status, result) = server
        .post(
            &path,
            Some(TOKEN),
            &json!({"code": "kept = big", "context": {"big": big()}}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    let (status, result) = server
        .post(&path, Some(TOKEN), &json!({"code": "kept * 2"}))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(text(&result["value"]), "2361183241434822606848");
    let (status, _) = server.delete(&format!("/sessions/{id}"), Some(TOKEN)).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_number_a_double_would_change_is_refused() {
    let server = Server::start().await;
    let client = &server.client;
    let post = |path: &'static str, body: &'static str| {
        client
            .post(server.url(path))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    for body in [
        r#"{"code": "x", "context": {"x": 1e400}}"#,
        r#"{"code": "x", "context": {"x": [1, {"y": 3.14159265358979323846264}]}}"#,
    ] {
        let response = post("/execute", body).await.expect("post");
        assert_eq!(response.status(), 400, "{body}");
        let answer: Value = response.json().await.expect("json");
        let field = answer["field"].as_str().unwrap_or_default();
        assert!(field.starts_with("context.x"), "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot be represented exactly")),
            "{answer}"
        );
    }

    // Ordinary doubles are what they always were.
    let response = post("/execute", r#"{"code": "x * 2", "context": {"x": 0.1}}"#)
        .await
        .expect("post");
    let answer: Value = response.json().await.expect("json");
    assert_eq!(text(&answer["value"]), "0.2", "{answer}");

    let response = post(
        "/runcode",
        r#"{"code": "print(x)", "variables": {"x": 1e999}}"#,
    )
    .await
    .expect("post");
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.text().await.expect("text"),
        r#"{"error":"Invalid variables format"}"#
    );
    server.stop().await;
}
