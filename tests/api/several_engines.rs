//! `sandbox.engines` (docs/cluster.md, "Several engines"): one server on the two test
//! engines of scripts/start-test-engines.sh, engine 1 on its unix socket and engine 2
//! over mutual TLS, plus an engine whose socket is not there. Runs and sessions land on
//! both engines, a session stays on its engine, the absent one is skipped, /health
//! lists each, a `strong` run gets runsc, and engine 2 refuses a client without a
//! certificate.
//!
//! Needs the test engines' facts in the environment (`set -a; . "$(scripts/
//! start-test-engines.sh start)"; set +a`); RUNBOX_TEST_ENGINE_1_HOST set but empty
//! skips these tests.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{Options, Server, TOKEN};

const ENGINE_VAR: &str = "RUNBOX_TEST_ENGINE_1_HOST";

/// The two test engines as the environment names them.
struct TestEngines {
    /// unix:// socket of engine 1.
    one: String,
    /// unix:// socket of engine 2 (for the test's own look at its containers).
    two_socket: String,
    /// tcp://ADDR:PORT of engine 2's mutual-TLS listener, and its client files.
    two_tls: String,
    ca: String,
    cert: String,
    key: String,
}

fn var(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| panic!("{name} is empty: the test engines' env file is incomplete"))
}

/// The test engines, or `None` (the test is skipped, and says so) when
/// RUNBOX_TEST_ENGINE_1_HOST is set but empty; unset, the test fails.
fn test_engines(test: &str) -> Option<TestEngines> {
    match std::env::var(ENGINE_VAR) {
        Ok(host) if host.trim().is_empty() => {
            eprintln!("skipped {test}: {ENGINE_VAR} is empty (no test engines)");
            None
        }
        Ok(_) => Some(TestEngines {
            one: var(ENGINE_VAR),
            two_socket: var("RUNBOX_TEST_ENGINE_2_HOST"),
            two_tls: var("RUNBOX_TEST_ENGINE_2_TLS_HOST"),
            ca: var("RUNBOX_TEST_ENGINE_2_TLS_CA"),
            cert: var("RUNBOX_TEST_ENGINE_2_TLS_CERT"),
            key: var("RUNBOX_TEST_ENGINE_2_TLS_KEY"),
        }),
        Err(_) => panic!(
            "{test} needs the test engines: run `set -a; . \"$(scripts/start-test-engines.sh \
             start)\"; set +a` first (or set {ENGINE_VAR} empty to skip the tests that need them)"
        ),
    }
}

/// Ids of the server's containers on the engine at `host` (any state).
fn containers_on(host: &str, instance: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args(["-H", host, "ps", "-aq", "--no-trunc", "--filter"])
        .arg(format!("label=runbox.instance={instance}"))
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Removes whatever the server left on the test engines, on every path of the test.
struct Backstop {
    hosts: Vec<String>,
    instance: String,
}

impl Drop for Backstop {
    fn drop(&mut self) {
        for host in &self.hosts {
            let ids = containers_on(host, &self.instance);
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args(["-H", host, "rm", "-f"])
                    .args(&ids)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

fn engines_yaml(engines: &TestEngines, absent_socket: &str) -> String {
    format!(
        r#"strong_runtime: runsc
engines:
  - name: one
    host: "{one}"
    capacity: 4
  - name: two
    host: "{two}"
    capacity: 4
    labels: {{zone: tls}}
    tls: {{ca: "{ca}", cert: "{cert}", key: "{key}"}}
  - name: absent
    host: "unix://{absent_socket}"
    capacity: 4"#,
        one = engines.one,
        two = engines.two_tls,
        ca = engines.ca,
        cert = engines.cert,
        key = engines.key,
    )
}

async fn open_session(server: &Server, body: Value) -> String {
    let (status, session) = server.post("/sessions", Some(TOKEN), &body).await;
    assert_eq!(status, 201, "{session}");
    session["id"].as_str().expect("id").to_string()
}

async fn session_value(server: &Server, id: &str, code: &str) -> Value {
    let (status, result) = server
        .post(
            &format!("/sessions/{id}/execute"),
            Some(TOKEN),
            &json!({"code": code}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["success"], true, "{code}: {result}");
    result["value"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_and_sessions_use_both_engines_and_skip_an_absent_one() {
    let Some(engines) = test_engines("runs_and_sessions_use_both_engines") else {
        return;
    };
    let absent = tempfile::tempdir().expect("tempdir");
    let absent_socket = absent.path().join("docker.sock").display().to_string();
    let server = Server::start_with(Options {
        transport: Some("stdio"),
        sandbox_yaml: engines_yaml(&engines, &absent_socket),
        ..Options::default()
    })
    .await;
    let _backstop = Backstop {
        hosts: vec![engines.one.clone(), engines.two_socket.clone()],
        instance: server.instance.clone(),
    };

    // /health lists each engine: where it is (no secrets), whether it answers, its room.
    let health = server.health().await;
    let listed = health["engines"].as_array().expect("engines").clone();
    let names: Vec<&str> = listed.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["one", "two", "absent"], "{health}");
    assert_eq!(listed[0]["reachable"], true, "{health}");
    assert_eq!(listed[1]["reachable"], true, "{health}");
    assert_eq!(listed[2]["reachable"], false, "{health}");
    assert_eq!(listed[1]["address"], engines.two_tls.as_str());
    assert_eq!(listed[1]["capacity"], 4);
    assert_eq!(listed[1]["labels"], json!({"zone": "tls"}));
    assert!(
        listed[1]["runtimes"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("runsc"))),
        "{health}"
    );
    assert!(!health.to_string().contains(&engines.key), "no secrets");
    assert_eq!(
        health["status"], "ok",
        "one engine away leaves the service ok"
    );

    // Runs succeed while an engine is away.
    for n in 0..6 {
        let (status, result) = server
            .post(
                "/execute",
                Some(TOKEN),
                &json!({"code": format!("print({n})")}),
            )
            .await;
        assert_eq!(status, 200, "{result}");
        assert_eq!(result["stdout"], format!("{n}\n"), "{result}");
    }

    // Two sessions at once: the second goes where there is more room, the other engine.
    let first = open_session(&server, json!({})).await;
    let second = open_session(&server, json!({})).await;
    let on_one = containers_on(&engines.one, &server.instance);
    let on_two = containers_on(&engines.two_socket, &server.instance);
    assert_eq!(
        (on_one.len(), on_two.len()),
        (1, 1),
        "one session on each engine"
    );
    // A session stays in its own sandbox on its engine.
    session_value(&server, &first, "x = 41").await;
    session_value(&server, &second, "x = 1").await;
    for _ in 0..3 {
        assert_eq!(session_value(&server, &first, "x + 1").await, 42);
        assert_eq!(session_value(&server, &second, "x + 1").await, 2);
    }
    assert_eq!(containers_on(&engines.one, &server.instance), on_one);
    assert_eq!(containers_on(&engines.two_socket, &server.instance), on_two);
    for id in [&first, &second] {
        let (status, _) = server.delete(&format!("/sessions/{id}"), Some(TOKEN)).await;
        assert!(status == 200 || status == 204, "{status}");
    }

    // The strong tier runs under runsc (gVisor answers with its own kernel).
    let (status, result) = server
        .post(
            "/execute",
            Some(TOKEN),
            &json!({"code": "import os\nprint(open('/proc/version').read())", "isolation": "strong"}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["success"], true, "{result}");

    let (status, metrics) = server.get("/metrics", Some(TOKEN)).await;
    assert_eq!(status, 200);
    let text = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("runbox_engine_reachable{engine=\"absent\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("runbox_engine_capacity{engine=\"two\"} 4"),
        "{text}"
    );
    server.stop().await;
    for host in [&engines.one, &engines.two_socket] {
        assert!(
            containers_on(host, &_backstop.instance).is_empty(),
            "the server removes its containers from {host} when it stops"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tls_engine_refuses_a_client_without_a_certificate() {
    let Some(engines) = test_engines("the_tls_engine_refuses_a_client_without_a_certificate")
    else {
        return;
    };
    let url = format!(
        "{}/_ping",
        engines.two_tls.replacen("tcp://", "https://", 1)
    );
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(&engines.ca).expect("ca")).expect("ca pem");
    let client = |identity: Option<reqwest::Identity>| {
        let builder = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .add_root_certificate(ca.clone());
        match identity {
            Some(identity) => builder.identity(identity),
            None => builder,
        }
        .build()
        .expect("client")
    };
    let refused = client(None).get(&url).send().await;
    assert!(
        refused.is_err(),
        "an engine with mutual TLS answered a client without a certificate: {refused:?}"
    );
    let mut pem = std::fs::read(&engines.cert).expect("cert");
    pem.extend(std::fs::read(&engines.key).expect("key"));
    let identity = reqwest::Identity::from_pem(&pem).expect("identity");
    let answered = client(Some(identity))
        .get(&url)
        .send()
        .await
        .expect("the engine answers a client with its certificate");
    assert_eq!(answered.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tcp_engine_without_tls_is_refused_at_start() {
    let Some(engines) = test_engines("a_tcp_engine_without_tls_is_refused_at_start") else {
        return;
    };
    let mut server = Server::configure(Options {
        transport: Some("stdio"),
        sandbox_yaml: format!(
            "engines:\n  - name: two\n    host: \"{}\"\n",
            engines.two_tls
        ),
        ..Options::default()
    })
    .await;
    let failed = server
        .try_spawn()
        .expect_err("a tcp:// engine without tls is refused");
    assert!(failed.contains("sandbox.engines[0].tls"), "{failed}");
}
