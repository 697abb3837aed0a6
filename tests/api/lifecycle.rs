//! The server's life: leftovers of a killed run (containers, and on the http transport
//! the host ports they published) are swept at start-up, a graceful stop leaves nothing
//! behind.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Options, Server};

#[tokio::test(flavor = "multi_thread")]
async fn containers_left_by_a_killed_server_are_removed_at_start() {
    let mut server = Server::start_with(Options {
        pool_size: 1,
        ..Options::default()
    })
    .await;
    // Three requests that are still running when the server dies.
    let mut requests = Vec::new();
    for _ in 0..3 {
        let client = server.client.clone();
        let url = server.url("/runcode");
        requests.push(tokio::spawn(async move {
            let _ = client
                .post(url)
                .bearer_auth(crate::harness::TOKEN)
                .json(&json!({"languageType": "python", "variables": {}, "code": "import time\ntime.sleep(30)"}))
                .send()
                .await;
        }));
    }
    // Wait until the three run (plus the pool's refill).
    let mut running = 0;
    for _ in 0..200 {
        running = server.containers().len();
        if running >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(running >= 3, "only {running} containers started");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // On the http transport each container holds a host port of the range.
    let ports_before = host_ports(&server.containers());
    if crate::harness::transport() == "http" {
        assert!(ports_before.len() >= 3, "ports: {ports_before:?}");
    }
    server.kill9();
    for request in requests {
        let _ = request.await;
    }
    assert!(
        server.containers().len() >= 3,
        "the containers outlive a SIGKILL"
    );

    server.spawn();
    let left = server
        .wait_containers_at_most(1, Duration::from_secs(10))
        .await;
    assert!(left.len() <= 1, "leftovers not swept: {left:?}");
    let (_, body) = server
        .runcode("python", "print('after restart')", json!({}))
        .await;
    assert_eq!(body, json!({"output": "after restart\n"}));
    // The ports the killed server's containers published are free again, or held by
    // a container of the new server (the lease table starts empty after a restart).
    let left = server
        .wait_containers_at_most(1, Duration::from_secs(10))
        .await;
    let held_now = host_ports(&left);
    for port in &ports_before {
        let free = std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok();
        assert!(
            free || held_now.contains(port),
            "port {port} is still held after the restart (now held: {held_now:?})"
        );
    }
    let (_, health) = server.get("/health", None).await;
    assert!(
        health["port_leases"].as_u64().unwrap_or(0) <= held_now.len() as u64,
        "{health}"
    );
    server.stop().await;
}

/// The host ports (label `runbox.port`) of these containers.
fn host_ports(ids: &[String]) -> Vec<u16> {
    if ids.is_empty() {
        return Vec::new();
    }
    let output = std::process::Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{index .Config.Labels \"runbox.port\"}}",
        ])
        .args(ids)
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pooled_container_is_never_reused() {
    let server = Server::start_with(Options {
        pool_size: 2,
        ..Options::default()
    })
    .await;
    let write =
        "import os, socket\nopen('state.txt', 'w').write('secret')\nprint(socket.gethostname())";
    let read = "import os, socket\nprint(os.path.exists('state.txt'), socket.gethostname())";
    let mut hosts = std::collections::HashSet::new();
    for _ in 0..3 {
        let (_, first) = server.runcode("python", write, json!({})).await;
        let host = first["output"].as_str().expect("output").trim().to_string();
        let (_, second) = server.runcode("python", read, json!({})).await;
        let text = second["output"].as_str().expect("output").to_string();
        assert!(
            text.starts_with("False "),
            "state leaked between requests: {text}"
        );
        assert!(hosts.insert(host));
        assert!(hosts.insert(text.trim().trim_start_matches("False ").to_string()));
    }
    server.stop().await;
}
