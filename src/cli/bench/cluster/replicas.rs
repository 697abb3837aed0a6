//! The replicas a cluster bench measures: processes of this very binary (`runbox serve`)
//! on loopback ports, on one fresh schema of the PostgreSQL server the bench was given,
//! each with a sandbox instance and a slice of the port range of its own.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use runbox_core::config::{PortRange, StaticToken};
use runbox_core::Config;
use runbox_sandbox::Backend;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// How long a replica may take to listen (it checks the engine and the image first).
const START_WITHIN: Duration = Duration::from_secs(120);
/// How long a replica may take to stop once told (its shutdown grace and sweep).
const STOP_WITHIN: Duration = Duration::from_secs(60);

/// One `runbox serve` process the bench started.
pub(super) struct Replica {
    pub(super) base: String,
    /// Its id in the registry (`/health` `cluster.replica`).
    pub(super) id: String,
    pub(super) instance: String,
    child: Option<Child>,
    /// Closing it stops the replica gracefully (`serve --stop-on-stdin-eof`); it also
    /// goes when the bench itself dies, so no replica outlives it.
    stdin: Option<ChildStdin>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Replica {
    /// SIGKILL: nothing of its shutdown runs, its sandboxes stay on the engine.
    pub(super) async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.stdin = None;
    }

    /// Graceful stop; killed after `STOP_WITHIN`. Says so when it had to kill it.
    async fn stop(&mut self) -> Option<String> {
        self.stdin = None;
        let mut child = self.child.take()?;
        match tokio::time::timeout(STOP_WITHIN, child.wait()).await {
            Ok(_) => None,
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                Some(format!(
                    "replica {} did not stop within {} s and was killed",
                    self.instance,
                    STOP_WITHIN.as_secs()
                ))
            }
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// The replicas and the schema they share.
pub(super) struct Cluster {
    pub(super) replicas: Vec<Replica>,
    pub(super) token: String,
    schema: Schema,
}

/// A schema of its own on the bench's PostgreSQL server, dropped at the end.
struct Schema {
    admin_url: String,
    name: String,
    url: String,
}

impl Schema {
    async fn create(admin_url: &str, name: String) -> anyhow::Result<Schema> {
        let admin = sqlx::PgPool::connect(admin_url)
            .await
            .context("cannot connect to the bench's PostgreSQL")?;
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&admin)
            .await
            .with_context(|| format!("cannot create schema {name}"))?;
        admin.close().await;
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        Ok(Schema {
            admin_url: admin_url.to_string(),
            url: format!("{admin_url}{separator}options[search_path]={name}"),
            name,
        })
    }

    async fn drop(&self) -> Option<String> {
        let result = async {
            let admin = sqlx::PgPool::connect(&self.admin_url).await?;
            sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
                .execute(&admin)
                .await?;
            admin.close().await;
            Ok::<_, sqlx::Error>(())
        }
        .await;
        result
            .err()
            .map(|err| format!("schema {} was not dropped: {err}", self.name))
    }
}

/// What the replicas are to be.
pub(super) struct Plan<'a> {
    pub(super) config: &'a Config,
    pub(super) postgres_url: &'a str,
    pub(super) replicas: usize,
    /// `admission.max_concurrent_runs` of each.
    pub(super) slots: usize,
    pub(super) pool_size: usize,
    /// `bench-…`: the replicas' instances are `{prefix}-r{i}`.
    pub(super) prefix: &'a str,
}

impl Cluster {
    /// Starts the replicas and returns once each of them sees all of them alive. What
    /// was started is stopped again when a step fails.
    pub(super) async fn start(plan: Plan<'_>, engine: &dyn Backend) -> anyhow::Result<Cluster> {
        let schema_name = plan.prefix.replace('-', "_");
        let schema = Schema::create(plan.postgres_url, schema_name).await?;
        let mut cluster = Cluster {
            replicas: Vec::new(),
            token: format!("{}-token", plan.prefix),
            schema,
        };
        let started = cluster.start_all(&plan).await;
        if let Err(err) = started {
            cluster.tear_down(engine).await;
            return Err(err);
        }
        Ok(cluster)
    }

    async fn start_all(&mut self, plan: &Plan<'_>) -> anyhow::Result<()> {
        let ranges = split(plan.config.sandbox.port_range, plan.replicas)?;
        for (index, range) in ranges.into_iter().enumerate() {
            let config = replica_config(plan, index, range, &self.schema.url, &self.token);
            let replica = spawn(config).await?;
            self.replicas.push(replica);
        }
        let client = client(Duration::from_secs(10))?;
        let heartbeat = plan.config.cluster.heartbeat.0;
        let deadline = Instant::now() + Duration::from_secs(30) + heartbeat * 3;
        loop {
            let mut all_see_all = true;
            for replica in &mut self.replicas {
                let health = health(&client, &replica.base).await.unwrap_or_default();
                replica.id = health["cluster"]["replica"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let alive = health["cluster"]["replicas"].as_array().map_or(0, |all| {
                    all.iter().filter(|r| r["state"] == "alive").count()
                });
                all_see_all &= alive >= plan.replicas && !replica.id.is_empty();
            }
            if all_see_all {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!("the replicas did not see each other alive within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops every replica still running, removes the containers of every replica's
    /// instance (those a killed replica left), and drops the schema. What went wrong,
    /// and how many containers had to be removed, per instance.
    pub(super) async fn tear_down(&mut self, engine: &dyn Backend) -> TearDown {
        let mut notes = Vec::new();
        // The first replica made the schema's tables: it goes last.
        for replica in self.replicas.iter_mut().rev() {
            notes.extend(replica.stop().await);
        }
        let mut swept = Vec::new();
        for replica in &self.replicas {
            let removed = runbox_sandbox::sweep_instance(engine, &replica.instance)
                .await
                .unwrap_or_else(|err| {
                    notes.push(format!("sweeping {}: {err}", replica.instance));
                    0
                });
            swept.push((replica.instance.clone(), removed));
        }
        notes.extend(self.schema.drop().await);
        TearDown { swept, notes }
    }
}

/// What stopping the cluster left to clean.
#[derive(Debug, Default, serde::Serialize)]
pub(super) struct TearDown {
    /// Containers removed after the replicas stopped, per instance: a killed replica's
    /// sandboxes; 0 for the others when their own shutdown removed everything.
    pub(super) swept: Vec<(String, usize)>,
    pub(super) notes: Vec<String>,
}

/// The configuration of replica `index`: the bench's own, on the shared schema, on a
/// loopback port the system picks, with its instance, port slice and data dir.
fn replica_config(
    plan: &Plan<'_>,
    index: usize,
    ports: PortRange,
    database_url: &str,
    token: &str,
) -> Config {
    let mut config = plan.config.clone();
    // The original's keys were folded in when the bench read its configuration; read
    // again, they would override what follows (the port, the ports, the database).
    config.domain = None;
    config.interpreter_image = None;
    config.scheduler_port = None;
    config.host = None;
    config.interpreter_port_range = None;
    config.dependencies = None;
    config.resource_limits = None;
    config.timeout_seconds = None;
    config.postgres = None;
    config.mode = None;
    config.kubeconfig_path = None;
    config.k8s_interpreter_yaml = None;
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.server.public_url = String::new();
    config.cluster.advertise_url = String::new();
    config.database.url = database_url.to_string();
    config.sandbox.instance = format!("{}-r{index}", plan.prefix);
    config.sandbox.port_range = ports;
    config.sandbox.pool.size = plan.pool_size;
    config.admission.max_concurrent_runs = plan.slots;
    config.logging.level = "info".into();
    config
        .auth
        .tokens
        .push(StaticToken::Bare(token.to_string()));
    config
}

/// `range` cut into `parts` slices, one per replica (the http transport leases host
/// ports; replicas on one host must not lease the same ones).
fn split(range: PortRange, parts: usize) -> anyhow::Result<Vec<PortRange>> {
    let each = range.len() / parts.max(1);
    anyhow::ensure!(
        each >= 2,
        "sandbox.port_range {}-{} is too small for {parts} replicas",
        range.start,
        range.end
    );
    Ok((0..parts)
        .map(|i| {
            let start = range.start + (i * each) as u16;
            PortRange {
                start,
                end: start + each as u16 - 1,
            }
        })
        .collect())
}

/// Starts `runbox serve` on `config` and waits until it listens.
async fn spawn(mut config: Config) -> anyhow::Result<Replica> {
    let dir = tempfile::tempdir().context("cannot create a replica's data dir")?;
    config.data_dir = dir.path().join("data");
    let path = dir.path().join("config.yaml");
    // JSON is YAML: the configuration goes as it was resolved.
    let text = serde_json::to_string_pretty(&config)?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let log = dir.path().join("server.log");
    let stderr = std::fs::File::create(&log)?;
    let exe = std::env::current_exe().context("cannot find the runbox binary")?;
    let mut command = Command::new(exe);
    command
        .arg("--config")
        .arg(&path)
        .args(["serve", "--stop-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr);
    // The bench's own overrides are in the configuration already; again, they would
    // undo each replica's own database URL, instance and ports.
    for (name, _) in std::env::vars() {
        if name.starts_with("RUNBOX_") && name != "RUNBOX_JWT_SECRET" {
            command.env_remove(name);
        }
    }
    let mut child = command.spawn().context("cannot start a replica")?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().context("no stdout of the replica")?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let mut tx = Some(tx);
        // Read to the end, so that the replica never blocks on a full pipe.
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("runbox listening on ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        }
    });
    let mut replica = Replica {
        base: String::new(),
        id: String::new(),
        instance: config.sandbox.instance.clone(),
        child: Some(child),
        stdin,
        log,
        _dir: dir,
    };
    match tokio::time::timeout(START_WITHIN, rx).await {
        Ok(Ok(url)) => {
            replica.base = url;
            Ok(replica)
        }
        outcome => {
            let _ = replica.stop().await;
            let why = if outcome.is_err() {
                format!("did not listen within {} s", START_WITHIN.as_secs())
            } else {
                "exited during start-up".to_string()
            };
            anyhow::bail!(
                "replica {} {why}:\n{}",
                replica.instance,
                replica.log_tail()
            )
        }
    }
}

/// A client of the replicas (loopback only: no proxy).
pub(super) fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()?)
}

/// A replica's `/health`, whatever its status.
pub(super) async fn health(client: &reqwest::Client, base: &str) -> Option<Value> {
    let response = client.get(format!("{base}/health")).send().await.ok()?;
    response.json().await.ok()
}
