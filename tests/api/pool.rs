//! The warm pool and the http transport's port range: sandboxes are never shared, the
//! pool refills, survives a failing engine and dead members, ports come back, an
//! exhausted range is a clear 503, and http sandboxes are fenced off.

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::docker_proxy::DockerProxy;
use crate::harness::{Options, Server};

const REFILL: Duration = Duration::from_secs(60);

/// Ids of containers carrying every one of `labels`.
fn containers(labels: &[String]) -> Vec<String> {
    let mut command = Command::new("docker");
    command.args(["ps", "-aq", "--no-trunc"]);
    for label in labels {
        command.args(["--filter", &format!("label={label}")]);
    }
    let output = command.output().expect("docker ps");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn pooled(server: &Server) -> Vec<String> {
    containers(&[
        format!("runbox.instance={}", server.instance),
        "runbox.kind=pool".into(),
    ])
}

fn inspect(id: &str, format: &str) -> String {
    let output = Command::new("docker")
        .args(["inspect", "-f", format, id])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

async fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn port_leases(server: &Server) -> u64 {
    server.health().await["port_leases"]
        .as_u64()
        .expect("port_leases")
}

/// Waits (at most 20 s) until the server holds `wanted` port leases; `never` says what
/// did not happen when it does not.
async fn wait_port_leases(server: &Server, wanted: u64, never: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while port_leases(server).await != wanted {
        assert!(Instant::now() < deadline, "{never}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_never_share_a_sandbox() {
    let server = Server::start_with(Options {
        pool_size: 3,
        ..Options::default()
    })
    .await;
    server.health_once_pool_holds(3, REFILL).await;
    let code = "import os, socket\nseen = os.path.exists('mine.txt')\n\
                open('mine.txt', 'w').write('x')\nprint(seen, socket.gethostname())";
    let requests = (0..10).map(|_| server.runcode("python", code, json!({})));
    let answers = futures::future::join_all(requests).await;
    let mut hosts = HashSet::new();
    for (status, body) in answers {
        assert_eq!(status, 200, "{body}");
        let output = body["output"].as_str().expect("output").trim().to_string();
        let host = output
            .strip_prefix("False ")
            .unwrap_or_else(|| panic!("a sandbox saw another request's file: {output}"));
        assert!(hosts.insert(host.to_string()), "{host} served twice");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_refills_after_a_burst() {
    let server = Server::start_with(Options {
        pool_size: 2,
        ..Options::default()
    })
    .await;
    let health = server.health_once_pool_holds(2, REFILL).await;
    assert_eq!(health["pool"]["target"], 2, "{health}");
    let burst = (0..6).map(|_| server.runcode("python", "print('burst')", json!({})));
    for (status, body) in futures::future::join_all(burst).await {
        assert_eq!((status, body), (200, json!({"output": "burst\n"})));
    }
    let health = server.health_once_pool_holds(2, REFILL).await;
    assert_eq!(
        health["pool"]["ready"], 2,
        "the pool did not refill: {health}"
    );
    assert_eq!(health["pool"]["in_use"], 0, "{health}");
    // Only the pool's own containers (and, on http, their leases) remain.
    let left = server
        .wait_containers_at_most(2, Duration::from_secs(20))
        .await;
    assert_eq!(left.len(), 2, "{left:?}");
    let health = server.health().await;
    assert_eq!(
        health["pool"]["live_containers"], 2,
        "the server's own count of its containers is the engine's: {health}"
    );
    let leases = if crate::harness::transport() == "http" {
        2
    } else {
        0
    };
    assert_eq!(port_leases(&server).await, leases);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_engine_gives_a_clear_503_and_the_pool_recovers() {
    let proxy = DockerProxy::start().await;
    let server = Server::start_with(Options {
        pool_size: 1,
        env: vec![("DOCKER_HOST".into(), proxy.docker_host())],
        ..Options::default()
    })
    .await;
    server.health_once_pool_holds(1, REFILL).await;

    proxy.fail_creates(true);
    // The pooled sandbox still serves; its replacement cannot be created.
    let (status, body) = server.runcode("python", "print('warm')", json!({})).await;
    assert_eq!((status, body), (200, json!({"output": "warm\n"})));
    let (status, body) = server.runcode("python", "print('cold')", json!({})).await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"].as_str().expect("an error message");
    assert!(
        message.contains("sandbox unavailable") && message.contains("injected failure"),
        "{message}"
    );
    wait_for("a failed refill", Duration::from_secs(20), || {
        proxy.refused() >= 2
    })
    .await;
    let health = server.health().await;
    let last_error = health["pool"]["pools"][0]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(last_error.contains("injected failure"), "{health}");

    proxy.fail_creates(false);
    let (status, body) = server.runcode("python", "print('back')", json!({})).await;
    assert_eq!((status, body), (200, json!({"output": "back\n"})));
    let health = server
        .health_once_pool_holds(1, Duration::from_secs(30))
        .await;
    assert_eq!(
        health["pool"]["ready"], 1,
        "the pool did not recover: {health}"
    );
    assert_eq!(
        health["pool"]["pools"][0]["last_error"],
        Value::Null,
        "{health}"
    );
    server.stop().await;
}

/// `docker events` of this server's containers since `since` (unix seconds), as
/// "action exit-code" lines.
fn container_events(server: &Server, since: u64) -> Vec<String> {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 1;
    let output = Command::new("docker")
        .args([
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "type=container",
            "--filter",
            &format!("label=runbox.instance={}", server.instance),
            "--format",
            "{{.Action}} {{index .Actor.Attributes \"exitCode\"}}",
        ])
        .output()
        .expect("docker events");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_stdio_sandbox_ends_by_itself_rather_than_being_killed() {
    // Killing a running container costs the engine more than one that exits; under
    // sustained load that is throughput. The agent exits once runbox closes its stdin.
    let server = Server::start_with(Options {
        transport: Some("stdio"),
        ..Options::default()
    })
    .await;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let (status, body) = server.runcode("python", "print('done')", json!({})).await;
    assert_eq!((status, body), (200, json!({"output": "done\n"})));
    server
        .wait_containers_at_most(0, Duration::from_secs(20))
        .await;
    let events = container_events(&server, since);
    assert!(events.iter().any(|e| e == "die 0"), "{events:?}");
    assert!(
        !events.iter().any(|e| e.starts_with("kill")),
        "the finished sandbox was killed: {events:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preloading_refill_gives_way_when_demand_outruns_the_pool() {
    let server = Server::start_with(Options {
        pool_size: 1,
        preload: vec!["numpy".into(), "matplotlib".into()],
        ..Options::default()
    })
    .await;
    server.health_once_pool_holds(1, REFILL).await;
    // The first request takes the only sandbox; its replacement starts preloading
    // (one request is no pressure yet).
    let first = server.runcode_in_background("python", "import time\ntime.sleep(2)\nprint('slow')");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let health = server.health().await;
        if health["pool"]["pools"][0]["starting"] == 1 && health["pool"]["in_use"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no refill began: {health}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A second request finds the pool empty: the preloading refill is dropped.
    let (status, body) = server.runcode("python", "print('second')", json!({})).await;
    assert_eq!((status, body), (200, json!({"output": "second\n"})));
    let dropped = crate::ops::sample(
        &crate::ops::scrape(&server).await,
        "runbox_pool_preloads_dropped_total",
    );
    assert_eq!(dropped, 1.0, "{}", server.log_tail());
    assert_eq!(first.await.expect("first request").0, 200);
    // The pool recovers: once the pressure is over it holds a preloaded sandbox again.
    let deadline = Instant::now() + REFILL;
    loop {
        let health = server.health().await;
        if health["pool"]["pools"][0]["preloaded"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pool did not recover: {health}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_pooled_sandbox_is_replaced_not_handed_out() {
    let server = Server::start_with(Options {
        pool_size: 1,
        ..Options::default()
    })
    .await;
    server.health_once_pool_holds(1, REFILL).await;
    let victims = pooled(&server);
    assert_eq!(victims.len(), 1, "{victims:?}");
    let killed = Command::new("docker")
        .args(["kill", &victims[0]])
        .output()
        .expect("docker kill");
    assert!(killed.status.success(), "{killed:?}");
    let (status, body) = server.runcode("python", "print('alive')", json!({})).await;
    assert_eq!((status, body), (200, json!({"output": "alive\n"})));
    wait_for("a new pooled sandbox", REFILL, || {
        let now = pooled(&server);
        now.len() == 1 && now[0] != victims[0]
    })
    .await;
    server.health_once_pool_holds(1, REFILL).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leased_port_is_free_again_after_its_request() {
    let server = Server::start_with(Options {
        transport: Some("http"),
        ..Options::default()
    })
    .await;
    assert_eq!(port_leases(&server).await, 0);
    let running = server.runcode_in_background("bash", "sleep 2; echo done");
    wait_port_leases(&server, 1, "the run never held a port").await;
    assert_eq!(
        running.await.expect("join"),
        (200, json!({"output": "done\n"}))
    );
    wait_port_leases(&server, 0, "the lease was not returned").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_port_range_is_a_clear_503_not_a_hang() {
    let server = Server::start_with(Options {
        transport: Some("http"),
        port_count: Some(1),
        ..Options::default()
    })
    .await;
    let holder = server.runcode_in_background("bash", "sleep 3; echo held");
    wait_port_leases(&server, 1, "the first run never held the port").await;
    let started = Instant::now();
    let (status, body) = server.runcode("python", "print(1)", json!({})).await;
    assert!(started.elapsed() < Duration::from_secs(2), "it waited");
    assert_eq!(status, 503, "{body}");
    let message = body["error"].as_str().expect("an error message");
    assert!(message.contains("sandbox.port_range"), "{message}");
    assert!(
        server.log_text().contains("port range exhausted"),
        "no log line:\n{}",
        server.log_tail()
    );
    assert_eq!(holder.await.expect("join").0, 200);
    // The port comes back once the first run's container is gone.
    wait_port_leases(&server, 0, "the lease was not returned").await;
    let (status, body) = server
        .runcode("python", "print('free again')", json!({}))
        .await;
    assert_eq!((status, body), (200, json!({"output": "free again\n"})));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_refuses_calls_without_its_containers_key() {
    let server = Server::start_with(Options {
        transport: Some("http"),
        pool_size: 1,
        ..Options::default()
    })
    .await;
    server.health_once_pool_holds(1, REFILL).await;
    let ids = pooled(&server);
    assert_eq!(ids.len(), 1);
    let port = inspect(&ids[0], "{{index .Config.Labels \"runbox.port\"}}");
    let bound = inspect(&ids[0], "{{json .HostConfig.PortBindings}}");
    assert!(bound.contains("\"HostIp\":\"127.0.0.1\""), "{bound}");
    let ready = format!("http://127.0.0.1:{port}/ready");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let without = client.get(&ready).send().await.expect("request");
    assert_eq!(without.status().as_u16(), 403);
    let wrong = client
        .get(&ready)
        .header("X-Runbox-Key", "not-the-key")
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status().as_u16(), 403);
    let exec = client
        .post(format!("http://127.0.0.1:{port}/exec"))
        .json(&json!({"type": "exec", "language": "python", "code": "print(1)"}))
        .send()
        .await
        .expect("request");
    assert_eq!(exec.status().as_u16(), 403);
    // The sandbox was not spoiled by the attempts: runbox still runs code in it.
    let (status, body) = server.runcode("python", "print('ok')", json!({})).await;
    assert_eq!((status, body), (200, json!({"output": "ok\n"})));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_sandboxes_cannot_reach_each_other() {
    let server = Server::start_with(Options {
        transport: Some("http"),
        ..Options::default()
    })
    .await;
    let listener = server.runcode_in_background(
        "bash",
        "timeout 8 python3 -m http.server 9000 --bind 0.0.0.0 >/dev/null 2>&1; echo stopped",
    );
    let mut address = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while address.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the listening sandbox never started"
        );
        if let Some(id) = containers(&[format!("runbox.instance={}", server.instance)]).first() {
            address = inspect(
                id,
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            );
            if !address.is_empty() {
                let network = inspect(id, "{{json .NetworkSettings.Networks}}");
                assert!(network.contains("runbox-sandboxes"), "{network}");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The host reaches it (so it listens), another sandbox does not.
    let url = format!("http://{address}:9000/");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.get(&url).send().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the server in the sandbox never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let probe = format!(
        "import socket\ns = socket.socket()\ns.settimeout(2)\n\
         try:\n    s.connect(('{address}', 9000))\n    print('connected')\n\
         except OSError as e:\n    print('blocked', type(e).__name__)"
    );
    let (status, body) = server.runcode("python", &probe, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let output = body["output"].as_str().unwrap_or_default();
    assert!(
        output.starts_with("blocked"),
        "a sandbox reached another: {body}"
    );
    let icc = Command::new("docker")
        .args([
            "network",
            "inspect",
            "-f",
            "{{index .Options \"com.docker.network.bridge.enable_icc\"}}",
            "runbox-sandboxes",
        ])
        .output()
        .expect("docker network inspect");
    assert_eq!(String::from_utf8_lossy(&icc.stdout).trim(), "false");
    assert_eq!(
        listener.await.expect("join"),
        (200, json!({"output": "stopped\n"}))
    );
    server.stop().await;
}
