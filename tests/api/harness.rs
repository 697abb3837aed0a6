#![allow(dead_code)] // Shared by many test modules; not each uses every helper.

//! Starts the real `runbox` binary on port 0 against real Docker and a real database,
//! and talks to it with a real HTTP client. Every server is stopped (and its containers
//! removed) when its test ends, also when the test fails.
//!
//! Longer than most files (about 700 lines) on purpose: it is the one harness every
//! test module shares, and splitting it would scatter what a reader of a failing test
//! needs to see in one place (how the server was started, configured and stopped).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const TOKEN: &str = "114514";
/// A second static token with its own subject, for ownership checks.
pub const OTHER_TOKEN: &str = "other-subject-token";
pub const JWT_SECRET: &str = "runbox-test-secret";
pub const POSTGRES_URL_VAR: &str = "RUNBOX_TEST_POSTGRES_URL";
pub const TRANSPORT_VAR: &str = "RUNBOX_TEST_TRANSPORT";
/// A CA bundle for pip in environment builds (TLS-intercepting proxies); default: the
/// system bundle when there is one.
pub const PIP_CA_BUNDLE_VAR: &str = "RUNBOX_TEST_PIP_CA_BUNDLE";
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

const START_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(40);

/// How a test server is configured beyond the defaults below.
#[derive(Clone, Debug)]
pub struct Options {
    pub pool_size: usize,
    pub preload: Vec<String>,
    /// Extra YAML appended to the generated config (top-level keys).
    pub extra_yaml: String,
    pub limits_yaml: String,
    pub sandbox_yaml: String,
    pub max_concurrent_runs: usize,
    pub max_wait: &'static str,
    /// `limits.timeout`: the wall-clock limit of a run that names none.
    pub timeout: &'static str,
    /// `sandbox.transport` for this server; `None`: RUNBOX_TEST_TRANSPORT (default stdio).
    pub transport: Option<&'static str>,
    /// How many ports of this server's slice `sandbox.port_range` spans (at most 40).
    pub port_count: Option<u16>,
    /// Extra environment of the server process (e.g. `DOCKER_HOST` to reach the engine
    /// through a proxy the test controls).
    pub env: Vec<(String, String)>,
    /// PostgreSQL only: reach the database on this local port instead of its own (a
    /// proxy the test can cut).
    pub database_port: Option<u16>,
    /// Use this database instead of a fresh one of its own: servers started with the
    /// same one are replicas of one service. Its owner drops it: a [`SharedDatabase`],
    /// or the first server when it is that server's `database_url`.
    pub shared_database: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pool_size: 0,
            preload: Vec::new(),
            extra_yaml: String::new(),
            limits_yaml: String::new(),
            sandbox_yaml: String::new(),
            max_concurrent_runs: 8,
            max_wait: "20s",
            timeout: "20s",
            transport: None,
            port_count: None,
            env: Vec::new(),
            database_port: None,
            shared_database: None,
        }
    }
}

pub struct Server {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    pub base: String,
    pub client: reqwest::Client,
    pub instance: String,
    pub dir: PathBuf,
    pub database_url: String,
    config_path: PathBuf,
    log_path: PathBuf,
    env: Vec<(String, String)>,
    _tempdir: Option<tempfile::TempDir>,
    pg_schema: Option<String>,
}

/// Fails the test (never skips it) when Docker is not there.
pub fn require_docker() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let ok = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "these tests need a running Docker engine that this user may use (`docker info` failed)"
        );
    });
}

/// Builds the sandbox image once per test process, before any server starts, so that
/// servers started in parallel never build it concurrently.
pub fn ensure_image() {
    sandbox_image();
}

/// The sandbox image (built once per test process).
pub fn sandbox_image() -> &'static str {
    static BUILT: OnceLock<String> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!("data_dir: {:?}\n", dir.path().display().to_string()),
        )
        .expect("write config");
        let output = Command::new(binary())
            .args(["--config", &config.display().to_string(), "image", "build"])
            .output()
            .expect("run runbox image build");
        assert!(
            output.status.success(),
            "runbox image build failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .expect("runbox image build prints the image")
            .trim()
            .to_string()
    })
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_runbox")
}

/// `pip.extra_ca_bundle` of the test servers.
pub fn pip_ca_bundle() -> String {
    match std::env::var(PIP_CA_BUNDLE_VAR) {
        Ok(path) => path,
        Err(_) if Path::new(SYSTEM_CA_BUNDLE).exists() => SYSTEM_CA_BUNDLE.to_string(),
        Err(_) => String::new(),
    }
}

/// `sandbox.runtime` of the test servers: RUNBOX_TEST_RUNTIME (e.g. crun or runsc, on a
/// test engine that has it), else the engine's default.
pub fn test_runtime() -> String {
    std::env::var("RUNBOX_TEST_RUNTIME").unwrap_or_default()
}

/// Whether the test runtime gives sandboxes a kernel of their own (gVisor): some attacks
/// then fail otherwise than under Linux (see SECURITY.md, "Tiers and attacks").
pub fn test_runtime_has_own_kernel() -> bool {
    test_runtime() == "runsc"
}

pub fn transport() -> String {
    std::env::var(TRANSPORT_VAR).unwrap_or_else(|_| "stdio".into())
}

pub fn next_port_range() -> (u16, u16) {
    // Each server of this process leases from its own slice, shifted by the pid so that
    // two test processes rarely overlap (a collision is retried by runbox anyway). All
    // slices stay in 20000-31999, below the kernel's ephemeral ports (32768 and up by
    // default): there the source port of any local connection (the server's own
    // database connections, say) can hold a leased port, and a test with a one-port
    // range then fails for a reason that is not its own.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let slot = NEXT.fetch_add(1, Ordering::SeqCst) % 150;
    let shift = (std::process::id() % 2) as u16 * 6_000;
    let start = 20_000 + shift + slot * 40;
    (start, start + 39)
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Server {
        let mut server = Server::configure(options).await;
        server.spawn();
        server
    }

    /// A server's data dir, database and configuration, not started yet.
    pub async fn configure(options: Options) -> Server {
        let tempdir = tempfile::tempdir().expect("tempdir");
        let dir = tempdir.path().to_path_buf();
        let instance = format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let (mut database_url, pg_schema) = match &options.shared_database {
            Some(url) => (url.clone(), None),
            None => database_for_test(&dir).await,
        };
        if let (Some(port), Some(_)) = (options.database_port, &pg_schema) {
            let mut url = reqwest::Url::parse(&database_url).expect("database url");
            url.set_port(Some(port)).expect("set port");
            database_url = url.to_string();
        }
        let (port_start, mut port_end) = next_port_range();
        if let Some(count) = options.port_count {
            port_end = port_end.min(port_start + count.max(1) - 1);
        }
        let preload = serde_json::to_string(&options.preload).expect("json");
        let config = format!(
            r#"server:
  host: 127.0.0.1
  port: 0
  shutdown_grace: 10s
auth:
  tokens:
    - "{TOKEN}"
    - token: "{OTHER_TOKEN}"
      subject: other
  jwt_secret: "{JWT_SECRET}"
database:
  url: "{database_url}"
data_dir: {dir:?}
sandbox:
  transport: {transport}
{runtime}  instance: {instance}
  port_range: {{start: {port_start}, end: {port_end}}}
  pool:
    size: {pool}
  preload: {preload}
{sandbox_extra}
limits:
  timeout: {timeout}
{limits_extra}
admission:
  max_concurrent_runs: {max_runs}
  max_wait: {max_wait}
pip:
  extra_ca_bundle: {ca_bundle:?}
{extra}
"#,
            dir = dir.display().to_string(),
            transport = options
                .transport
                .map(str::to_string)
                .unwrap_or_else(transport),
            pool = options.pool_size,
            // A test that sets its own runtime keeps it.
            runtime = if options.sandbox_yaml.contains("runtime:") {
                String::new()
            } else {
                format!("  runtime: \"{}\"\n", test_runtime())
            },
            sandbox_extra = indent(&options.sandbox_yaml),
            limits_extra = indent(&options.limits_yaml),
            max_runs = options.max_concurrent_runs,
            max_wait = options.max_wait,
            timeout = options.timeout,
            ca_bundle = pip_ca_bundle(),
            extra = options.extra_yaml,
        );
        let config_path = dir.join("config.yaml");
        std::fs::write(&config_path, config).expect("write config");
        Server {
            child: None,
            stdin: None,
            base: String::new(),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
            instance,
            dir: dir.clone(),
            database_url,
            config_path,
            log_path: dir.join("server.log"),
            env: options.env.clone(),
            _tempdir: Some(tempdir),
            pg_schema,
        }
    }

    /// Starts (or restarts, after [`Server::kill9`]) the process on the same data dir,
    /// database and instance.
    pub fn spawn(&mut self) {
        if let Err(why) = self.try_spawn() {
            panic!("{why}");
        }
    }

    /// Starts the process; Err with its log when it exits before it listens.
    pub fn try_spawn(&mut self) -> Result<(), String> {
        require_docker();
        ensure_image();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        let mut child = Command::new(binary())
            .args([
                "--config",
                &self.config_path.display().to_string(),
                "serve",
                "--stop-on-stdin-eof",
            ])
            .env("RUST_LOG", "info,runbox_sandbox=debug")
            .env_remove("RUNBOX_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start runbox");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("runbox listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        self.stdin = child.stdin.take();
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(url) = rx.recv_timeout(Duration::from_millis(100)) {
                self.base = url;
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "runbox exited during start-up ({status}):\n{}",
                        self.log_tail()
                    ));
                }
            }
            assert!(
                Instant::now() < deadline,
                "runbox did not start within {START_TIMEOUT:?}:\n{}",
                self.log_tail()
            );
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        decode(response).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self.client.put(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        decode(request.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        decode(request.send().await.expect("request")).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.client.delete(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        decode(request.send().await.expect("request")).await
    }

    /// `POST /runcode` with the compatibility token.
    pub async fn runcode(&self, language: &str, code: &str, variables: Value) -> (u16, Value) {
        let mut body = runcode_body(language, code);
        body["variables"] = variables;
        self.post("/runcode", Some(TOKEN), &body).await
    }

    /// `POST path` with the compatibility token, sent from a task of its own so that the
    /// test can look at the server while the request runs.
    pub fn post_in_background(
        &self,
        path: &str,
        body: &Value,
    ) -> tokio::task::JoinHandle<(u16, Value)> {
        let request = self
            .client
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(body);
        tokio::spawn(async move { decode(request.send().await.expect("request")).await })
    }

    /// [`Server::runcode`] without variables, in the background.
    pub fn runcode_in_background(
        &self,
        language: &str,
        code: &str,
    ) -> tokio::task::JoinHandle<(u16, Value)> {
        self.post_in_background("/runcode", &runcode_body(language, code))
    }

    /// Ids of this server's containers (any state), on its engine.
    pub fn containers(&self) -> Vec<String> {
        containers_with_label_on(self.engine(), &format!("runbox.instance={}", self.instance))
    }

    /// The engine this server drives when it is not the test's own (`DOCKER_HOST` in
    /// its environment).
    pub fn engine(&self) -> Option<&str> {
        self.env
            .iter()
            .find(|(name, _)| name == "DOCKER_HOST")
            .map(|(_, value)| value.as_str())
    }

    /// Waits until this server has no container but its warm pool (kind=pool is not
    /// enough: a request takes its container from the pool), i.e. until at most
    /// `allowed` containers are left, for at most `within`.
    pub async fn wait_containers_at_most(&self, allowed: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = self.containers();
            if left.len() <= allowed || Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `/health` reports at least `wanted` warm containers ready, for at
    /// most `within`.
    pub async fn wait_pool_ready(&self, wanted: u64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let (_, health) = self.get("/health", None).await;
            let ready = health["pool"]["ready"].as_u64().unwrap_or(0);
            if ready >= wanted {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the pool has {ready} of {wanted} ready after {within:?}: {health}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: nothing of runbox's shutdown runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stdin = None;
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then waits up to `within` for the process to exit; its exit status, or
    /// `None` when it did not exit in time (it is then killed).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + within;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        self.stdin = None;
        status
    }

    /// The server process's resident memory (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.pid().expect("the server runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// File descriptors the server process holds open.
    pub fn open_fds(&self) -> usize {
        let pid = self.pid().expect("the server runs");
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|entries| entries.count())
            .unwrap_or(0)
    }

    /// Graceful stop; then asserts that no container of this server is left.
    pub async fn stop(mut self) {
        self.stop_process();
        let left = self.containers();
        let log = self.log_tail();
        if let Some(schema) = self.pg_schema.take() {
            drop_schema(&schema).await;
        }
        assert!(
            left.is_empty(),
            "containers left after stop: {left:?}\n{log}"
        );
    }

    fn stop_process(&mut self) {
        // Closing stdin is the stop signal (--stop-on-stdin-eof).
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }

    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(60);
        format!("--- server log (tail) ---\n{}", lines[start..].join("\n"))
    }

    /// GET /health, parsed.
    pub async fn health(&self) -> Value {
        self.get("/health", None).await.1
    }

    /// Waits until /health says the pool holds exactly `ready` sandboxes, for at most
    /// `within`; returns the last /health body (the caller asserts on it).
    pub async fn health_once_pool_holds(&self, ready: u64, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let health = self.health().await;
            if health["pool"]["ready"].as_u64() == Some(ready) || Instant::now() >= deadline {
                return health;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The whole server log so far (every start of this server).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let was_running = self.child.is_some();
        self.stop_process();
        // Backstop: whatever the server did not remove goes now.
        remove_containers_on(self.engine(), &self.containers());
        if was_running && std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// Removes these containers with force, quietly: a test's backstop on every path.
pub fn remove_containers(ids: &[String]) {
    remove_containers_on(None, ids)
}

/// `docker`, on `engine` when given (else the test's own, `DOCKER_HOST` or the default).
fn docker_on(engine: Option<&str>) -> Command {
    let mut docker = Command::new("docker");
    if let Some(engine) = engine {
        docker.args(["-H", engine]);
    }
    docker
}

/// [`remove_containers`] on `engine`.
pub fn remove_containers_on(engine: Option<&str>, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let _ = docker_on(engine)
        .args(["rm", "-f"])
        .args(ids)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub fn containers_with_label(label: &str) -> Vec<String> {
    containers_with_label_on(None, label)
}

/// [`containers_with_label`] on `engine`.
pub fn containers_with_label_on(engine: Option<&str>, label: &str) -> Vec<String> {
    let output = docker_on(engine)
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label={label}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Each of `ids` on `engine` with its kind label and state, for a failure's message.
pub fn describe_containers_on(engine: Option<&str>, ids: &[String]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    let output = docker_on(engine)
        .args([
            "inspect",
            "--format",
            "{{.Id}} kind={{index .Config.Labels \"runbox.kind\"}} {{.State.Status}} since {{.State.StartedAt}} (finished {{.State.FinishedAt}})",
        ])
        .args(ids)
        .output()
        .expect("docker inspect");
    let mut described = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if described.is_empty() {
        described = format!("{ids:?} (gone by the time they were inspected)");
    }
    described
}

/// The body of `POST /runcode` as the original's clients send it.
fn runcode_body(language: &str, code: &str) -> Value {
    serde_json::json!({"languageType": language, "variables": {}, "code": code})
}

async fn decode(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

fn indent(yaml: &str) -> String {
    yaml.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// SQLite in the test's data dir, or a fresh schema of the PostgreSQL server named by
/// RUNBOX_TEST_POSTGRES_URL.
async fn database_for_test(dir: &Path) -> (String, Option<String>) {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(base) if !base.trim().is_empty() => {
            let schema = format!("runbox_e2e_{}", uuid::Uuid::new_v4().simple());
            let admin = sqlx::PgPool::connect(&base)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}: {e}"));
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&admin)
                .await
                .expect("create schema");
            admin.close().await;
            let separator = if base.contains('?') { '&' } else { '?' };
            (
                format!("{base}{separator}options[search_path]={schema}"),
                Some(schema),
            )
        }
        _ => (
            format!("sqlite://{}", dir.join("runbox.db").display()),
            None,
        ),
    }
}

/// One PostgreSQL database (a fresh schema) for several servers: replicas of one
/// service. The test drops it once its servers have stopped.
/// Whether a test of replicas can run: they share PostgreSQL. RUNBOX_TEST_POSTGRES_URL
/// unset, the test fails (it needs PostgreSQL); set but empty (the SQLite pass of the
/// suite), it is skipped and says so.
pub fn replicas_can_share_a_database(test: &str) -> bool {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if url.trim().is_empty() => {
            eprintln!(
                "skipped {test}: replicas share PostgreSQL, and {POSTGRES_URL_VAR} is empty \
                 (the SQLite pass)"
            );
            false
        }
        Ok(_) => true,
        Err(_) => panic!(
            "{test} needs PostgreSQL: export {POSTGRES_URL_VAR}=\"$(scripts/start-test-postgres.sh)\" \
             (set it empty to skip the tests that need it)"
        ),
    }
}

pub struct SharedDatabase {
    pub url: String,
    schema: String,
}

impl SharedDatabase {
    /// A fresh schema of RUNBOX_TEST_POSTGRES_URL's server, or `None` when the test is
    /// skipped ([`replicas_can_share_a_database`]).
    pub async fn create(test: &str) -> Option<SharedDatabase> {
        if !replicas_can_share_a_database(test) {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, schema) = database_for_test(dir.path()).await;
        Some(SharedDatabase {
            url,
            schema: schema.expect("a PostgreSQL schema"),
        })
    }

    pub async fn remove(self) {
        drop_schema(&self.schema).await;
    }
}

async fn drop_schema(schema: &str) {
    let Ok(base) = std::env::var(POSTGRES_URL_VAR) else {
        return;
    };
    if let Ok(admin) = sqlx::PgPool::connect(&base).await {
        let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&admin)
            .await;
        admin.close().await;
    }
}

/// A JWT signed with `secret` carrying `claims` (for expiry and forgery cases).
pub fn jwt(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Runs one of the headless-Chromium checks in scripts/ (`docs-check.py`,
/// `playground-check.py`) against `server`, keeping its screenshot in artifacts/, and
/// fails with `failure` and the script's output unless it passes. Exit code 2 is the
/// scripts' "no Chromium here".
pub async fn run_browser_check(server: &Server, script: &str, screenshot: &str, failure: &str) {
    let root = env!("CARGO_MANIFEST_DIR");
    let screenshot = format!("{root}/artifacts/{screenshot}");
    let output = tokio::process::Command::new("python3")
        .arg(format!("{root}/scripts/{script}"))
        .args([
            "--url",
            &server.base,
            "--token",
            TOKEN,
            "--screenshot",
            &screenshot,
        ])
        .output()
        .await
        .expect("python3 runs the check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code() != Some(2),
        "headless Chromium is needed for this test (Debian: apt-get install chromium): {stderr}"
    );
    assert!(output.status.success(), "{failure}:\n{stdout}\n{stderr}");
}
