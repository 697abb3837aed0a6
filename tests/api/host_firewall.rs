//! The http transport closes the host by itself (the isolation issue, part 0): a host
//! service listening on every interface is out of a sandbox's reach, the transport still
//! works, `/health` says so; where runbox cannot install its netfilter rules, `serve`
//! refuses the transport unless the configuration accepts an open host.

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::harness::{Options, Server, TOKEN};

fn http_options() -> Options {
    Options {
        transport: Some("http"),
        pool_size: 1,
        ..Options::default()
    }
}

/// The address of the sandbox network's bridge on the host, as the sandboxes see it.
fn sandbox_gateway() -> String {
    let output = std::process::Command::new("docker")
        .args([
            "network",
            "inspect",
            "runbox-sandboxes",
            "--format",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
        ])
        .output()
        .expect("docker network inspect");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_service_on_every_interface_is_out_of_a_sandbox_s_reach() {
    // A host service bound to 0.0.0.0, counting who connects.
    let listener = TcpListener::bind("0.0.0.0:0").expect("listen on every interface");
    let port = listener.local_addr().expect("address").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut stream = stream;
            let _ = stream.read(&mut [0; 16]);
        }
    });
    // No warm pool: between runs this server has no sandbox on the network at all.
    let server = Server::start_with(Options {
        pool_size: 0,
        ..http_options()
    })
    .await;
    let health = server.health().await;
    assert_eq!(health["host_firewall"]["state"], "closed", "{health}");
    assert_eq!(health["status"], "ok", "{health}");
    let gateway = sandbox_gateway();
    assert!(!gateway.is_empty(), "the sandbox network has a gateway");
    reach_from_a_sandbox(&server, &gateway, port).await;
    // A second server on the same host, stopping, takes its own rules and leaves the
    // first server's: the first stays closed.
    let other = Server::start_with(http_options()).await;
    other.stop().await;
    let health = server.health().await;
    assert_eq!(health["host_firewall"]["state"], "closed", "{health}");
    reach_from_a_sandbox(&server, &gateway, port).await;
    // The same service answers the host itself: it was the sandbox that was kept out.
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the host reaches its service");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "only the host's own connection arrived"
    );
    server.stop().await;
}

/// Tries the host's service at `gateway:port` from a sandbox of `server`: the run works
/// and the connection fails.
async fn reach_from_a_sandbox(server: &Server, gateway: &str, port: u16) {
    let code = "import socket\ntry:\n    socket.create_connection((GATEWAY, PORT), 3).close()\n    print('connected')\nexcept OSError as e:\n    print('failed', type(e).__name__)";
    let (status, result) = server
        .post(
            "/execute",
            Some(TOKEN),
            &json!({"code": code, "context": {"GATEWAY": gateway, "PORT": port}, "timeout": 20}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["success"], true, "the transport works: {result}");
    assert!(
        result["stdout"]
            .as_str()
            .is_some_and(|out| out.starts_with("failed")),
        "{result}"
    );
}

/// A directory with nothing to run in it: runbox finds no iptables.
fn empty_path() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[tokio::test(flavor = "multi_thread")]
async fn without_netfilter_the_http_transport_is_refused_unless_accepted() {
    let bare = empty_path();
    let path = bare.path().display().to_string();
    let mut refused = Server::configure(Options {
        env: vec![("PATH".into(), path.clone())],
        ..http_options()
    })
    .await;
    let why = refused.try_spawn().expect_err("serve refuses an open host");
    assert!(
        why.contains("sandbox.allow_host_network_access"),
        "the refusal says how to accept it: {why}"
    );
    let accepted = Server::start_with(Options {
        env: vec![("PATH".into(), path)],
        sandbox_yaml: "allow_host_network_access: true".into(),
        ..http_options()
    })
    .await;
    let health = accepted.health().await;
    assert_eq!(health["host_firewall"]["state"], "open", "{health}");
    assert_eq!(health["host_firewall"]["accepted"], true, "{health}");
    assert_eq!(
        health["status"], "ok",
        "an accepted open host is not degraded: {health}"
    );
    let (status, result) = accepted
        .post("/execute", Some(TOKEN), &json!({"code": "1 + 1"}))
        .await;
    assert_eq!((status, &result["value"]), (200, &json!(2)), "{result}");
    accepted.stop().await;
}
