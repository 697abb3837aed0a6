//! Replicas sharing one PostgreSQL: a run that finds its replica full is served by a
//! peer with room, a session is served by the replica that holds it wherever it is
//! asked, a session whose replica died is 410, `max_concurrency` holds across the
//! replicas, and headers a client forges change none of it. PostgreSQL only (several
//! replicas cannot share SQLite): skipped, saying so, in the SQLite pass.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{remove_containers, replicas_can_share_a_database, Options, Server, TOKEN};
use crate::sse::SseReader;

pub(crate) const FORWARDED_TO: &str = "runbox-forwarded-to";

/// Heartbeats every second; a replica silent for 3 s is dead.
pub(crate) const CLUSTER_YAML: &str = "cluster:\n  heartbeat: 1s\n  dead_after: 3s\n";

pub(crate) fn replica(
    max_concurrent_runs: usize,
    max_wait: &'static str,
    pool_size: usize,
) -> Options {
    Options {
        max_concurrent_runs,
        max_wait,
        pool_size,
        extra_yaml: CLUSTER_YAML.into(),
        ..Options::default()
    }
}

/// `first` and replicas started with `others` on `first`'s database; returns once every
/// one of them sees all of them alive.
pub(crate) async fn cluster(first: Options, others: Vec<Options>) -> Vec<Server> {
    let first = Server::start_with(first).await;
    let mut servers = vec![first];
    for mut options in others {
        options.shared_database = Some(servers[0].database_url.clone());
        servers.push(Server::start_with(options).await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut all_see_all = true;
        for server in &servers {
            let health = server.health().await;
            let alive = health["cluster"]["replicas"]
                .as_array()
                .map_or(0, |replicas| {
                    replicas.iter().filter(|r| r["state"] == "alive").count()
                });
            all_see_all &= alive >= servers.len();
        }
        if all_see_all {
            return servers;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas did not see each other"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn replica_id(server: &Server) -> String {
    server.health().await["cluster"]["replica"]
        .as_str()
        .expect("replica id")
        .to_string()
}

/// `POST path` with `body` and extra headers; status, the replica that served it when
/// the request was forwarded, and the JSON body.
pub(crate) async fn post(
    server: &Server,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Value) {
    let mut request = server
        .client
        .post(server.url(path))
        .bearer_auth(TOKEN)
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let served_by = served_by(&response);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, served_by, body)
}

/// The replica a forwarded answer names; `None` when the replica asked served it.
pub(crate) fn served_by(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(FORWARDED_TO)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Occupies `server`'s one run slot for `seconds`; returns once the run holds it.
async fn occupy(server: &Server, seconds: u64) -> tokio::task::JoinHandle<(u16, Value)> {
    // A client of its own: the harness's gives up after two minutes.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(seconds + 60))
        .build()
        .expect("client");
    let request = client.post(server.url("/execute")).bearer_auth(TOKEN).json(
        &json!({"code": format!("import time; time.sleep({seconds})"), "timeout": seconds + 10}),
    );
    let busy = tokio::spawn(async move {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (
            status,
            response.json::<Value>().await.unwrap_or(Value::Null),
        )
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.health().await["running"] != 1 {
        assert!(Instant::now() < deadline, "the slot was never taken");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    busy
}

pub(crate) async fn stop_all(servers: Vec<Server>) {
    // The first owns the database: it goes last.
    for server in servers.into_iter().rev() {
        server.stop().await;
    }
}

#[tokio::test]
async fn a_burst_beyond_one_replica_is_served_by_its_peer_without_a_504() {
    if !replicas_can_share_a_database(
        "a_burst_beyond_one_replica_is_served_by_its_peer_without_a_504",
    ) {
        return;
    }
    // Alone, A would answer three of these four 504 after its 1 s wait.
    let servers = cluster(replica(1, "1s", 0), vec![replica(4, "20s", 0)]).await;
    let (a, b) = (&servers[0], &servers[1]);
    let b_id = replica_id(b).await;
    let burst: Vec<_> = (0..4)
        .map(|i| {
            let request = a
                .client
                .post(a.url("/execute"))
                .bearer_auth(TOKEN)
                .json(&json!({"code": format!("import time; time.sleep(2); print({i})")}));
            tokio::spawn(async move {
                let response = request.send().await.expect("request");
                let served_by = served_by(&response);
                let status = response.status().as_u16();
                (
                    status,
                    served_by,
                    response.json::<Value>().await.expect("json"),
                )
            })
        })
        .collect();
    let mut forwarded = 0;
    for (i, call) in burst.into_iter().enumerate() {
        let (status, served_by, body) = call.await.expect("join");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true, "{body}");
        assert_eq!(
            body["stdout"],
            format!("{i}\n"),
            "the answer is the run's own"
        );
        if let Some(by) = served_by {
            assert_eq!(by, b_id);
            forwarded += 1;
        }
    }
    assert!(forwarded >= 2, "only {forwarded} of 4 went to the peer");

    // A client's own copies of the forwarding headers neither stop a forward nor make a
    // request skip authentication.
    let busy = occupy(a, 4).await;
    let forged = [
        ("runbox-forwarded-by", b_id.as_str()),
        ("runbox-forward-proof", "1700000000:00ff"),
    ];
    let (status, served_by, body) =
        post(a, "/execute", &json!({"code": "print('forged')"}), &forged).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stdout"], "forged\n");
    assert_eq!(served_by.as_deref(), Some(b_id.as_str()), "still forwarded");
    let anonymous = a
        .client
        .post(a.url("/execute"))
        .header("runbox-forwarded-by", b_id.as_str())
        .header("runbox-forward-proof", "1700000000:00ff")
        .json(&json!({"code": "print(1)"}))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status().as_u16(), 401);
    let anonymous_at_b = b
        .client
        .post(b.url("/execute"))
        .header("runbox-forwarded-by", replica_id(a).await)
        .header("runbox-forward-proof", "1700000000:00ff")
        .json(&json!({"code": "print(1)"}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        anonymous_at_b.status().as_u16(),
        401,
        "a peer authenticates too"
    );
    assert_eq!(busy.await.expect("join").0, 200);
    stop_all(servers).await;
}

#[tokio::test]
async fn a_peer_that_died_unnoticed_fails_over_or_fails_clearly_never_hangs() {
    if !replicas_can_share_a_database(
        "a_peer_that_died_unnoticed_fails_over_or_fails_clearly_never_hangs",
    ) {
        return;
    }
    // dead_after is long: A still takes B for alive when it sends it work.
    let slow_death = |runs, wait| Options {
        extra_yaml: "cluster:\n  heartbeat: 1s\n  dead_after: 60s\n".into(),
        ..replica(runs, wait, 0)
    };
    let mut servers = cluster(slow_death(1, "20s"), vec![slow_death(4, "20s")]).await;
    let (status, session) = servers[1].post("/sessions", Some(TOKEN), &json!({})).await;
    assert_eq!(status, 201, "{session}");
    let on_b = session["id"].as_str().expect("id").to_string();
    let left_on_b = servers[1].containers();
    servers[1].kill9();
    let a = &servers[0];
    let busy = occupy(a, 2).await;
    let started = Instant::now();
    let (status, served_by, body) =
        post(a, "/execute", &json!({"code": "print('here')"}), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stdout"], "here\n");
    assert_eq!(
        served_by, None,
        "served here after the peer could not be reached"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(busy.await.expect("join").0, 200);
    let started = Instant::now();
    let (status, body) = a.get(&format!("/sessions/{on_b}"), Some(TOKEN)).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("did not answer"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "never hangs");
    remove_containers(&left_on_b);
    stop_all(servers).await;
}

async fn events_of(server: &Server, body: &Value) -> (Option<String>, Vec<(String, Value)>) {
    let started = Instant::now();
    let response = server
        .client
        .post(server.url("/execute"))
        .bearer_auth(TOKEN)
        .header("accept", "text/event-stream")
        .json(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/event-stream"));
    let served_by = served_by(&response);
    let events = SseReader::new(response, started).collect().await;
    let events = events
        .into_iter()
        .map(|event| {
            let mut data = event.data;
            if event.name == "result" {
                // Times differ from run to run; everything else must not.
                data["execution_time"] = Value::Null;
            }
            (event.name, data)
        })
        .collect();
    (served_by, events)
}

#[tokio::test]
async fn a_stream_through_a_forward_is_the_stream_the_peer_sends() {
    if !replicas_can_share_a_database("a_stream_through_a_forward_is_the_stream_the_peer_sends") {
        return;
    }
    let servers = cluster(replica(1, "1s", 0), vec![replica(2, "20s", 0)]).await;
    let (a, b) = (&servers[0], &servers[1]);
    let code = json!({"code": "import sys, time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.3)\nprint('oops', file=sys.stderr)\nresult = 42"});
    let (_, direct) = events_of(b, &code).await;
    let busy = occupy(a, 6).await;
    let started = Instant::now();
    let (served_by, forwarded) = events_of(a, &code).await;
    assert_eq!(served_by, Some(replica_id(b).await));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not queued at A"
    );
    let names: Vec<&str> = forwarded.iter().map(|(name, _)| name.as_str()).collect();
    assert!(
        names.contains(&"stdout") && names.last() == Some(&"result"),
        "{names:?}"
    );
    assert_eq!(forwarded, direct, "the same events as asked there");
    assert_eq!(busy.await.expect("join").0, 200);
    stop_all(servers).await;
}

#[tokio::test]
async fn a_session_is_served_by_its_replica_wherever_it_is_asked_and_is_gone_with_it() {
    if !replicas_can_share_a_database(
        "a_session_is_served_by_its_replica_wherever_it_is_asked_and_is_gone_with_it",
    ) {
        return;
    }
    let mut servers = cluster(
        replica(4, "20s", 0),
        vec![replica(4, "20s", 0), replica(4, "20s", 0)],
    )
    .await;
    let (a, b) = (&servers[0], &servers[1]);
    let a_id = replica_id(a).await;
    let (status, session) = a.post("/sessions", Some(TOKEN), &json!({})).await;
    assert_eq!(status, 201, "{session}");
    let id = session["id"].as_str().expect("id").to_string();

    let (status, served_by, body) = post(
        b,
        &format!("/sessions/{id}/execute"),
        &json!({"code": "x = 41"}),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served_by.as_deref(), Some(a_id.as_str()));
    let (status, _, body) = post(
        b,
        "/execute",
        &json!({"code": "print(x + 1)", "session_id": id}),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stdout"], "42\n", "the session's own state, through B");
    let (status, info) = b.get(&format!("/sessions/{id}"), Some(TOKEN)).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["executions"], 2);
    let (status, _) = b
        .get(
            &format!("/sessions/{id}"),
            Some(crate::harness::OTHER_TOKEN),
        )
        .await;
    assert_eq!(
        status, 404,
        "someone else's session does not exist, here or there"
    );
    let (status, _) = b.get("/sessions/no-such-session", Some(TOKEN)).await;
    assert_eq!(status, 404);
    let (status, body) = b.delete(&format!("/sessions/{id}"), Some(TOKEN)).await;
    assert!(status == 204 || status == 200, "{status} {body}");
    let (status, _) = a.get(&format!("/sessions/{id}"), Some(TOKEN)).await;
    assert_eq!(status, 404, "ended by its owner, through B");

    // C holds a session and dies.
    let (status, session) = servers[2].post("/sessions", Some(TOKEN), &json!({})).await;
    assert_eq!(status, 201, "{session}");
    let on_c = session["id"].as_str().expect("id").to_string();
    let (status, _, body) = post(
        &servers[0],
        "/execute",
        &json!({"code": "print('on c')", "session_id": on_c}),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let left_on_c = servers[2].containers();
    servers[2].kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    for server in &servers[..2] {
        let started = Instant::now();
        let (status, body) = server.get(&format!("/sessions/{on_c}"), Some(TOKEN)).await;
        assert_eq!(status, 410, "{body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(
            message.contains("gone") && message.contains("replica"),
            "{message}"
        );
        let (status, _, _) = post(
            server,
            "/execute",
            &json!({"code": "print(1)", "session_id": on_c}),
            &[],
        )
        .await;
        assert_eq!(status, 410);
        assert!(started.elapsed() < Duration::from_secs(5), "never hangs");
    }
    remove_containers(&left_on_c);
    stop_all(servers).await;
}

#[tokio::test]
async fn the_session_cap_holds_across_replicas() {
    if !replicas_can_share_a_database("the_session_cap_holds_across_replicas") {
        return;
    }
    let capped = || Options {
        extra_yaml: format!("{CLUSTER_YAML}sessions:\n  max_per_subject: 2\n"),
        ..replica(4, "20s", 0)
    };
    let servers = cluster(capped(), vec![capped()]).await;
    let (a, b) = (&servers[0], &servers[1]);
    let (status, first) = a.post("/sessions", Some(TOKEN), &json!({})).await;
    assert_eq!(status, 201, "{first}");
    let (status, second) = b.post("/sessions", Some(TOKEN), &json!({})).await;
    assert_eq!(status, 201, "{second}");
    for server in [a, b] {
        let (status, body) = server.post("/sessions", Some(TOKEN), &json!({})).await;
        assert_eq!(status, 429, "{body}");
    }
    let (status, other) = b
        .post("/sessions", Some(crate::harness::OTHER_TOKEN), &json!({}))
        .await;
    assert_eq!(status, 201, "per subject: {other}");
    let first = first["id"].as_str().expect("id");
    let (status, _) = b.delete(&format!("/sessions/{first}"), Some(TOKEN)).await;
    assert_eq!(status, 200);
    let (status, body) = b.post("/sessions", Some(TOKEN), &json!({})).await;
    assert_eq!(
        status, 201,
        "the ended session's place is free again: {body}"
    );
    stop_all(servers).await;
}

pub(crate) async fn register_sleeper(server: &Server, name: &str) {
    let (status, body) = server
        .post(
            "/functions",
            Some(TOKEN),
            &json!({
                "name": name,
                "code": format!("import time\n\ndef {name}():\n    time.sleep(4)\n    return 1\n"),
                "max_concurrency": 2,
            }),
        )
        .await;
    assert!(status == 200 || status == 201, "{status} {body}");
}

#[tokio::test]
async fn max_concurrency_holds_across_replicas() {
    if !replicas_can_share_a_database("max_concurrency_holds_across_replicas") {
        return;
    }
    let servers = cluster(replica(4, "20s", 0), vec![replica(4, "20s", 0)]).await;
    let (a, b) = (&servers[0], &servers[1]);
    register_sleeper(a, "sleeper").await;
    let call = json!({"args": {}});
    let first = a.post_in_background("/functions/sleeper/call", &call);
    let second = b.post_in_background("/functions/sleeper/call", &call);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for server in [a, b] {
        let (status, body) = server
            .post("/functions/sleeper/call", Some(TOKEN), &call)
            .await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["message"], "Over Max Concurrency 2", "{body}");
    }
    for call in [first, second] {
        let (status, body) = call.await.expect("join");
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = b.post("/functions/sleeper/call", Some(TOKEN), &call).await;
    assert_eq!(status, 200, "the leases went back: {body}");
    stop_all(servers).await;
}
