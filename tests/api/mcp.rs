//! The MCP endpoint (API.md "MCP") with the official MCP Python SDK as the client, over
//! Streamable HTTP and over `runbox mcp` (stdio): the scenarios are in
//! `tests/mcp/check_mcp.py`; this starts the server, runs one scenario against it and
//! checks that nothing is left behind.
//!
//! The SDK comes from the virtualenv `RUNBOX_TEST_MCP_PYTHON` names (scripts/test.sh
//! makes it from `tests/mcp/requirements.txt`).

use std::time::Duration;

use serde_json::json;

use crate::cluster_forward::{cluster, replica, stop_all};
use crate::harness::{
    binary, jwt, now, replicas_can_share_a_database, Options, Server, JWT_SECRET, TOKEN,
};

fn mcp_python() -> String {
    std::env::var("RUNBOX_TEST_MCP_PYTHON").unwrap_or_else(|_| {
        panic!(
            "RUNBOX_TEST_MCP_PYTHON must name a Python with the official MCP SDK \
             (`pip install -r tests/mcp/requirements.txt`; scripts/test.sh makes one)"
        )
    })
}

fn token(subject: &str, scope: &str) -> String {
    jwt(
        JWT_SECRET,
        &json!({"sub": subject, "exp": now() + 3600, "jti": format!("mcp-{subject}"), "scope": scope}),
    )
}

async fn scenario(name: &str) {
    let server = Server::start_with(Options {
        pool_size: 1,
        ..Options::default()
    })
    .await;
    run_scenario(name, &server, &[]).await;
    // Whatever the scenario opened (MCP sessions, their notebooks, runs) is gone: the
    // warm pool is all that is left.
    let left = server
        .wait_containers_at_most(1, Duration::from_secs(30))
        .await;
    assert!(left.len() <= 1, "containers left after `{name}`: {left:?}");
    server.stop().await;
}

/// Runs scenario `name` of `check_mcp.py` against `server` (and, for the scenarios of
/// several replicas, `peers`).
async fn run_scenario(name: &str, server: &Server, peers: &[Server]) {
    let python = mcp_python();
    let root = env!("CARGO_MANIFEST_DIR");
    let peer_urls: Vec<&str> = peers.iter().map(|peer| peer.base.as_str()).collect();
    let output = tokio::process::Command::new(&python)
        .arg(format!("{root}/tests/mcp/check_mcp.py"))
        .arg(name)
        .env("MCP_URL", &server.base)
        .env("MCP_PEER_URLS", peer_urls.join(" "))
        .env("MCP_TOKEN", TOKEN)
        .env("MCP_READER_TOKEN", token("reader", "functions:read"))
        .env("MCP_NO_SCOPE_TOKEN", token("nobody", "tasks"))
        .env("RUNBOX_BIN", binary())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|err| panic!("cannot run {python}: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let logs: String = std::iter::once(server)
        .chain(peers)
        .map(|server| format!("--- server log ---\n{}\n", server.log_tail()))
        .collect();
    assert!(
        output.status.success(),
        "MCP scenario `{name}` failed:\n{stdout}\n{stderr}\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_are_listed_and_a_plot_is_an_image_item() {
    scenario("tools_and_plot").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_session_is_a_notebook_and_a_handle_is_one_too() {
    scenario("notebook_sessions").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_functions_are_tools_and_the_list_changes_with_them() {
    scenario("functions").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_scopes_are_the_api_s() {
    scenario("readers_and_strangers").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_mcp_input_gets_the_json_rpc_error_the_spec_names() {
    scenario("bad_input").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn long_runs_send_their_output_as_progress() {
    scenario("progress").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runbox_mcp_serves_the_tools_over_stdio() {
    scenario("stdio").await;
}

/// Replicas behind a load balancer that keeps no affinity: an MCP session (and a runbox
/// session a sessionless client names) is served wherever its requests arrive.
#[tokio::test(flavor = "multi_thread")]
async fn mcp_sessions_hold_across_replicas_without_a_sticky_balancer() {
    const TEST: &str = "mcp_sessions_hold_across_replicas_without_a_sticky_balancer";
    if !replicas_can_share_a_database(TEST) {
        return;
    }
    let servers = cluster(replica(4, "20s", 1), vec![replica(4, "20s", 1)]).await;
    run_scenario("replicas", &servers[0], &servers[1..]).await;
    for server in &servers {
        let left = server
            .wait_containers_at_most(1, Duration::from_secs(30))
            .await;
        assert!(left.len() <= 1, "containers left: {left:?}");
    }
    stop_all(servers).await;
}
