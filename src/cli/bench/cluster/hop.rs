//! What a forwarding hop costs: warm `print(1)` asked of a replica whose run slots are
//! all taken (so that it forwards the run to a peer), next to the same asked of that peer
//! directly, in alternating pairs so that the machine's drift falls on both alike.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::calls::{execute, Outcome};
use super::replicas::{client, health, Cluster};
use crate::cli::bench::stats::{Figures, Recorder};

/// A hop may add at most this much to the warm p50 (issue target).
pub(super) const TARGET_ADDED_MS: f64 = 2.0;

#[derive(Debug, Serialize)]
pub(super) struct HopReport {
    /// Measured pairs (after the warm-up pairs, which are not counted).
    pub(super) pairs: usize,
    pub(super) warmup_pairs: usize,
    /// The replica whose slots were taken: every run asked of it is forwarded.
    pub(super) entry: String,
    pub(super) through_hop: Figures,
    pub(super) direct: Figures,
    pub(super) added_p50_ms: f64,
    pub(super) added_p99_ms: f64,
    pub(super) target_added_p50_ms: f64,
    pub(super) met: bool,
    /// Which peers served the hops.
    pub(super) served_by: BTreeMap<String, usize>,
    /// Runs asked of the full replica that it served itself (its slots came free).
    pub(super) not_forwarded: usize,
    /// The pairs stopped at the time limit (`--hop-seconds`) before all were measured.
    pub(super) cut_short: bool,
}

const PRINT: &str = "print(1)";

/// `pairs` measured pairs after `warmup` pairs, through replica 0.
pub(super) async fn measure(
    cluster: &Cluster,
    pairs: usize,
    warmup: usize,
    slots: usize,
    pool_size: usize,
    max_timeout: Duration,
    within: Duration,
) -> anyhow::Result<HopReport> {
    let entry = &cluster.replicas[0];
    let peers = &cluster.replicas[1..];
    anyhow::ensure!(!peers.is_empty(), "a hop needs two replicas");
    let quick = client(Duration::from_secs(60))?;
    let (busy, occupied_for) = occupy(cluster, slots, max_timeout).await?;
    // The pairs end before the runs that fill replica 0 do (else it stops forwarding).
    let within = within.min(occupied_for.saturating_sub(Duration::from_secs(5)));

    let bar = crate::cli::bench::progress::bar(warmup + pairs, "print through a hop / direct");
    let (mut hop, mut direct) = (Recorder::default(), Recorder::default());
    let mut served_by = BTreeMap::new();
    let mut not_forwarded = 0;
    let mut peer = 0;
    let started = Instant::now();
    let mut measured = 0;
    for i in 0..warmup + pairs {
        if started.elapsed() > within {
            break;
        }
        let counted = i >= warmup;
        measured += usize::from(counted);
        // Which goes first alternates: neither side always follows the other.
        for hop_now in [i % 2 == 0, i % 2 != 0] {
            if pool_size > 0 {
                wait_quiet(&quick, &cluster.replicas).await;
            }
            let target = if hop_now { entry } else { &peers[peer] };
            let call = execute(&quick, &target.base, &cluster.token, PRINT, "1\n").await;
            let recorder = if hop_now { &mut hop } else { &mut direct };
            match call.outcome {
                Outcome::Ok { forwarded_to } => {
                    if hop_now {
                        match forwarded_to
                            .as_ref()
                            .and_then(|id| peers.iter().position(|p| &p.id == id))
                        {
                            Some(index) => {
                                // The direct run of this pair goes to the same peer.
                                peer = index;
                                if counted {
                                    *served_by.entry(peers[index].id.clone()).or_insert(0) += 1;
                                }
                            }
                            None => not_forwarded += 1,
                        }
                    }
                    if counted {
                        recorder.ok(call.latency);
                    }
                }
                Outcome::Refused => recorder.error("connection refused".into()),
                Outcome::Failed { kind, sample } => recorder.error(format!("{kind}: {sample}")),
            }
        }
        bar.inc(1);
    }
    let wall = started.elapsed();
    for run in busy {
        // Closing the connection cancels the run: the slots come free.
        run.abort();
    }
    let through_hop = hop.figures(wall, true);
    let direct = direct.figures(wall, true);
    let added_p50_ms = round(through_hop.p50_ms - direct.p50_ms);
    let added_p99_ms = round(through_hop.p99_ms - direct.p99_ms);
    bar.finish_with_message(format!(
        "hop p50 {} ms, direct {} ms: +{added_p50_ms} ms",
        through_hop.p50_ms, direct.p50_ms
    ));
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let running = health(&quick, &entry.base)
            .await
            .map(|h| h["running"].clone());
        if running.is_some_and(|r| r == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(HopReport {
        pairs: measured,
        cut_short: measured < pairs,
        warmup_pairs: warmup,
        entry: entry.id.clone(),
        met: through_hop.ok > 0 && added_p50_ms <= TARGET_ADDED_MS,
        through_hop,
        direct,
        added_p50_ms,
        added_p99_ms,
        target_added_p50_ms: TARGET_ADDED_MS,
        served_by,
        not_forwarded,
    })
}

/// Takes every run slot of replica 0 with a run that sleeps (as long as
/// `limits.max_timeout` lets it); returns once they all hold theirs, with how long they
/// sleep. Dropping (aborting) a handle closes its connection and ends its run.
async fn occupy(
    cluster: &Cluster,
    slots: usize,
    max_timeout: Duration,
) -> anyhow::Result<(Vec<tokio::task::JoinHandle<()>>, Duration)> {
    let entry = &cluster.replicas[0];
    let seconds = max_timeout.as_secs().saturating_sub(10).clamp(1, 600);
    let long = client(Duration::from_secs(seconds + 60))?;
    let mut busy = Vec::new();
    for _ in 0..slots {
        let request = long
            .post(format!("{}/execute", entry.base))
            .bearer_auth(&cluster.token)
            .json(&serde_json::json!({
                "code": format!("import time; time.sleep({seconds})"),
                "timeout": seconds + 5,
            }));
        busy.push(tokio::spawn(async move {
            let _ = request.send().await;
        }));
    }
    let quick = client(Duration::from_secs(10))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running = health(&quick, &entry.base)
            .await
            .and_then(|h| h["running"].as_u64())
            .unwrap_or_default();
        if running as usize >= slots {
            return Ok((busy, Duration::from_secs(seconds)));
        }
        if Instant::now() > deadline {
            for run in busy {
                run.abort();
            }
            anyhow::bail!("the entry replica's {slots} run slots were not all taken within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (up to 30 s) until every replica is quiet: its warm pool full and nothing
/// else going on its engine (no sandbox starting or being removed, none running but the
/// ones that hold replica 0's slots). A run of the pair is then a warm run wherever it
/// lands, and neither side of a pair is measured while the other's sandbox is being
/// replaced on the same two cores. Then until replica 0's registry shows no peer
/// running anything, so that the run through the hop finds the peer's room.
async fn wait_quiet(client: &reqwest::Client, replicas: &[super::replicas::Replica]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for replica in replicas {
        while Instant::now() < deadline {
            let pool = health(client, &replica.base)
                .await
                .map(|h| h["pool"].clone())
                .unwrap_or_default();
            let figure = |name: &str| pool[name].as_u64().unwrap_or_default();
            let target = figure("target");
            if target > 0
                && figure("ready") >= target
                && figure("live_containers") <= target + figure("in_use")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The entry places runs by the registry, where a peer's load is as of its last
    // heartbeat: until the last pair's run is gone from it too, the entry would still
    // see that peer full and keep the run (it waits for a slot of its own, all held).
    if let Some(entry) = replicas.first() {
        while Instant::now() < deadline {
            let peers_idle = health(client, &entry.base).await.is_some_and(|h| {
                h["cluster"]["replicas"].as_array().is_some_and(|listed| {
                    listed
                        .iter()
                        .filter(|replica| replica["this"] != true)
                        .all(|replica| replica["running"] == 0)
                })
            });
            if peers_idle {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
