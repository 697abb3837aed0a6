//! Replicas on three "hosts": each replica drives an engine of its own (the machine's
//! engine, and the test engines of `scripts/start-test-engines.sh`, each in a network
//! namespace of its own), a fourth drives one of those engines over mutual TLS, and they
//! share one PostgreSQL. As one service they spread a
//! burst and the task queue over the three engines, serve a session wherever it is
//! asked, list a subject's sessions wherever they live, hold `max_concurrency` and a
//! revocation across the replicas, and survive a replica killed under load. A replica
//! whose engine freezes (SIGSTOP of a dockerd this test started for itself) stops taking
//! work without hanging anyone, and comes back when the engine does.
//!
//! Needs PostgreSQL (RUNBOX_TEST_POSTGRES_URL) and the test engines' variables
//! (`set -a; . "$(scripts/start-test-engines.sh start)"; set +a`; the freeze test needs
//! engine 3: `RUNBOX_TEST_ENGINES=3`). A variable set but empty skips its test, saying so.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cluster_forward::{cluster, post, replica, replica_id, served_by, stop_all};
use crate::harness::{remove_containers_on, replicas_can_share_a_database, Options, Server, TOKEN};
use crate::tasks::{register_sleeper, start_task, task, wait_status};

/// Test engine `n`'s `DOCKER_HOST`; `None` (the test is skipped) when its variable is set
/// but empty. Unset, the test fails: it needs the engine.
fn test_engine(n: u32, test: &str) -> Option<String> {
    let var = format!("RUNBOX_TEST_ENGINE_{n}_HOST");
    match std::env::var(&var) {
        Ok(host) if host.trim().is_empty() => {
            eprintln!("skipped {test}: {var} is empty");
            None
        }
        Ok(host) => Some(host),
        Err(_) => panic!(
            "{test} needs test engine {n}: `set -a; . \"$(RUNBOX_TEST_ENGINES=3 \
             scripts/start-test-engines.sh start)\"; set +a` (or set {var} empty to skip it)"
        ),
    }
}

/// `options` for a replica on the engine at `host` (stdio: the engine's containers are
/// in its own network namespace, out of the host's loopback).
fn on_engine(host: &str, options: Options) -> Options {
    Options {
        env: vec![("DOCKER_HOST".to_string(), host.to_string())],
        transport: Some("stdio"),
        ..options
    }
}

/// `options` for a replica whose one engine is test engine 2 reached over mutual TLS
/// (`tcp://` with its client certificate); its socket, `socket`, is where the test looks
/// at and cleans up the replica's containers.
fn on_tls_engine(socket: &str, options: Options) -> Options {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| panic!("{name} is empty: the test engines' env file is incomplete"))
    };
    Options {
        sandbox_yaml: format!(
            "engines:\n  - name: tls\n    host: \"{host}\"\n    capacity: 4\n    \
             tls: {{ca: \"{ca}\", cert: \"{cert}\", key: \"{key}\"}}",
            host = var("RUNBOX_TEST_ENGINE_2_TLS_HOST"),
            ca = var("RUNBOX_TEST_ENGINE_2_TLS_CA"),
            cert = var("RUNBOX_TEST_ENGINE_2_TLS_CERT"),
            key = var("RUNBOX_TEST_ENGINE_2_TLS_KEY"),
        ),
        ..on_engine(socket, options)
    }
}

fn on_machine(options: Options) -> Options {
    Options {
        transport: Some("stdio"),
        ..options
    }
}

/// A client that gives up after `seconds`: nothing in these tests may hang.
fn client(seconds: u64) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(seconds))
        .build()
        .expect("client")
}

/// `POST /execute` of `code` at `server` in the background: status, the replica that
/// served it when forwarded, the body, and how long it took.
fn execute_in_background(
    server: &Server,
    code: String,
    bound: u64,
) -> tokio::task::JoinHandle<(u16, Option<String>, Value, Duration)> {
    let request = client(bound)
        .post(server.url("/execute"))
        .bearer_auth(TOKEN)
        .json(&json!({"code": code, "timeout": 20}));
    tokio::spawn(async move {
        let asked = Instant::now();
        let response = request.send().await.expect("an answer in time");
        let status = response.status().as_u16();
        let served_by = served_by(&response);
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        (status, served_by, body, asked.elapsed())
    })
}

/// Runs the CLI's `token` command with `server`'s configuration.
fn token_cli(server: &Server, args: &[&str]) -> String {
    let config = server.data_dir().join("config.yaml");
    let output = std::process::Command::new(crate::harness::binary())
        .args(["--config", &config.display().to_string(), "token"])
        .args(args)
        .output()
        .expect("runbox token");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

async fn session_ids(server: &Server, token: &str) -> Vec<String> {
    let (status, body) = server.get("/sessions", Some(token)).await;
    assert_eq!(status, 200, "{body}");
    body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_hosts_serve_as_one_service() {
    const TEST: &str = "three_hosts_serve_as_one_service";
    if !replicas_can_share_a_database(TEST) {
        return;
    }
    let (Some(engine_1), Some(engine_2)) = (test_engine(1, TEST), test_engine(2, TEST)) else {
        return;
    };
    // A waits at most 1 s for a slot: alone, it would answer most of a burst 504. D
    // drives engine 2 over mutual TLS, as a replica on a host of its own would.
    let servers = cluster(
        on_machine(replica(2, "1s", 0)),
        vec![
            on_engine(&engine_1, replica(2, "20s", 0)),
            on_engine(&engine_2, replica(2, "20s", 0)),
            on_tls_engine(&engine_2, replica(2, "20s", 0)),
        ],
    )
    .await;
    let (a, b, c, d) = (&servers[0], &servers[1], &servers[2], &servers[3]);
    let ids = [
        replica_id(a).await,
        replica_id(b).await,
        replica_id(c).await,
        replica_id(d).await,
    ];
    let engines = d.health().await["engines"].clone();
    assert_eq!(engines[0]["name"], "tls", "{engines}");
    assert_eq!(engines[0]["reachable"], true, "{engines}");

    // Each replica's /metrics names it and counts the registry; the doctor checks it.
    let metrics = crate::ops::scrape(a).await;
    let info = metrics
        .lines()
        .find(|line| line.starts_with("runbox_replica_info{"))
        .unwrap_or_default();
    assert!(info.contains(&format!("replica=\"{}\"", ids[0])), "{info}");
    assert!(
        metrics.contains("runbox_cluster_replicas{state=\"alive\"} 4"),
        "{metrics}"
    );
    let config = a.data_dir().join("config.yaml");
    let doctor = std::process::Command::new(crate::harness::binary())
        .args(["--config", &config.display().to_string(), "doctor"])
        .output()
        .expect("runbox doctor");
    let said = String::from_utf8_lossy(&doctor.stdout);
    for id in &ids {
        let line = said
            .lines()
            .find(|line| line.contains(&format!("replica {id}:")))
            .unwrap_or_else(|| panic!("the doctor says nothing of {id}: {said}"));
        assert!(line.trim_start().starts_with("ok"), "{line}");
        assert!(line.contains("alive at"), "{line}");
    }

    // A burst of eight 2 s runs at A, which runs two at once: the rest go to B, C and D.
    let burst: Vec<_> = (0..8)
        .map(|i| execute_in_background(a, format!("import time; time.sleep(2); print({i})"), 60))
        .collect();
    let mut served = [0; 4];
    for (i, run) in burst.into_iter().enumerate() {
        let (status, served_by, body, _) = run.await.expect("join");
        assert_eq!(status, 200, "no 504 while peers have room: {body}");
        assert_eq!(body["stdout"], format!("{i}\n"), "{body}");
        let at = served_by.map_or(0, |id| {
            ids.iter()
                .position(|known| *known == id)
                .expect("a replica")
        });
        served[at] += 1;
    }
    eprintln!("a burst of 8 at A: served by A, B, C, D: {served:?}");
    assert!(
        served.iter().all(|&n| n > 0),
        "every host served some: {served:?}"
    );

    // Tasks sent to A run on every replica (D's on engine 2 through TLS).
    register_sleeper(a, json!({"timeout": 60})).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        tasks.push(start_task(a, json!({"seconds": 3})).await);
    }
    let mut ran_on = [false; 4];
    let deadline = Instant::now() + Duration::from_secs(30);
    while ran_on.contains(&false) && Instant::now() < deadline {
        for (n, server) in servers.iter().enumerate() {
            ran_on[n] |= !server.containers().is_empty();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ran_on, [true; 4], "each replica ran some of the tasks");
    for id in &tasks {
        let done = wait_status(c, id, "DONE", Duration::from_secs(60)).await;
        assert_eq!(done["status"], "DONE", "{done}");
    }

    // A session opened at B (engine 1) is used through C and A, and listed everywhere.
    let (status, session) = b.post("/sessions", Some(TOKEN), &json!({})).await;
    assert_eq!(status, 201, "{session}");
    let session = session["id"].as_str().expect("id").to_string();
    let (status, at, body) = post(
        c,
        "/execute",
        &json!({"code": "x = 41", "session_id": session}),
        &[],
    )
    .await;
    assert_eq!(
        (status, at.as_deref()),
        (200, Some(ids[1].as_str())),
        "{body}"
    );
    let (status, _, body) = post(
        a,
        "/execute",
        &json!({"code": "print(x + 1)", "session_id": session}),
        &[],
    )
    .await;
    assert_eq!((status, &body["stdout"]), (200, &json!("42\n")), "{body}");
    let (status, other) = c.post("/sessions", Some(TOKEN), &json!({})).await;
    assert_eq!(status, 201, "{other}");
    let other = other["id"].as_str().expect("id").to_string();
    for server in [a, b, c, d] {
        assert_eq!(
            session_ids(server, TOKEN).await,
            vec![session.clone(), other.clone()],
            "the caller's sessions across the replicas, oldest first"
        );
        assert!(session_ids(server, crate::harness::OTHER_TOKEN)
            .await
            .is_empty());
    }
    let (status, listed) = a.get("/sessions", Some(TOKEN)).await;
    assert_eq!(status, 200);
    let (_, shown) = b.get(&format!("/sessions/{session}"), Some(TOKEN)).await;
    assert_eq!(
        listed["sessions"][0]["executions"], shown["executions"],
        "{listed}"
    );
    assert_eq!(
        listed["sessions"][0]["language"], shown["language"],
        "{listed}"
    );
    for id in [&session, &other] {
        let (status, body) = a.delete(&format!("/sessions/{id}"), Some(TOKEN)).await;
        assert_eq!(status, 200, "{body}");
    }

    // max_concurrency 2 across the hosts: the third concurrent call is 429.
    crate::cluster_forward::register_sleeper(a, "limited").await;
    let call = json!({"args": {}});
    let first = a.post_in_background("/functions/limited/call", &call);
    let second = b.post_in_background("/functions/limited/call", &call);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = c.post("/functions/limited/call", Some(TOKEN), &call).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["message"], "Over Max Concurrency 2", "{body}");
    for call in [first, second] {
        let (status, body) = call.await.expect("join");
        assert_eq!(status, 200, "{body}");
    }

    // A token revoked through one replica's configuration is refused by all.
    let token = token_cli(
        a,
        &[
            "create",
            "--subject",
            "carol",
            "--scope",
            "run",
            "--ttl",
            "1h",
        ],
    );
    let print = json!({"languageType": "python", "variables": {}, "code": "print(2)"});
    assert_eq!(c.post("/runcode", Some(&token), &print).await.0, 200);
    token_cli(a, &["revoke", &token]);
    for server in [a, b, c, d] {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, _) = server.post("/runcode", Some(&token), &print).await;
            if status == 401 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a revoked token still works: {status}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // C is killed while it runs two long tasks and two more wait (every slot taken).
    let long = [
        start_task(c, json!({"seconds": 60})).await,
        start_task(c, json!({"seconds": 60})).await,
    ];
    for id in &long {
        wait_status(c, id, "RUNNING", Duration::from_secs(30)).await;
    }
    let busy: Vec<String> = {
        let mut busy = Vec::new();
        for server in [a, a, b, b, d, d] {
            busy.push(start_task(server, json!({"seconds": 6})).await);
        }
        busy
    };
    for id in &busy {
        wait_status(a, id, "RUNNING", Duration::from_secs(30)).await;
    }
    let queued = [
        start_task(c, json!({"seconds": 1})).await,
        start_task(c, json!({"seconds": 1})).await,
    ];
    for id in &queued {
        assert_eq!(task(a, id).await["status"], "QUEUED");
    }
    let mut servers = servers;
    let mut doomed = servers.remove(2);
    let (a, b) = (&servers[0], &servers[1]);
    doomed.kill9();
    let killed = Instant::now();
    let mut slowest = Duration::ZERO;
    for id in &long {
        loop {
            for server in [a, b] {
                let asked = Instant::now();
                let (status, _) = server.get("/health", None).await;
                assert!(status == 200 || status == 503);
                slowest = slowest.max(asked.elapsed());
            }
            let record = task(a, id).await;
            if record["status"] == "FAILED" {
                assert_eq!(record["reason"], "interrupted", "{record}");
                break;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(30),
                "not taken over: {record}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    eprintln!(
        "C killed: its running tasks FAILED (interrupted) after {:?}; the others' /health \
         answered within {slowest:?} meanwhile",
        killed.elapsed()
    );
    assert!(slowest < Duration::from_secs(5), "{slowest:?}");
    for id in queued.iter().chain(&busy) {
        let done = wait_status(b, id, "DONE", Duration::from_secs(60)).await;
        assert_eq!(done["status"], "DONE", "{done}");
    }
    remove_containers_on(doomed.engine(), &doomed.containers());
    doomed.stop().await;
    stop_all(servers).await;
}

/// SIGSTOP of a dockerd this test was given for itself (test engine 3); SIGCONT again
/// when dropped, whatever happens in between.
struct Frozen {
    pid: String,
}

impl Frozen {
    fn freeze(pid: &str) -> Frozen {
        signal("STOP", pid);
        Frozen {
            pid: pid.to_string(),
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("CONT", &self.pid);
    }
}

fn signal(name: &str, pid: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Replica `id`'s entry in the registry as `server`'s /health shows it, within `bound`.
async fn registry_entry(server: &Server, id: &str, bound: u64) -> Option<Value> {
    let response = client(bound).get(server.url("/health")).send().await.ok()?;
    let health: Value = response.json().await.ok()?;
    health["cluster"]["replicas"]
        .as_array()?
        .iter()
        .find(|r| r["id"] == id)
        .cloned()
}

/// This replica's state in `server`'s registry as `server` sees it, within `bound`.
async fn state_of(server: &Server, id: &str, bound: u64) -> Option<String> {
    let entry = registry_entry(server, id, bound).await?;
    entry["state"].as_str().map(str::to_string)
}

/// How many runs replica `id` had going at its last heartbeat, as `server` sees it.
async fn running_in_registry(server: &Server, id: &str) -> Option<i64> {
    registry_entry(server, id, 10).await?["running"].as_i64()
}

/// Polls until `server` shows replica `id` in `state`; how long that took.
async fn until_state(server: &Server, id: &str, state: &str, within: Duration) -> Duration {
    let since = Instant::now();
    loop {
        if state_of(server, id, 10).await.as_deref() == Some(state) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < within,
            "replica {id} did not become {state} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_whose_engine_freezes_stops_taking_work_and_rejoins() {
    const TEST: &str = "a_replica_whose_engine_freezes_stops_taking_work_and_rejoins";
    if !replicas_can_share_a_database(TEST) {
        return;
    }
    let Some(engine_3) = test_engine(3, TEST) else {
        return;
    };
    let pid = std::env::var("RUNBOX_TEST_ENGINE_3_PID")
        .unwrap_or_else(|_| panic!("{TEST} needs RUNBOX_TEST_ENGINE_3_PID (the env file)"));
    // The default heartbeat (5 s) and dead_after (15 s): the figures a user gets.
    let defaults = |options: Options| Options {
        extra_yaml: String::new(),
        ..options
    };
    let servers = cluster(
        on_machine(defaults(replica(4, "20s", 0))),
        vec![on_engine(&engine_3, defaults(replica(2, "20s", 1)))],
    )
    .await;
    let (a, f) = (&servers[0], &servers[1]);
    let (a_id, f_id) = (replica_id(a).await, replica_id(f).await);
    f.wait_pool_ready(1, Duration::from_secs(60)).await;

    // A run in flight at F when its engine stops.
    let in_flight =
        execute_in_background(f, "import time; time.sleep(2); print('done')".into(), 120);
    let deadline = Instant::now() + Duration::from_secs(30);
    while f.health().await["running"] != 1 {
        assert!(Instant::now() < deadline, "the run never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let frozen = Frozen::freeze(&pid);

    // Its peer's view (the registry) first: A's /health asks nothing of F's engine.
    let unavailable = until_state(a, &f_id, "unavailable", Duration::from_secs(30)).await;
    let asked = Instant::now();
    let state = state_of(f, &f_id, 30).await;
    let health_took = asked.elapsed();
    eprintln!(
        "engine frozen: the registry says its replica is unavailable after {unavailable:?}; \
         the replica's own /health answered {state:?} in {health_took:?}"
    );
    assert_eq!(state.as_deref(), Some("unavailable"));
    assert!(health_took < Duration::from_secs(10), "{health_took:?}");

    // Runs asked of F go to A, promptly, while its engine is frozen; A works as ever.
    let asked: Vec<_> = (0..3)
        .map(|i| execute_in_background(f, format!("print({i})"), 60))
        .collect();
    for (i, run) in asked.into_iter().enumerate() {
        let (status, served_by, body, took) = run.await.expect("join");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["stdout"], format!("{i}\n"), "{body}");
        assert_eq!(
            served_by.as_deref(),
            Some(a_id.as_str()),
            "sent to the peer"
        );
        eprintln!("a run asked of the frozen replica answered by its peer in {took:?}");
        assert!(took < Duration::from_secs(15), "{took:?}");
    }
    let (status, _, body, _) = execute_in_background(a, "print('a')".into(), 60)
        .await
        .expect("join");
    assert_eq!((status, &body["stdout"]), (200, &json!("a\n")), "{body}");
    // Nothing hangs: the run in flight ends (its answer depends on when the engine
    // stopped passing its output on), within its timeout and the removal's bound.
    let (status, _, body, took) = in_flight.await.expect("the run in flight answered");
    eprintln!("the run in flight at the freeze answered {status} after {took:?}: {body}");
    assert!(took < Duration::from_secs(60), "{took:?}");

    // With A full too, a run asked of F has nowhere to go: a prompt 503 naming why, not a
    // launch that waits out its bound on the frozen engine.
    let filling: Vec<_> = (0..4)
        .map(|_| execute_in_background(a, "import time; time.sleep(18)".into(), 60))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while running_in_registry(f, &a_id).await != Some(4) {
        assert!(
            Instant::now() < deadline,
            "A's four runs never showed in the registry"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // F's copy of the registry is read every second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _, body, took) = execute_in_background(f, "print('nowhere')".into(), 60)
        .await
        .expect("join");
    eprintln!(
        "with no room anywhere, a run asked of the frozen replica answered {status} in {took:?}"
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body.to_string().contains("engine does not answer"),
        "{body}"
    );
    // Its engine is asked once more first, for at most a second.
    assert!(took < Duration::from_secs(3), "{took:?}");
    for run in filling {
        // Closing the connection cancels the run: A's slots come free.
        run.abort();
    }

    drop(frozen);
    let thawed = Instant::now();
    let rejoined = until_state(f, &f_id, "alive", Duration::from_secs(60)).await;
    until_state(a, &f_id, "alive", Duration::from_secs(60)).await;
    eprintln!("engine thawed: the replica is alive again after {rejoined:?}");
    let (status, served_by, body, _) = execute_in_background(f, "print('back')".into(), 60)
        .await
        .expect("join");
    assert_eq!((status, &body["stdout"]), (200, &json!("back\n")), "{body}");
    assert_eq!(served_by, None, "served at F again, on its own engine");
    // What the freeze left on the engine goes: the pool's one container remains.
    let left = f.wait_containers_at_most(1, Duration::from_secs(60)).await;
    eprintln!(
        "leftovers of the freeze gone {:?} after the thaw ({} container(s) left: the pool)",
        thawed.elapsed(),
        left.len()
    );
    assert!(left.len() <= 1, "leftovers on the thawed engine: {left:?}");
    stop_all(servers).await;
}
