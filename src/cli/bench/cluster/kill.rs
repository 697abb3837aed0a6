//! A replica SIGKILLed under load. Workers send runs round-robin to every replica the
//! way a load balancer would (an address that refuses the connection is left out and the
//! run goes to the next: nothing was sent); the last replica is killed mid-burst, with
//! runs of its own and runs forwarded to it in flight and a task running on it. Counted:
//! what failed, by status, before, across and after the kill; how long after the kill
//! the last failure ended; how long until its task reads `FAILED` (`interrupted`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::calls::{execute, Outcome};
use super::replicas::{client, Cluster};
use crate::cli::bench::stats::{Figures, Recorder};

/// Each run of the load: long enough that some are in flight at the kill.
const CODE: &str = "import time; time.sleep(0.2); print(1)";
/// The load goes on at least this long after the kill.
const AFTER_KILL_AT_LEAST: Duration = Duration::from_secs(5);

const SLEEPER: &str =
    "import time\n\ndef bench_sleeper(seconds=60):\n    time.sleep(seconds)\n    return seconds\n";

#[derive(Debug, Serialize)]
pub(super) struct KillReport {
    pub(super) victim: String,
    pub(super) concurrency: usize,
    pub(super) killed_after_s: f64,
    /// How long the load went on after the kill.
    pub(super) load_after_kill_s: f64,
    /// Runs that ended before the kill.
    pub(super) before: Phase,
    /// Runs sent before the killed process was gone that ended after the kill.
    pub(super) across: Phase,
    /// Runs sent after the killed process was gone.
    pub(super) after: Phase,
    /// Connections the killed replica refused (those runs went to the next replica).
    pub(super) refused: usize,
    /// When, after the kill, the last failed run ended: from then on every run was
    /// answered. `None`: no run failed.
    pub(super) last_failure_after_kill_s: Option<f64>,
    pub(super) task: Option<TaskFate>,
}

#[derive(Debug, Serialize)]
pub(super) struct Phase {
    pub(super) figures: Figures,
    /// Failed runs per status (`503`, `connection lost`, …).
    pub(super) errors_by_status: BTreeMap<String, usize>,
}

/// The task that ran on the killed replica.
#[derive(Debug, Serialize)]
pub(super) struct TaskFate {
    pub(super) id: String,
    /// Whether the killed replica was running it (its `/health` counted a run while
    /// nothing else ran): only then is `interrupted` its expected end.
    pub(super) ran_on_victim: bool,
    pub(super) status_at_kill: String,
    pub(super) status: String,
    pub(super) reason: Value,
    /// When, after the kill, a survivor first read it ended.
    pub(super) ended_after_kill_s: Option<f64>,
}

struct Sample {
    sent: Duration,
    ended: Duration,
    latency: Duration,
    /// `None`: answered as expected; else the status (or `connection lost`) and sample.
    failure: Option<(String, String)>,
}

pub(super) struct KillPlan {
    pub(super) concurrency: usize,
    pub(super) kill_after: Duration,
    /// Load goes on no longer than this after the kill, task settled or not.
    pub(super) give_up_after: Duration,
}

pub(super) async fn measure(cluster: &mut Cluster, plan: KillPlan) -> anyhow::Result<KillReport> {
    let quick = client(Duration::from_secs(30))?;
    let token = cluster.token.clone();
    let victim_index = cluster.replicas.len() - 1;
    let victim_base = cluster.replicas[victim_index].base.clone();
    let task = start_task(&quick, &victim_base, &token).await;
    let ran_on_victim = match &task {
        Some(_) => super::replicas::health(&quick, &victim_base)
            .await
            .and_then(|h| h["running"].as_u64())
            .is_some_and(|n| n >= 1),
        None => false,
    };

    let bases: Vec<String> = cluster.replicas.iter().map(|r| r.base.clone()).collect();
    let alive: Arc<Vec<AtomicBool>> =
        Arc::new(bases.iter().map(|_| AtomicBool::new(true)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let started = Instant::now();
    let load = client(Duration::from_secs(120))?;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.concurrency.max(1) {
        let (bases, alive, stop, next, refused, samples, load, token) = (
            bases.clone(),
            alive.clone(),
            stop.clone(),
            next.clone(),
            refused.clone(),
            samples.clone(),
            load.clone(),
            token.clone(),
        );
        workers.spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let Some(index) = pick(&alive, &next) else {
                    break;
                };
                let sent = started.elapsed();
                let call = execute(&load, &bases[index], &token, CODE, "1\n").await;
                let failure = match call.outcome {
                    Outcome::Ok { .. } => None,
                    Outcome::Refused => {
                        alive[index].store(false, Ordering::SeqCst);
                        refused.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    Outcome::Failed { kind, sample } => Some((kind, sample)),
                };
                if let Ok(mut samples) = samples.lock() {
                    samples.push(Sample {
                        sent,
                        ended: started.elapsed(),
                        latency: call.latency,
                        failure,
                    });
                }
            }
        });
    }

    let bar = crate::cli::bench::progress::bar(0, "runs while a replica is killed");
    bar.set_message("load under way");
    tokio::time::sleep(plan.kill_after).await;
    let status_at_kill = match &task {
        Some(id) => task_status(&quick, &bases[0], &token, id).await["status"]
            .as_str()
            .unwrap_or("unknown")
            .to_string(),
        None => String::new(),
    };
    let killed_at = started.elapsed();
    cluster.replicas[victim_index].kill9().await;
    // A run sent once the process is reaped never reached it.
    let gone_at = started.elapsed();
    bar.set_message("killed; waiting for its task to end");

    // The survivors go on under the load until the killed replica's task reads ended
    // (at least a few seconds, at most `give_up_after`).
    let mut fate = task.map(|id| TaskFate {
        id,
        ran_on_victim,
        status_at_kill,
        status: String::new(),
        reason: Value::Null,
        ended_after_kill_s: None,
    });
    let give_up = Instant::now() + plan.give_up_after;
    let at_least = Instant::now() + AFTER_KILL_AT_LEAST;
    loop {
        if let Some(fate) = fate.as_mut().filter(|f| f.ended_after_kill_s.is_none()) {
            let body = task_status(&quick, &bases[0], &token, &fate.id).await;
            fate.status = body["status"].as_str().unwrap_or("unknown").to_string();
            fate.reason = body["reason"].clone();
            if !matches!(fate.status.as_str(), "QUEUED" | "RUNNING" | "unknown") {
                fate.ended_after_kill_s = Some(secs(started.elapsed() - killed_at));
            }
        }
        let settled = fate.as_ref().is_none_or(|f| f.ended_after_kill_s.is_some());
        let now = Instant::now();
        if (settled && now >= at_least) || now >= give_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.store(true, Ordering::SeqCst);
    while workers.join_next().await.is_some() {}
    let load_after_kill = started.elapsed() - killed_at;
    bar.finish_with_message(format!(
        "load went on {:.1} s after the kill",
        load_after_kill.as_secs_f64()
    ));

    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|p| p.into_inner()));
    let last_failure = samples
        .iter()
        .filter(|s| s.failure.is_some() && s.ended >= killed_at)
        .map(|s| s.ended - killed_at)
        .max();
    let (mut before, mut across, mut after) = (Vec::new(), Vec::new(), Vec::new());
    for sample in samples {
        if sample.ended < killed_at {
            before.push(sample);
        } else if sample.sent < gone_at {
            across.push(sample);
        } else {
            after.push(sample);
        }
    }
    Ok(KillReport {
        victim: cluster.replicas[victim_index].id.clone(),
        concurrency: plan.concurrency,
        killed_after_s: secs(killed_at),
        load_after_kill_s: secs(load_after_kill),
        before: phase(before, killed_at),
        across: phase(across, Duration::ZERO),
        after: phase(after, load_after_kill),
        refused: refused.load(Ordering::SeqCst),
        last_failure_after_kill_s: last_failure.map(secs),
        task: fate,
    })
}

/// The next replica, round-robin, among those that have not refused a connection.
fn pick(alive: &[AtomicBool], next: &AtomicUsize) -> Option<usize> {
    for _ in 0..alive.len() {
        let index = next.fetch_add(1, Ordering::SeqCst) % alive.len();
        if alive[index].load(Ordering::SeqCst) {
            return Some(index);
        }
    }
    None
}

fn phase(samples: Vec<Sample>, wall: Duration) -> Phase {
    let mut recorder = Recorder::default();
    let mut errors_by_status = BTreeMap::new();
    for sample in samples {
        match sample.failure {
            None => recorder.ok(sample.latency),
            Some((kind, text)) => {
                *errors_by_status.entry(kind.clone()).or_insert(0) += 1;
                recorder.error(format!("{kind}: {text}"));
            }
        }
    }
    Phase {
        figures: recorder.figures(wall, wall.is_zero()),
        errors_by_status,
    }
}

/// Registers a function that sleeps and starts it as a task at the replica at `base`,
/// which claims it at once (it has free run slots); its id, or `None` (said on stderr)
/// when that did not work.
async fn start_task(client: &reqwest::Client, base: &str, token: &str) -> Option<String> {
    let register = client
        .post(format!("{base}/functions"))
        .bearer_auth(token)
        .json(&json!({"name": "bench_sleeper", "code": SLEEPER, "timeout": 120}))
        .send()
        .await;
    let call = async {
        client
            .post(format!("{base}/functions/bench_sleeper/call"))
            .bearer_auth(token)
            .json(&json!({"args": {"seconds": 110}, "async": true}))
            .send()
            .await
            .ok()?
            .json::<Value>()
            .await
            .ok()
    };
    let id = match register {
        Ok(response) if response.status().is_success() => call
            .await
            .and_then(|body| body["task_id"].as_str().map(str::to_string)),
        _ => None,
    };
    let Some(id) = id else {
        eprintln!("warning: no task could be started on the replica to be killed");
        return None;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if task_status(client, base, token, &id).await["status"] == "RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(id)
}

async fn task_status(client: &reqwest::Client, base: &str, token: &str, id: &str) -> Value {
    match client
        .get(format!("{base}/tasks/{id}"))
        .bearer_auth(token)
        .send()
        .await
    {
        Ok(response) => response.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

fn secs(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 100.0).round() / 100.0
}
