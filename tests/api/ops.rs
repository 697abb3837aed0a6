//! Operating runbox: metrics move, every answer carries a request id, logs never hold
//! code or tokens, and `runbox doctor` says what is missing.

use serde_json::json;

use crate::harness::{binary, Server, TOKEN};

pub(crate) fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(name_and_labels))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

pub(crate) async fn scrape(server: &Server) -> String {
    let response = server
        .client
        .get(server.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/plain"));
    response.text().await.expect("text")
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_move_and_requests_are_traceable() {
    let server = Server::start().await;
    let ok = r#"runbox_executions_total{surface="runcode",language="python",outcome="ok"}"#;
    let failed =
        r#"runbox_executions_total{surface="execute",language="python",outcome="runtime"}"#;
    let before = scrape(&server).await;

    let marker = "secret_marker_7f3a";
    let (_, body) = server
        .runcode(
            "python",
            &format!("{marker} = 1\nprint({marker})"),
            json!({}),
        )
        .await;
    assert_eq!(body, json!({"output": "1\n"}));
    let (_, body) = server
        .post(
            "/execute",
            Some(TOKEN),
            &json!({"code": "raise ValueError('x')"}),
        )
        .await;
    assert_eq!(body["error"]["kind"], "runtime");

    let after = scrape(&server).await;
    assert_eq!(sample(&after, ok), sample(&before, ok) + 1.0, "{after}");
    assert_eq!(
        sample(&after, failed),
        sample(&before, failed) + 1.0,
        "{after}"
    );
    for family in [
        "runbox_run_seconds_bucket",
        "runbox_admission_wait_seconds_bucket",
        "runbox_sandbox_acquire_seconds_bucket",
        "runbox_http_requests_total",
        "runbox_pool_target",
        "runbox_containers_live",
        "runbox_image_bytes_stored",
        "runbox_tasks{status=\"DONE\"}",
    ] {
        assert!(after.contains(family), "{family} missing:\n{after}");
    }
    // Prometheus text format: every sample line is `name{labels} value`.
    for line in after
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let value = line.rsplit(' ').next().unwrap_or_default();
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "bad sample line {line:?}"
        );
    }
    let (status, _) = server.get("/metrics", None).await;
    assert_eq!(status, 401, "metrics need a token");

    // A request id is made up when the client sends none, and kept when it does.
    let response = server
        .client
        .get(server.url("/health"))
        .send()
        .await
        .expect("health");
    let generated = response.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    assert_eq!(generated.len(), 36, "{generated}");
    let response = server
        .client
        .get(server.url("/health"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("health");
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");

    let log = std::fs::read_to_string(server.data_dir().join("server.log")).unwrap_or_default();
    assert!(!log.contains(marker), "code reached the log");
    assert!(!log.contains(TOKEN), "a token reached the log");
    server.stop().await;
}

#[test]
fn doctor_says_what_is_missing_and_how_to_fix_it() {
    crate::harness::require_docker();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {:?}\nsandbox:\n  base_image: runbox-test-no-such-base:1\n",
            dir.path().display().to_string()
        ),
    )
    .expect("config");
    let output = std::process::Command::new(binary())
        .args(["--config", &config.display().to_string(), "doctor"])
        .output()
        .expect("doctor runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "doctor must fail:\n{stdout}");
    assert!(stdout.contains("ok    docker"), "{stdout}");
    assert!(stdout.contains("FAIL  sandbox image"), "{stdout}");
    assert!(stdout.contains("runbox image build"), "{stdout}");
}
