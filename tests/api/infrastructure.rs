//! Failing infrastructure: the Docker engine and the database go away and come back
//! (through proxies the tests cut, never the real daemons), and the server is stopped
//! with SIGTERM under load. Requests fail cleanly, /health says so, runbox recovers by
//! itself, and nothing is leaked.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{jwt, now, Options, Server, JWT_SECRET, POSTGRES_URL_VAR, TOKEN};
use crate::proxy::Proxy;

const DOCKER_SOCKET: &str = "/var/run/docker.sock";
const PLOT: &str = "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.savefig('p.png')\nprint('drew')";

/// The real engine's socket, from DOCKER_HOST when it names one.
fn docker_socket() -> PathBuf {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|host| host.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DOCKER_SOCKET))
}

async fn wait_health(server: &Server, status: u16, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (code, health) = server.get("/health", None).await;
        if code == status {
            return health;
        }
        assert!(
            Instant::now() < deadline,
            "/health is still {code} after {within:?}: {health}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A request that may fail while infrastructure is away: 200 with a result, or a 5xx
/// with a JSON error, never a hang or a broken connection.
fn assert_clean(what: &str, status: u16, body: &Value) {
    match status {
        200 => assert!(body.is_object(), "{what}: {body}"),
        503 | 504 => assert!(body["error"].is_string(), "{what}: {status} {body}"),
        other => panic!("{what}: unexpected {other} {body}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_docker_engine_goes_away_and_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("docker.sock");
    let mut proxy = Proxy::unix(socket.clone(), docker_socket()).await;
    let server = Server::start_with(Options {
        pool_size: 1,
        env: vec![("DOCKER_HOST".into(), format!("unix://{}", socket.display()))],
        ..Options::default()
    })
    .await;
    server.wait_pool_ready(1, Duration::from_secs(60)).await;
    let (status, body) = server.runcode("python", "print('before')", json!({})).await;
    assert_eq!((status, body), (200, json!({"output": "before\n"})));

    // Requests in flight when the engine goes.
    let mut in_flight = Vec::new();
    for _ in 0..3 {
        let client = server.client.clone();
        let url = server.url("/execute");
        in_flight.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(TOKEN)
                .json(&json!({"code": "import time\ntime.sleep(2)\n'done'", "timeout": 10}))
                .send()
                .await
                .expect("an answer, not a broken connection");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("JSON"))
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.containers().len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.stop().await;
    let away = Instant::now();

    for request in in_flight {
        let (status, body) = request.await.expect("request task");
        assert_clean("a request in flight", status, &body);
        if status == 200 {
            assert_eq!(body["value"], "done", "{body}");
        }
    }
    assert!(
        away.elapsed() < Duration::from_secs(15),
        "the requests in flight took {:?}",
        away.elapsed()
    );

    let health = wait_health(&server, 503, Duration::from_secs(10)).await;
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["docker"]["reachable"], false, "{health}");
    assert!(health["docker"]["error"].is_string());
    // New work while the engine is away: a clean 503 (the http transport may still
    // run it in a warm sandbox it reaches without the engine).
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = server
            .post("/execute", Some(TOKEN), &json!({"code": "1 + 1"}))
            .await;
        assert_clean("a request while the engine is away", status, &body);
        if crate::harness::transport() == "stdio" {
            assert_eq!(status, 503, "{body}");
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    // Away for a while: the pool's refill fails and backs off meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;

    proxy.start().await;
    let back = Instant::now();
    wait_health(&server, 200, Duration::from_secs(15)).await;
    let (status, body) = server.runcode("python", "print('after')", json!({})).await;
    assert_eq!((status, body), (200, json!({"output": "after\n"})));
    // That request took whatever the pool held; the pool refills by itself.
    server.wait_pool_ready(1, Duration::from_secs(45)).await;
    eprintln!(
        "serving with a refilled pool {:?} after the engine came back",
        back.elapsed()
    );
    let (status, body) = server.runcode("python", "print('warm')", json!({})).await;
    assert_eq!((status, body), (200, json!({"output": "warm\n"})));
    let left = server
        .wait_containers_at_most(1, Duration::from_secs(45))
        .await;
    assert!(
        left.len() <= 1,
        "containers left after the outage: {left:?}"
    );
    assert!(!server.log_tail().contains("panicked"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_goes_away_and_comes_back() {
    if std::env::var(POSTGRES_URL_VAR).is_ok_and(|url| !url.trim().is_empty()) {
        postgres_goes_away().await;
    } else {
        sqlite_refuses_writes().await;
    }
}

/// PostgreSQL through a TCP proxy that is cut and restored.
async fn postgres_goes_away() {
    let base = std::env::var(POSTGRES_URL_VAR).expect("postgres url");
    let url = reqwest::Url::parse(&base).expect("url");
    let host = url.host_str().expect("host").replace(['[', ']'], "");
    let address = tokio::net::lookup_host((host.as_str(), url.port().unwrap_or(5432)))
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let mut proxy = Proxy::tcp(address).await;
    let server = Server::start_with(Options {
        database_port: Some(proxy.port()),
        ..Options::default()
    })
    .await;
    let token = jwt(
        JWT_SECRET,
        &json!({"sub": "dbuser", "exp": now() + 600, "jti": "db1", "scope": "run"}),
    );
    let (status, body) = server.runcode("python", PLOT, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let image_url = body["images"]["p.png"].as_str().expect("image").to_string();
    let image_path = image_url[image_url.find("/image/").expect("path")..].to_string();
    assert_eq!(server.get(&image_path, None).await.0, 200);

    proxy.stop().await;
    let health = wait_health(&server, 503, Duration::from_secs(10)).await;
    assert_eq!(health["database"]["ok"], false, "{health}");
    assert_eq!(health["docker"]["reachable"], true, "{health}");
    // What needs the database fails with 503 JSON (after the pool's acquire timeout);
    // what does not, still works.
    let started = Instant::now();
    let print_one = json!({"languageType": "python", "variables": {}, "code": "print(1)"});
    let (jwt_run, image_run, stored_image) = tokio::join!(
        server.post("/runcode", Some(&token), &print_one),
        server.runcode("python", PLOT, json!({})),
        server.get(&image_path, None),
    );
    for (what, (status, body)) in [
        ("a JWT (revocation check)", jwt_run),
        ("storing an image", image_run),
        ("reading an image", stored_image),
    ] {
        assert_eq!(status, 503, "{what}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("database"),
            "{what}: {body}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    let (status, body) = server.runcode("python", "print('no db')", json!({})).await;
    assert_eq!((status, body), (200, json!({"output": "no db\n"})));

    proxy.start().await;
    wait_health(&server, 200, Duration::from_secs(15)).await;
    let (status, _) = server
        .post(
            "/runcode",
            Some(&token),
            &json!({"languageType": "python", "variables": {}, "code": "print(1)"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = server.runcode("python", PLOT, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["images"]["p.png"].is_string(), "{body}");
    assert_eq!(server.get(&image_path, None).await.0, 200);
    assert!(!server.log_tail().contains("panicked"));
    server.stop().await;
}

/// SQLite cannot be unplugged; the nearest failure is a database that refuses writes
/// (another process holds its write lock past the busy timeout).
async fn sqlite_refuses_writes() {
    use sqlx::Connection;
    let server = Server::start().await;
    let path = server.data_dir().join("runbox.db");
    let mut locker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open the database");
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .expect("take the write lock");

    let started = Instant::now();
    let (status, body) = server.runcode("python", PLOT, json!({})).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("database"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let (status, body) = server.runcode("python", "print('no db')", json!({})).await;
    assert_eq!((status, body), (200, json!({"output": "no db\n"})));

    sqlx::query("ROLLBACK")
        .execute(&mut locker)
        .await
        .expect("release");
    locker.close().await.expect("close");
    let (status, body) = server.runcode("python", PLOT, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["images"]["p.png"].is_string(), "{body}");
    assert!(!server.log_tail().contains("panicked"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_then_kills_what_is_left() {
    let mut server = Server::start_with(Options {
        // Warm sandboxes for all five runs, so that they all start at once.
        pool_size: 5,
        env: vec![("RUNBOX_SERVER__SHUTDOWN_GRACE".into(), "5s".into())],
        ..Options::default()
    })
    .await;
    server.wait_pool_ready(5, Duration::from_secs(90)).await;
    let send = |code: &'static str| {
        let request = server
            .client
            .post(server.url("/execute"))
            .bearer_auth(TOKEN)
            .json(&json!({"code": code, "timeout": 120}));
        tokio::spawn(async move {
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    Ok((
                        status,
                        response.json::<Value>().await.unwrap_or(Value::Null),
                    ))
                }
                Err(err) => Err(err.to_string()),
            }
        })
    };
    let short: Vec<_> = (0..3)
        .map(|_| send("import time\ntime.sleep(2)\n'finished'"))
        .collect();
    let long: Vec<_> = (0..2)
        .map(|_| send("import time\ntime.sleep(600)"))
        .collect();
    // All five run code (their sandboxes are up) before the signal.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, health) = server.get("/health", None).await;
        if health["pool"]["in_use"].as_u64() >= Some(5) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the runs did not start: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = server.base.clone();

    let started = Instant::now();
    let status = tokio::task::block_in_place(|| server.terminate(Duration::from_secs(30)))
        .unwrap_or_else(|| panic!("the server did not exit\n{}", server.log_tail()));
    let took = started.elapsed();
    eprintln!("SIGTERM: exited {status} after {took:?}");
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}");
    assert!(
        server.containers().is_empty(),
        "containers left: {:?}",
        server.containers()
    );

    // Runs that end within the grace are answered as usual.
    for request in short {
        let (status, body) = request.await.expect("task").expect("answered");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["value"], "finished", "{body}");
    }
    // Runs still going at the end of the grace are stopped with a clean answer.
    for request in long {
        let (status, body) = request.await.expect("task").expect("answered");
        assert_eq!(status, 503, "{body}");
        assert!(body["error"].is_string(), "{body}");
    }
    assert!(
        reqwest::get(format!("{base}/health")).await.is_err(),
        "nothing listens any more"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runtime_that_is_not_installed_is_reported() {
    // gVisor's runsc cannot be installed here: the configured runtime is missing,
    // which /health, `runbox doctor` and the requests all say plainly.
    let server = Server::start_with(Options {
        sandbox_yaml: "runtime: runsc".into(),
        ..Options::default()
    })
    .await;
    let (status, health) = server.get("/health", None).await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["runtime"]["name"], "runsc");
    assert_eq!(health["runtime"]["installed"], false, "{health}");
    assert_eq!(health["docker"]["reachable"], true);

    let (status, body) = server
        .post("/execute", Some(TOKEN), &json!({"code": "1"}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap_or_default().contains("runsc"),
        "{body}"
    );

    let doctor = std::process::Command::new(crate::harness::binary())
        .args([
            "--config",
            &server.data_dir().join("config.yaml").display().to_string(),
            "doctor",
        ])
        .output()
        .expect("runbox doctor");
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(!doctor.status.success(), "{report}");
    assert!(
        report.contains("FAIL  runtime: sandbox.runtime runsc is not installed"),
        "{report}"
    );
    server.stop().await;
}
