//! Isolation tiers (the isolation issue, part 1) on an engine without gVisor: a run, a
//! session, a function or a token that asks for the `strong` tier is refused with 400
//! naming the field and what is missing, never run at less; an unknown name is a 400; `/health` says
//! which tier runs where. (On engines that offer runsc and crun, the hostile suite runs
//! on each: scripts/test.sh.)

use std::time::Duration;

use serde_json::json;

use crate::harness::{jwt, now, Options, Server, JWT_SECRET, TOKEN};

fn runtimes(health: &serde_json::Value) -> Vec<String> {
    health["isolation"]["offered"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn tiers_run_where_offered_and_are_refused_elsewhere_never_downgraded() {
    let server = Server::start_with(Options {
        pool_size: 1,
        ..Options::default()
    })
    .await;
    let health = server.health().await;
    assert_eq!(
        health["isolation"]["standard"]["available"], true,
        "{health}"
    );
    if runtimes(&health).iter().any(|r| r == "runsc") {
        strong_runs_under_gvisor(&server).await;
        server.stop().await;
        return;
    }
    assert_eq!(
        health["isolation"]["strong"]["available"], false,
        "{health}"
    );
    assert_eq!(
        health["isolation"]["strong"]["runtime"], "runsc",
        "{health}"
    );
    assert_eq!(
        health["status"], "ok",
        "a missing optional tier is not degraded"
    );

    server.wait_pool_ready(1, Duration::from_secs(60)).await;
    let before = server.containers().len();
    let (status, body) = server
        .post(
            "/execute",
            Some(TOKEN),
            &json!({"code": "print(1)", "isolation": "strong"}),
        )
        .await;
    assert_eq!(
        (status, &body["field"]),
        (400, &json!("isolation")),
        "{body}"
    );
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("strong") && message.contains("runsc"),
        "the refusal names the tier and the runtime: {message}"
    );
    let (status, body) = server
        .post(
            "/execute",
            Some(TOKEN),
            &json!({"code": "print(1)", "isolation": "no such; thing"}),
        )
        .await;
    assert_eq!(
        (status, &body["field"]),
        (400, &json!("isolation")),
        "{body}"
    );
    let (status, body) = server
        .post("/sessions", Some(TOKEN), &json!({"isolation": "strong"}))
        .await;
    assert_eq!(status, 400, "a strong session is refused too: {body}");
    let (status, body) = server
        .post(
            "/functions",
            Some(TOKEN),
            &json!({"name": "hardened", "code": "def hardened():\n    return 1\n", "isolation": "strong"}),
        )
        .await;
    assert_eq!(
        status, 400,
        "its code is checked under its own tier: {body}"
    );

    // A token whose runs must be strong gets no standard run, whatever it asks for.
    let strong_token = jwt(
        JWT_SECRET,
        &json!({"sub": "hardened", "exp": now() + 600, "jti": "iso-1", "scope": "run", "isolation": "strong"}),
    );
    let (status, body) = server
        .post(
            "/execute",
            Some(&strong_token),
            &json!({"code": "print(1)", "isolation": "standard"}),
        )
        .await;
    assert_eq!(status, 400, "the token's floor holds: {body}");
    let odd_token = jwt(
        JWT_SECRET,
        &json!({"sub": "odd", "exp": now() + 600, "jti": "iso-2", "scope": "run", "isolation": "no such; thing"}),
    );
    let (status, _) = server
        .post("/execute", Some(&odd_token), &json!({"code": "print(1)"}))
        .await;
    assert_eq!(
        status, 401,
        "a token whose isolation cannot be read is refused"
    );
    assert!(
        server.containers().len() <= before,
        "no sandbox was made for a refused run"
    );

    // Standard runs, by tier name and by the default runtime's name, still run.
    for isolation in ["standard", "runc"] {
        let (status, body) = server
            .post(
                "/execute",
                Some(TOKEN),
                &json!({"code": "1 + 1", "isolation": isolation}),
            )
            .await;
        assert_eq!(
            (status, &body["value"]),
            (200, &json!(2)),
            "{isolation}: {body}"
        );
    }
    server.stop().await;
}

/// On an engine that offers gVisor: a strong run gets a kernel of its own (gVisor
/// reports a release of its own), a standard one the host's; a session keeps its tier.
async fn strong_runs_under_gvisor(server: &Server) {
    let kernel = |isolation: &'static str| async move {
        let (status, body) = server
            .post(
                "/execute",
                Some(TOKEN),
                &json!({"code": "import platform\nplatform.release()", "isolation": isolation}),
            )
            .await;
        assert_eq!(status, 200, "{isolation}: {body}");
        body["value"].as_str().unwrap_or_default().to_string()
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let strong = kernel("strong").await;
    assert_ne!(strong, host, "a strong run does not see the host's kernel");
    assert_eq!(
        kernel("runsc").await,
        strong,
        "runsc by name is the strong tier"
    );
    let (status, session) = server
        .post("/sessions", Some(TOKEN), &json!({"isolation": "strong"}))
        .await;
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["isolation"], "strong", "{session}");
    let path = format!(
        "/sessions/{}/execute",
        session["id"].as_str().unwrap_or_default()
    );
    let (_, body) = server
        .post(
            &path,
            Some(TOKEN),
            &json!({"code": "import platform\nplatform.release()"}),
        )
        .await;
    assert_eq!(body["value"].as_str(), Some(strong.as_str()), "{body}");
}

/// On an engine with `userns-remap` (RUNBOX_TEST_EXPECT_USERNS names the host uid of
/// uid 0 inside): a sandbox's uid 1000 is an unprivileged host uid, and runs, sessions
/// and images work as anywhere else.
#[tokio::test(flavor = "multi_thread")]
async fn under_userns_remap_a_sandbox_s_uids_are_unprivileged_host_uids() {
    let Ok(base) = std::env::var("RUNBOX_TEST_EXPECT_USERNS") else {
        // Not a remapped engine: the mapping is the identity; nothing to see here.
        return;
    };
    let server = Server::start_with(Options {
        pool_size: 1,
        ..Options::default()
    })
    .await;
    let (status, body) = server
        .post(
            "/execute",
            Some(TOKEN),
            &json!({"code": "import os\nprint(os.getuid())\nopen('/proc/self/uid_map').read().split()"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stdout"], "1000\n", "{body}");
    let map = body["value"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        map.get(1).and_then(|v| v.as_str()),
        Some(base.as_str()),
        "uid 0 inside is host uid {base}: {body}"
    );
    let (status, body) = server
        .post(
            "/execute",
            Some(TOKEN),
            &json!({"code": "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.savefig('p.png')\nplt.show()"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["images"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["outputs"].as_array().map(Vec::len), Some(1), "{body}");
    server.stop().await;
}
