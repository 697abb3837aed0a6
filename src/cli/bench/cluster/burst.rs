//! How a burst sent to one replica spreads: `print(1)` from as many workers as the
//! replicas have run slots together, all asked of replica 0, and which replica served
//! each run (`Runbox-Forwarded-To`, else replica 0 itself).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::calls::{execute, Outcome};
use super::replicas::{client, Cluster};
use crate::cli::bench::load::{closed_loop, operation};
use crate::cli::bench::progress::{bar, finish};
use crate::cli::bench::stats::Figures;

#[derive(Debug, Serialize)]
pub(super) struct BurstReport {
    /// The replica every run was asked of.
    pub(super) entry: String,
    pub(super) concurrency: usize,
    pub(super) figures: Figures,
    /// Runs served, per replica id.
    pub(super) served_by: BTreeMap<String, usize>,
    /// The share of the successful runs each replica served.
    pub(super) shares: BTreeMap<String, f64>,
}

pub(super) async fn measure(
    cluster: &Cluster,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<BurstReport> {
    let entry = &cluster.replicas[0];
    let served: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    for replica in &cluster.replicas {
        if let Ok(mut served) = served.lock() {
            served.insert(replica.id.clone(), 0);
        }
    }
    let run = {
        let client = client(Duration::from_secs(120))?;
        let base = entry.base.clone();
        let entry_id = entry.id.clone();
        let token = cluster.token.clone();
        let served = served.clone();
        operation(move || {
            let (client, base, entry_id, token, served) = (
                client.clone(),
                base.clone(),
                entry_id.clone(),
                token.clone(),
                served.clone(),
            );
            async move {
                let call = execute(&client, &base, &token, "print(1)", "1\n").await;
                match call.outcome {
                    Outcome::Ok { forwarded_to } => {
                        let by = forwarded_to.unwrap_or(entry_id);
                        if let Ok(mut served) = served.lock() {
                            *served.entry(by).or_insert(0) += 1;
                        }
                        Ok(())
                    }
                    Outcome::Refused => Err("connection refused".into()),
                    Outcome::Failed { kind, sample } => Err(format!("{kind}: {sample}")),
                }
            }
        })
    };
    let bar = bar(requests, &format!("burst at one replica c={concurrency}"));
    let figures = closed_loop(concurrency, requests, None, &bar, run)
        .await
        .figures(false);
    finish(&bar, &figures);
    let served_by = served.lock().map(|s| s.clone()).unwrap_or_default();
    let total: usize = served_by.values().sum();
    let shares = served_by
        .iter()
        .map(|(id, n)| {
            let share = if total == 0 {
                0.0
            } else {
                (*n as f64 / total as f64 * 1000.0).round() / 1000.0
            };
            (id.clone(), share)
        })
        .collect();
    Ok(BurstReport {
        entry: entry.id.clone(),
        concurrency,
        figures,
        served_by,
        shares,
    })
}
