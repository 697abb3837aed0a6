//! The /runcode and /image contract of API.md, against real sandboxes.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Options, Server, TOKEN};

#[tokio::test(flavor = "multi_thread")]
async fn runcode_answers_like_the_original() {
    let server = Server::start().await;

    let (status, body) = server.runcode("python", "print('hello')", json!({})).await;
    assert_eq!((status, body), (200, json!({"output": "hello\n"})));

    let variables = json!({
        "n": 3,
        "s": "it's \"quoted\"",
        "items": [1, 2, 3],
        "nested": {"a": {"b": [1, {"c": true}]}, "none": null}
    });
    let code = "print(n * 2)\nprint(s)\nprint(sum(items))\nprint(nested['a']['b'][1]['c'], nested['none'])";
    let (status, body) = server.runcode("python", code, variables).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"output": "6\nit's \"quoted\"\n6\nTrue None\n"})
    );

    let fenced = "Here is the code:\n```python\nprint('from the block')\n```\nand more ```text```";
    let (_, body) = server.runcode("python", fenced, json!({})).await;
    assert_eq!(body, json!({"output": "from the block\n"}));

    let (_, body) = server
        .runcode(
            "bash",
            "echo \"$GREETING, $COUNT\"",
            json!({"GREETING": "hi there", "COUNT": 3}),
        )
        .await;
    assert_eq!(body, json!({"output": "hi there, 3\n"}));

    let (_, body) = server
        .runcode(
            "python",
            "import sys\nsys.stderr.write('careful\\n')",
            json!({}),
        )
        .await;
    assert_eq!(body, json!({"error": "careful\n"}));

    let (_, body) = server
        .runcode("python", "def broken(:\n  pass", json!({}))
        .await;
    let error = body["error"].as_str().expect("syntax error is an error");
    assert!(error.contains("SyntaxError"), "{error}");

    let (_, body) = server
        .runcode("python", "raise ValueError('bad')", json!({}))
        .await;
    let error = body["error"].as_str().expect("runtime error is an error");
    assert!(error.contains("ValueError: bad"), "{error}");
    assert!(error.contains("Traceback"), "{error}");

    let (_, body) = server
        .runcode("python", "import sys\nsys.exit(3)", json!({}))
        .await;
    let error = body["error"].as_str().expect("exit 3 is an error");
    assert!(error.contains('3'), "{error}");

    let (status, body) = server.runcode("cobol", "DISPLAY 'HI'", json!({})).await;
    assert_eq!(
        (status, body),
        (200, json!({"error": "Unsupported language"}))
    );

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_kills_and_removes_the_container() {
    let server = Server::start_with(Options {
        timeout: "2s",
        ..Options::default()
    })
    .await;
    let started = Instant::now();
    let (status, body) = server
        .runcode(
            "python",
            "import time\nwhile True: time.sleep(0.1)",
            json!({}),
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(
        (status, body),
        (200, json!({"error": "Code execution timed out"}))
    );
    assert!(
        elapsed >= Duration::from_secs(2),
        "answered after {elapsed:?}"
    );
    let left = server
        .wait_containers_at_most(0, Duration::from_secs(1))
        .await;
    assert!(
        left.is_empty(),
        "container still there 1 s after the timeout: {left:?}"
    );

    // A busy loop is killed just the same.
    let (_, body) = server
        .runcode("python", "while True: pass", json!({}))
        .await;
    assert_eq!(body, json!({"error": "Code execution timed out"}));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plots_are_stored_as_base64_and_served() {
    let server = Server::start().await;
    let code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.savefig('plot.png')\nprint('drawn')";
    let (status, body) = server.runcode("python", code, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"], "drawn\n", "{body}");
    let url = body["images"]["plot.png"]
        .as_str()
        .expect("an image URL")
        .to_string();
    assert!(url.starts_with(&format!("{}/image/", server.base)), "{url}");

    let response = server.client.get(&url).send().await.expect("GET image");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert!(response.headers()["cache-control"]
        .to_str()
        .unwrap_or_default()
        .contains("immutable"));
    let etag = response.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_string();
    let bytes = response.bytes().await.expect("bytes");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");

    let again = server
        .client
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("conditional GET");
    assert_eq!(again.status(), 304);

    // The database row holds the bytes as base64.
    let name = url.rsplit('/').next().expect("name");
    let stored = stored_base64(&server, name).await;
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(stored.as_bytes())
        .expect("base64");
    assert_eq!(decoded, bytes.to_vec());

    let (status, body) = server.get("/image/0123456789abcdef.png", None).await;
    assert_eq!((status, body), (404, json!({"error": "Image not found"})));
    let (status, _) = server.get("/image/..%2F..%2Fetc%2Fpasswd", None).await;
    assert_eq!(status, 404);
    server.stop().await;
}

async fn stored_base64(server: &Server, name: &str) -> String {
    const SQL: &str = "SELECT data_base64 FROM images WHERE name = $1";
    if server.database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&server.database_url)
            .await
            .expect("sqlite");
        let (data,): (String,) = sqlx::query_as(SQL)
            .bind(name)
            .fetch_one(&pool)
            .await
            .expect("row");
        pool.close().await;
        data
    } else {
        let pool = sqlx::PgPool::connect(&server.database_url)
            .await
            .expect("postgres");
        let (data,): (String,) = sqlx::query_as(SQL)
            .bind(name)
            .fetch_one(&pool)
            .await
            .expect("row");
        pool.close().await;
        data
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_the_original_errors() {
    let server = Server::start().await;
    let client = &server.client;

    // Old clients compare the body byte for byte: nothing beside `error`.
    for body in [
        "",
        "not json",
        "[1, 2]",
        "{\"code\": \"print(1)\"",
        "{\"languageType\": \"python\"}",
        "{\"code\": null}",
    ] {
        let response = client
            .post(server.url("/runcode"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 400, "body {body:?}");
        let answer = response.text().await.expect("text");
        assert_eq!(answer, r#"{"error":"Invalid JSON"}"#, "body {body:?}");
    }
    let response = client
        .post(server.url("/runcode"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("post without a body");
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.text().await.expect("text"),
        r#"{"error":"Invalid JSON"}"#
    );
    let (status, body) = server
        .post(
            "/runcode",
            Some(TOKEN),
            &json!({"languageType": "python", "code": 42}),
        )
        .await;
    assert_eq!((status, body), (400, json!({"error": "Invalid JSON"})));
    let (status, body) = server
        .post(
            "/runcode",
            Some(TOKEN),
            &json!({"languageType": "python", "variables": [1], "code": "print(1)"}),
        )
        .await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "Invalid variables format"}))
    );

    let (status, body) = server
        .get("/runcode?languageType=python&code=print(1)", Some(TOKEN))
        .await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "Invalid parameters"}))
    );
    let (status, body) = server
        .get(
            "/runcode?languageType=python&variables=%5B1%5D&code=print(1)",
            Some(TOKEN),
        )
        .await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "Invalid variables format"}))
    );
    let (status, body) = server
        .get(
            "/runcode?languageType=python&variables=%7B%22x%22%3A2%7D&code=print(x%2B1)",
            Some(TOKEN),
        )
        .await;
    assert_eq!((status, body), (200, json!({"output": "3\n"})));

    let response = client
        .put(server.url("/runcode"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), 405);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_test_script_passes() {
    let server = Server::start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/concurrent_test.py");
    let started = Instant::now();
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .arg("--url")
        .arg(server.url("/runcode"))
        .output()
        .await
        .expect("python3 runs the script");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "concurrent_test.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Five 3-second runs: in parallel they take ~3 s; one after the other, 15.
    assert!(
        elapsed < Duration::from_secs(10),
        "took {elapsed:?}: not parallel\n{stdout}"
    );
    server.stop().await;
}
