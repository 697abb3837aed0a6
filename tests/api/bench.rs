//! `runbox bench` interrupted: its server stops, and none of the containers it made
//! (pool, sandboxes, bare baseline containers) is left behind.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{
    binary, ensure_image, next_port_range, remove_containers, replicas_can_share_a_database,
    require_docker, test_runtime, transport, POSTGRES_URL_VAR,
};

/// The instances of `runbox bench` (`bench-…`) and of `runbox bench --cluster`
/// (`cluster-bench-…`): apart, so that the two tests never take the other's containers
/// for their own.
const BENCH: &str = "bench-";
const CLUSTER_BENCH: &str = "cluster-bench-";

/// Containers of runbox whose instance label starts with `prefix`, of one kind (`pool`,
/// `on-demand`, `baseline`) when given.
fn bench_containers_of_kind(prefix: &str, kind: Option<&str>) -> Vec<String> {
    let kind = kind.map(|k| format!("label=runbox.kind={k}"));
    let output = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            "label=runbox.managed=true",
        ])
        .args(kind.iter().flat_map(|k| ["--filter", k.as_str()]))
        .args(["--format", "{{.ID}} {{.Label \"runbox.instance\"}}"])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(_, instance)| instance.starts_with(prefix))
        .map(|(id, _)| id.to_string())
        .collect()
}

/// Kills the bench and removes what it left, whatever the test's outcome.
struct BenchRun {
    child: std::process::Child,
    prefix: &'static str,
    before: Vec<String>,
}

impl BenchRun {
    /// The bench containers (of `kind` when given) that were not there before it.
    fn new_containers(&self, kind: Option<&str>) -> Vec<String> {
        bench_containers_of_kind(self.prefix, kind)
            .into_iter()
            .filter(|id| !self.before.contains(id))
            .collect()
    }
}

impl Drop for BenchRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        remove_containers(&self.new_containers(None));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_bench_stops_its_server_and_leaves_no_container() {
    require_docker();
    ensure_image();
    let dir = tempfile::tempdir().expect("tempdir");
    let (start, end) = next_port_range();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {:?}\nsandbox:\n  transport: {}\n  port_range: {{start: {start}, end: {end}}}\n  pool:\n    size: 2\n  preload: []\n",
            dir.path().display().to_string(),
            transport(),
        ),
    )
    .expect("write config");
    let log = dir.path().join("bench.log");
    let before = bench_containers_of_kind(BENCH, None);
    let child = Command::new(binary())
        .args(["--config", &config.display().to_string(), "bench"])
        .args([
            "--scenarios",
            "print",
            "--concurrency",
            "4",
            "--warm-at",
            "0",
        ])
        .args(["--rounds", "0", "--print-requests", "400"])
        .args(["--churn-requests", "8", "--docker-run-requests", "0"])
        .args(["--memory-sandboxes", "0"])
        .arg("--out")
        .arg(dir.path().join("out.json"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(std::fs::File::create(dir.path().join("bench.err")).expect("log"))
        .spawn()
        .expect("start runbox bench");
    let mut run = BenchRun {
        child,
        prefix: BENCH,
        before,
    };

    // Under way: past the bare churn, requests hold sandboxes made on demand.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if !run.new_containers(Some("on-demand")).is_empty() {
            break;
        }
        assert!(
            run.child.try_wait().expect("poll the bench").is_none(),
            "the bench ended before it was interrupted"
        );
        assert!(
            Instant::now() < deadline,
            "the bench never had its load under way"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &run.child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());

    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = run.child.try_wait().expect("poll the bench") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the bench did not stop within 90 s of the interrupt"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stderr = std::fs::read_to_string(dir.path().join("bench.err")).unwrap_or_default();
    assert!(!status.success(), "an interrupted bench fails: {stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        !dir.path().join("out.json").exists(),
        "no figures are written for a cut-short run"
    );
    let left = run.new_containers(None);
    assert!(left.is_empty(), "the bench left {left:?}\n{stderr}");
}

#[test]
fn the_cluster_bench_without_postgresql_says_what_it_needs() {
    let output = Command::new(binary())
        .args(["bench", "--cluster"])
        .env_remove("RUNBOX_BENCH_POSTGRES_URL")
        .env_remove("RUNBOX_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("start runbox bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("--postgres-url") && stderr.contains("RUNBOX_BENCH_POSTGRES_URL"),
        "{stderr}"
    );
}

/// A tiny cluster bench, end to end: two replicas, a few runs of each measurement, one
/// replica killed; the JSON has every figure and nothing of it is left behind.
#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_bench_measures_a_hop_a_burst_and_a_kill_and_leaves_nothing() {
    if !replicas_can_share_a_database(
        "the_cluster_bench_measures_a_hop_a_burst_and_a_kill_and_leaves_nothing",
    ) {
        return;
    }
    require_docker();
    ensure_image();
    let postgres = std::env::var(POSTGRES_URL_VAR).expect("PostgreSQL");
    let dir = tempfile::tempdir().expect("tempdir");
    // The bench splits the range between its replicas.
    let (start, end) = next_port_range();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {:?}\nsandbox:\n  transport: {}\n  runtime: \"{}\"\n  port_range: {{start: {start}, end: {end}}}\n  preload: []\ncluster:\n  heartbeat: 1s\n  dead_after: 3s\n",
            dir.path().display().to_string(),
            transport(),
            test_runtime(),
        ),
    )
    .expect("write config");
    let out = dir.path().join("out.json");
    let before = bench_containers_of_kind(CLUSTER_BENCH, None);
    let child = Command::new(binary())
        .args([
            "--config",
            &config.display().to_string(),
            "bench",
            "--cluster",
        ])
        .args(["--postgres-url", &postgres])
        .args([
            "--replicas",
            "2",
            "--replica-slots",
            "1",
            "--pool-size",
            "1",
        ])
        .args([
            "--hop-pairs",
            "3",
            "--hop-warmup",
            "1",
            "--burst-requests",
            "4",
        ])
        .args(["--kill-after", "2"])
        .arg("--out")
        .arg(&out)
        .env_remove("RUNBOX_CONFIG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("bench.log")).expect("log"))
        .stderr(std::fs::File::create(dir.path().join("bench.err")).expect("log"))
        .spawn()
        .expect("start runbox bench --cluster");
    let mut run = BenchRun {
        child,
        prefix: CLUSTER_BENCH,
        before,
    };
    let deadline = Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(status) = run.child.try_wait().expect("poll the bench") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster bench did not end within 150 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let stderr = std::fs::read_to_string(dir.path().join("bench.err")).unwrap_or_default();
    let stdout = std::fs::read_to_string(dir.path().join("bench.log")).unwrap_or_default();
    assert!(status.success(), "{stderr}\n{stdout}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("the JSON")).expect("JSON");
    assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");

    let hop = &report["hop"];
    assert_eq!(hop["through_hop"]["ok"], 3, "{hop:#}");
    assert_eq!(hop["direct"]["ok"], 3, "{hop:#}");
    assert_eq!(
        hop["not_forwarded"], 0,
        "every run at the full replica hops: {hop:#}"
    );

    let burst = &report["burst"];
    assert_eq!(burst["figures"]["ok"], 4, "{burst:#}");
    let served: u64 = burst["served_by"]
        .as_object()
        .expect("served_by")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(served, 4, "{burst:#}");

    let kill = &report["kill"];
    assert!(
        kill["after"]["figures"]["ok"].as_u64() > Some(0),
        "{kill:#}"
    );
    assert_eq!(
        kill["after"]["figures"]["errors"], 0,
        "runs sent after the kill are answered: {kill:#}"
    );
    let task = &kill["task"];
    assert_eq!(task["ran_on_victim"], true, "{task:#}");
    assert_eq!(task["status"], "FAILED", "{task:#}");
    assert_eq!(task["reason"], "interrupted", "{task:#}");

    assert_eq!(
        report["tear_down"]["notes"],
        serde_json::json!([]),
        "{report:#}"
    );
    let left = run.new_containers(None);
    assert!(left.is_empty(), "the cluster bench left {left:?}\n{stderr}");
}
