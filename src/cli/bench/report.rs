//! The bench's JSON and its table: every figure, its ratio to the baselines, and
//! whether each target of the warm-pool work is met.

use serde::Serialize;
use serde_json::Value;

use super::baselines::IdleMemory;
use super::load::{PoolSnapshot, Scenario};
use super::stats::{round, Figures};

#[derive(Debug, Serialize)]
pub struct ScenarioRun {
    pub scenario: Scenario,
    pub concurrency: usize,
    /// `warm`: each request waited for a full pool; `sustained`: back to back.
    pub mode: &'static str,
    #[serde(flatten)]
    pub figures: Figures,
    /// requests/s divided by the bare container churn at the same concurrency.
    pub ratio_to_churn: Option<f64>,
    /// `docker run --rm` p50 divided by this p50: how many times faster.
    pub speedup_vs_docker_run: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ChurnRun {
    pub concurrency: usize,
    /// `before` or `after` runbox's load.
    pub phase: &'static str,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Debug, Default, Serialize)]
pub struct Leaks {
    /// Containers of the bench's instances left after shutdown (in-process server), or
    /// on-demand containers left on the engine (remote server).
    pub containers: Option<usize>,
    pub port_leases: Option<usize>,
    pub baseline_containers: Option<usize>,
    pub after_load: Option<PoolSnapshot>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub name: &'static str,
    pub value: Option<f64>,
    pub limit: f64,
    /// `max`: value must not exceed limit; `min`: value must reach it.
    pub kind: &'static str,
    pub met: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub commit: String,
    pub dirty: bool,
    pub started_at: String,
    pub build: &'static str,
    pub host: Value,
    pub config: Value,
    pub scenarios: Vec<ScenarioRun>,
    pub churn: Vec<ChurnRun>,
    pub docker_run: Option<Figures>,
    pub idle_memory: Vec<IdleMemory>,
    pub leaks: Leaks,
    pub targets: Vec<Target>,
}

impl Report {
    /// Fills the ratios in, once every figure is there.
    pub fn compute_ratios(&mut self) {
        let docker_run_p50 = self.docker_run.as_ref().map(|f| f.p50_ms);
        let rates: Vec<Option<f64>> = self
            .scenarios
            .iter()
            .map(|run| self.churn_rate(run.concurrency))
            .collect();
        for (run, churn) in self.scenarios.iter_mut().zip(rates) {
            run.ratio_to_churn = match (run.figures.requests_per_s, churn) {
                (Some(rps), Some(base)) if base > 0.0 => Some(round(rps / base)),
                _ => None,
            };
            run.speedup_vs_docker_run = match docker_run_p50 {
                Some(base) if run.figures.p50_ms > 0.0 && run.figures.ok > 0 => {
                    Some(round(base / run.figures.p50_ms))
                }
                _ => None,
            };
        }
    }

    /// The mean churn rate at `concurrency` over the phases measured.
    pub fn churn_rate(&self, concurrency: usize) -> Option<f64> {
        let rates: Vec<f64> = self
            .churn
            .iter()
            .filter(|c| c.concurrency == concurrency)
            .filter_map(|c| c.figures.requests_per_s)
            .collect();
        (!rates.is_empty()).then(|| round(rates.iter().sum::<f64>() / rates.len() as f64))
    }

    fn run(&self, scenario: Scenario, concurrency: usize) -> Option<&ScenarioRun> {
        self.scenarios
            .iter()
            .find(|r| r.scenario == scenario && r.concurrency == concurrency)
    }

    /// The targets of the warm-pool work, judged on this report's figures.
    pub fn judge(&mut self) {
        let print1 = self.run(Scenario::Print, 1);
        let plot1 = self.run(Scenario::Plot, 1);
        let clean = |r: &ScenarioRun| r.figures.errors == 0 && r.figures.ok > 0;
        let mut targets = vec![
            max(
                "warm print(1) c=1 p50 ms",
                print1.filter(|r| clean(r)).map(|r| r.figures.p50_ms),
                10.0,
            ),
            max(
                "warm print(1) c=1 p99 ms",
                print1.filter(|r| clean(r)).map(|r| r.figures.p99_ms),
                50.0,
            ),
            min(
                "warm print(1) c=1 speed-up vs docker run --rm",
                print1.and_then(|r| r.speedup_vs_docker_run),
                20.0,
            ),
            max(
                "warm plot c=1 p50 ms",
                plot1.filter(|r| clean(r)).map(|r| r.figures.p50_ms),
                150.0,
            ),
        ];
        for concurrency in [4, 16] {
            let run = self.run(Scenario::Print, concurrency);
            let name = if concurrency == 4 {
                "sustained print(1) c=4 throughput / churn (0 errors)"
            } else {
                "sustained print(1) c=16 throughput / churn (0 errors)"
            };
            targets.push(min(
                name,
                run.filter(|r| r.figures.errors == 0)
                    .and_then(|r| r.ratio_to_churn),
                0.9,
            ));
        }
        let bare = self
            .idle_memory
            .iter()
            .find(|m| m.preload.is_empty() && m.error.is_none());
        targets.push(max(
            "idle pooled sandbox without preload MiB",
            bare.map(|m| m.working_set_max_mib),
            30.0,
        ));
        targets.push(max(
            "leaked containers",
            self.leaks.containers.map(|n| n as f64),
            0.0,
        ));
        targets.push(max(
            "leaked port leases",
            self.leaks.port_leases.map(|n| n as f64),
            0.0,
        ));
        self.targets = targets;
    }

    /// The figures as a Markdown table (what docs/performance.md shows).
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str("| scenario | c | mode | requests | errors | p50 ms | p95 ms | p99 ms | req/s | × churn | × faster than docker run |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
        let opt = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_else(|| "—".into());
        for run in &self.scenarios {
            let f = &run.figures;
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                run.scenario.name(),
                run.concurrency,
                run.mode,
                f.requests,
                f.errors,
                f.p50_ms,
                f.p95_ms,
                f.p99_ms,
                opt(f.requests_per_s),
                opt(run.ratio_to_churn),
                opt(run.speedup_vs_docker_run),
            ));
        }
        for run in &self.churn {
            let f = &run.figures;
            out.push_str(&format!(
                "| baseline: create+start+wait+remove ({}) | {} | sustained | {} | {} | {} | {} | {} | {} | — | — |\n",
                run.phase, run.concurrency, f.requests, f.errors, f.p50_ms, f.p95_ms, f.p99_ms, opt(f.requests_per_s)
            ));
        }
        let mut levels: Vec<usize> = self.churn.iter().map(|c| c.concurrency).collect();
        levels.dedup();
        levels.sort_unstable();
        levels.dedup();
        for concurrency in levels {
            out.push_str(&format!(
                "| baseline: churn, mean of before and after | {concurrency} | sustained | — | — | — | — | — | {} | 1 | — |\n",
                opt(self.churn_rate(concurrency))
            ));
        }
        if let Some(f) = &self.docker_run {
            out.push_str(&format!(
                "| baseline: docker run --rm | 1 | sequential | {} | {} | {} | {} | {} | {} | — | 1 |\n",
                f.requests, f.errors, f.p50_ms, f.p95_ms, f.p99_ms, opt(f.requests_per_s)
            ));
        }
        if !self.idle_memory.is_empty() {
            out.push_str("\n| idle pooled sandbox | sandboxes | working set MiB (mean / max) | anon MiB | cgroup usage MiB |\n|---|---|---|---|---|\n");
            for m in &self.idle_memory {
                let preload = if m.preload.is_empty() {
                    "no preload".to_string()
                } else {
                    format!("preload {}", m.preload.join(", "))
                };
                out.push_str(&format!(
                    "| {preload} | {} | {} / {} | {} | {} |\n",
                    m.sandboxes, m.working_set_mib, m.working_set_max_mib, m.anon_mib, m.usage_mib
                ));
            }
        }
        out.push_str("\n| target | value | limit | met |\n|---|---|---|---|\n");
        for t in &self.targets {
            let bound = if t.kind == "max" { "≤" } else { "≥" };
            out.push_str(&format!(
                "| {} | {} | {bound} {} | {} |\n",
                t.name,
                opt(t.value),
                t.limit,
                if t.met { "yes" } else { "**no**" }
            ));
        }
        out
    }
}

fn max(name: &'static str, value: Option<f64>, limit: f64) -> Target {
    Target {
        name,
        value,
        limit,
        kind: "max",
        met: value.is_some_and(|v| v <= limit),
    }
}

fn min(name: &'static str, value: Option<f64>, limit: f64) -> Target {
    Target {
        name,
        value,
        limit,
        kind: "min",
        met: value.is_some_and(|v| v >= limit),
    }
}
