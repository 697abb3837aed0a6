//! `POST /execute` (API.md "Native surface"): values, typed errors, limits, input
//! files and streaming, against real sandboxes.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::harness::{jwt, now, Options, Server, JWT_SECRET, TOKEN};
use crate::sse::open_stream;

async fn execute(server: &Server, body: Value) -> Value {
    let (status, result) = server.post("/execute", Some(TOKEN), &body).await;
    assert_eq!(status, 200, "{body} → {result}");
    result
}

fn error_kind(result: &Value) -> &str {
    result["error"]["kind"].as_str().unwrap_or("(none)")
}

#[tokio::test(flavor = "multi_thread")]
async fn values_and_typed_errors() {
    let server = Server::start().await;

    let result = execute(
        &server,
        json!({"code": "result = x + y", "context": {"x": 10, "y": 20}}),
    )
    .await;
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["value"], 30);
    assert_eq!(result["error"], Value::Null);
    assert_eq!(result["exit_code"], 0);
    assert_eq!(result["truncated"], false);
    assert_eq!(result["images"], json!([]));
    assert!(result["execution_time"].as_f64().is_some(), "{result}");
    assert!(result.get("task_id").is_some(), "{result}");

    let result = execute(&server, json!({"code": "1+1"})).await;
    assert_eq!(
        (&result["success"], &result["value"]),
        (&json!(true), &json!(2))
    );

    // `variables` is the other name of `context`; a trailing expression wins over `result`.
    let result = execute(
        &server,
        json!({"code": "result = 1\nprint('hi')\nn * 2", "variables": {"n": 21}}),
    )
    .await;
    assert_eq!(result["value"], 42);
    assert_eq!(result["stdout"], "hi\n");

    let result = execute(
        &server,
        json!({"code": "import numpy as np\nnp.arange(3) * 2"}),
    )
    .await;
    assert_eq!(result["success"], true, "{result}");
    let value = &result["value"];
    assert!(
        *value == json!([0, 2, 4]) || value.as_str().is_some_and(|s| s.contains("array")),
        "a numpy array is a list or its repr: {value}"
    );

    let result = execute(&server, json!({"code": "raise ValueError(\"bad\")"})).await;
    assert_eq!(result["success"], false);
    assert_eq!(error_kind(&result), "runtime");
    let message = result["error"]["message"].as_str().expect("message");
    assert!(message.contains("ValueError: bad"), "{message}");
    let traceback = result["error"]["traceback"].as_str().unwrap_or("");
    assert!(
        !traceback.contains("/opt/runbox/"),
        "trimmed to the user's frames: {traceback}"
    );

    let result = execute(&server, json!({"code": "x = "})).await;
    assert_eq!(result["success"], false);
    assert_eq!(error_kind(&result), "syntax", "{result}");

    // Bash: the context arrives as environment variables, `env` as well.
    let result = execute(
        &server,
        json!({"language": "bash", "code": "echo \"$GREETING $WHO\"; exit 3",
               "context": {"GREETING": "hello"}, "env": {"WHO": "world"}}),
    )
    .await;
    assert_eq!(result["stdout"], "hello world\n", "{result}");
    assert_eq!(result["exit_code"], 3);
    assert_eq!(result["success"], false);

    let result = execute(
        &server,
        json!({"code": "import os\nos.environ['COLOUR']", "env": {"COLOUR": "blue"}}),
    )
    .await;
    assert_eq!(result["value"], "blue");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_4xx_naming_the_field() {
    let server = Server::start_with(Options {
        limits_yaml: "file_bytes: 1k".into(),
        ..Options::default()
    })
    .await;

    let cases = [
        (json!({"code": 5}), "code"),
        (json!({"code": "1", "timeout": "soon"}), "timeout"),
        (json!({"code": "1", "timeout": -1}), "timeout"),
        (json!({"code": "1", "context": [1, 2]}), "context"),
        (json!({"code": "1", "env": {"A": 1}}), "env.A"),
        (json!({"code": "1", "language": "cobol"}), "language"),
        (json!({"code": "1", "stream": "yes"}), "stream"),
        (
            json!({"code": "1", "files": [{"path": "../x", "content_base64": ""}]}),
            "files[0].path",
        ),
        (
            json!({"code": "1", "files": [{"path": "/etc/passwd", "content_base64": ""}]}),
            "files[0].path",
        ),
        (
            json!({"code": "1", "files": [{"path": "a", "content_base64": "%%"}]}),
            "files[0].content_base64",
        ),
        (json!({"code": "1", "files": [{"path": "a"}]}), "files[0]"),
    ];
    for (body, field) in cases {
        let (status, answer) = server.post("/execute", Some(TOKEN), &body).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["field"], field, "{body} → {answer}");
        assert!(answer["error"].as_str().is_some(), "{answer}");
    }

    let (status, answer) = server
        .post("/execute", Some(TOKEN), &json!({"timeout": 3}))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap_or("").contains("code"),
        "{answer}"
    );

    let response = server
        .client
        .post(server.url("/execute"))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);

    let big = STANDARD.encode(vec![b'x'; 2048]);
    let (status, answer) = server
        .post(
            "/execute",
            Some(TOKEN),
            &json!({"code": "1", "files": [{"path": "a.txt", "content_base64": big}]}),
        )
        .await;
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or("")
            .contains("file_bytes"),
        "{answer}"
    );

    // The stored-function shape: no function registry entry of that name.
    let (status, answer) = server
        .post(
            "/execute",
            Some(TOKEN),
            &json!({"name": "nope", "args": {"a": 1}}),
        )
        .await;
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer["error"].as_str().unwrap_or("").contains("nope"),
        "{answer}"
    );

    let (status, _) = server.post("/execute", None, &json!({"code": "1"})).await;
    assert_eq!(status, 401);
    let no_run = jwt(
        JWT_SECRET,
        &json!({"sub": "reader", "exp": now() + 60, "jti": "t1", "scope": "functions:read"}),
    );
    let (status, answer) = server
        .post("/execute", Some(&no_run), &json!({"code": "1"}))
        .await;
    assert_eq!(
        (status, answer),
        (
            403,
            json!({"error": "Insufficient scope", "required": "run"})
        )
    );

    assert!(
        server.containers().is_empty(),
        "no sandbox for a bad request"
    );

    // Unknown fields are ignored.
    let result = execute(&server, json!({"code": "2", "notebook": true})).await;
    assert_eq!(result["value"], 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_end_runs_with_typed_errors() {
    // A warm container, as in a deployment: the time measured is the timeout's, not
    // a container start's.
    let server = Server::start_with(Options {
        pool_size: 1,
        limits_yaml: "memory: 512m\noutput_bytes: 1m".into(),
        ..Options::default()
    })
    .await;
    server.wait_pool_ready(1, Duration::from_secs(30)).await;
    let warm = server.containers();

    let started = Instant::now();
    let result = execute(&server, json!({"code": "while True: pass", "timeout": 1})).await;
    let elapsed = started.elapsed();
    eprintln!("timeout 1 s answered after {elapsed:?}");
    assert_eq!(error_kind(&result), "timeout", "{result}");
    assert_eq!(result["success"], false);
    assert!(elapsed < Duration::from_secs(2), "timeout took {elapsed:?}");
    let left = server.containers();
    assert!(
        !left.contains(&warm[0]),
        "the timed-out container is gone before the answer: {left:?}"
    );

    let result = execute(&server, json!({"code": "x = bytearray(2*1024**3)"})).await;
    assert_eq!(error_kind(&result), "memory", "{result}");

    // 10 MB of output under a 1 MiB cap: cut, flagged, and still a success.
    let code = "import sys\nfor _ in range(10):\n    sys.stdout.write('x' * 1000000)";
    let _ = execute(&server, json!({"code": code})).await; // warm-up
    let pid = server.pid().expect("running");
    let before = rss_kib(pid);
    for _ in 0..3 {
        let result = execute(&server, json!({"code": code})).await;
        assert_eq!(result["success"], true, "{}", result["error"]);
        assert_eq!(result["truncated"], true);
        assert_eq!(result["stdout"].as_str().map(str::len), Some(1 << 20));
    }
    let after = rss_kib(pid);
    eprintln!("server VmRSS: {before} KiB before, {after} KiB after 3 × 10 MB of output");
    assert!(
        after <= before + 8 * 1024,
        "the server grew from {before} KiB to {after} KiB"
    );

    server.stop().await;
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread")]
async fn input_files_are_in_the_work_dir() {
    let server = Server::start().await;
    let csv = "name,score\nada,3\nbob,4\n";
    let result = execute(
        &server,
        json!({
            "code": "import pandas as pd\ndf = pd.read_csv('data/scores.csv')\nint(df['score'].sum())",
            "files": [{"path": "data/scores.csv", "content_base64": STANDARD.encode(csv)}],
        }),
    )
    .await;
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["value"], 7);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn output_streams_as_it_happens() {
    let server = Server::start().await;
    let code = "import time\nfor i in range(5):\n    print('line', i)\n    time.sleep(0.2)\n'done'";
    let events = open_stream(&server, "/execute", TOKEN, &json!({"code": code}))
        .await
        .collect()
        .await;
    let stdout: Vec<_> = events.iter().filter(|e| e.name == "stdout").collect();
    let texts: Vec<&str> = stdout
        .iter()
        .map(|e| e.data["data"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        texts,
        ["line 0\n", "line 1\n", "line 2\n", "line 3\n", "line 4\n"],
        "{events:?}"
    );
    let spread = stdout[4].at - stdout[0].at;
    eprintln!("5 stdout events spread over {spread:?}");
    assert!(
        spread >= Duration::from_millis(600) && spread <= Duration::from_millis(2000),
        "stdout events spread over {spread:?}"
    );
    let last = events.last().expect("events");
    assert_eq!(last.name, "result", "{events:?}");
    assert_eq!(events.iter().filter(|e| e.name == "result").count(), 1);
    assert_eq!(last.data["value"], "done");
    assert_eq!(
        last.data["stdout"].as_str().map(|s| s.lines().count()),
        Some(5)
    );

    // `"stream": true` without the header; stderr and images as events of their own.
    let code = "import sys\nimport matplotlib.pyplot as plt\nsys.stderr.write('warn\\n')\nplt.plot([1, 2])\nplt.savefig('p.png')";
    let response = server
        .client
        .post(server.url("/execute"))
        .bearer_auth(TOKEN)
        .json(&json!({"code": code, "stream": true}))
        .send()
        .await
        .expect("request");
    let events = crate::sse::SseReader::new(response, Instant::now())
        .collect()
        .await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    // The figure was saved and left open: the file is an image, and the open figure is
    // shown as a notebook shows it (a display event, once, in order).
    assert_eq!(
        names,
        ["stderr", "display", "image", "result"],
        "{events:?}"
    );
    assert_eq!(events[0].data, json!({"data": "warn\n"}));
    assert_eq!(events[1].data, events[3].data["outputs"][0]);
    assert_eq!(events[2].data["name"], "p.png");
    assert_eq!(events[2].data, events[3].data["images"][0]);
    let image = server
        .client
        .get(events[2].data["url"].as_str().expect("url"))
        .send()
        .await
        .expect("image");
    assert_eq!(image.status(), 200);

    // A bad body is still a plain 400, not a stream.
    let (status, answer) = server
        .post("/execute", Some(TOKEN), &json!({"code": 1, "stream": true}))
        .await;
    assert_eq!(status, 400, "{answer}");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_disconnects_mid_stream_cancels_the_run() {
    let server = Server::start().await;
    let code = "import time\nwhile True:\n    print('tick')\n    time.sleep(0.1)";
    let mut stream = open_stream(
        &server,
        "/execute",
        TOKEN,
        &json!({"code": code, "timeout": 60}),
    )
    .await;
    let first = stream.next().await.expect("an event");
    assert_eq!(first.name, "stdout");
    assert_eq!(server.containers().len(), 1, "the run's container");

    drop(stream);
    let dropped = Instant::now();
    let left = server
        .wait_containers_at_most(0, Duration::from_secs(5))
        .await;
    let gone_after = dropped.elapsed();
    eprintln!("printing run: container gone {gone_after:?} after the disconnect");
    assert!(
        left.is_empty(),
        "the container outlived the client: {left:?}"
    );
    assert!(
        gone_after <= Duration::from_secs(2),
        "the container went {gone_after:?} after the disconnect"
    );

    // Same for a run that prints nothing (only keep-alives go out).
    let mut stream = open_stream(
        &server,
        "/execute",
        TOKEN,
        &json!({"code": "print('start')\nimport time\ntime.sleep(60)", "timeout": 60}),
    )
    .await;
    let _ = stream.next().await.expect("an event");
    drop(stream);
    let dropped = Instant::now();
    let left = server
        .wait_containers_at_most(0, Duration::from_secs(5))
        .await;
    let gone_after = dropped.elapsed();
    eprintln!("silent run: container gone {gone_after:?} after the disconnect");
    assert!(
        left.is_empty(),
        "the container outlived the client: {left:?}"
    );
    assert!(
        gone_after <= Duration::from_secs(2),
        "the silent run's container went {gone_after:?} after the disconnect"
    );

    let (status, health) = server.get("/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(health["running"], 0, "{health}");
    server.stop().await;
}
