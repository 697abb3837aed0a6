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
    /// requests/s divided by the bare container churn at the same concurrency: the
    /// churn interleaved with this level where there is one, else the churn of the
    /// whole run's before and after phases.
    pub ratio_to_churn: Option<f64>,
    /// requests/s divided by the churn of the whole run's before and after phases.
    pub ratio_to_run_churn: Option<f64>,
    /// requests/s divided by the churn measured in rounds interleaved with this level's
    /// blocks (each side's requests over its blocks' summed time).
    pub ratio_to_interleaved_churn: Option<f64>,
    /// The same ratio round by round: how much one round's pair of blocks says alone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub round_ratios: Vec<f64>,
    /// `docker run --rm` p50 divided by this p50: how many times faster.
    pub speedup_vs_docker_run: Option<f64>,
}

impl ScenarioRun {
    /// A level's figures, before the ratios are computed.
    pub fn new(
        scenario: Scenario,
        concurrency: usize,
        mode: &'static str,
        figures: Figures,
    ) -> Self {
        ScenarioRun {
            scenario,
            concurrency,
            mode,
            figures,
            ratio_to_churn: None,
            ratio_to_run_churn: None,
            ratio_to_interleaved_churn: None,
            round_ratios: Vec::new(),
            speedup_vs_docker_run: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ChurnRun {
    pub concurrency: usize,
    /// `before` or `after` runbox's load, or `interleaved` with the level named by
    /// `beside` (its blocks taken together).
    pub phase: &'static str,
    pub beside: Option<Scenario>,
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
    /// Whether the working tree differed from `commit` (results in bench-results/
    /// aside).
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
        let rates: Vec<(Option<f64>, Option<f64>)> = self
            .scenarios
            .iter()
            .map(|run| {
                (
                    self.churn_rate(run.concurrency),
                    self.interleaved_churn_rate(run.scenario, run.concurrency),
                )
            })
            .collect();
        let ratio = |rps: Option<f64>, base: Option<f64>| match (rps, base) {
            (Some(rps), Some(base)) if base > 0.0 => Some(round(rps / base)),
            _ => None,
        };
        for (run, (whole_run, interleaved)) in self.scenarios.iter_mut().zip(rates) {
            let rps = run.figures.requests_per_s;
            run.ratio_to_run_churn = ratio(rps, whole_run);
            run.ratio_to_interleaved_churn = ratio(rps, interleaved);
            run.ratio_to_churn = run.ratio_to_interleaved_churn.or(run.ratio_to_run_churn);
            run.speedup_vs_docker_run = match docker_run_p50 {
                Some(base) if run.figures.p50_ms > 0.0 && run.figures.ok > 0 => {
                    Some(round(base / run.figures.p50_ms))
                }
                _ => None,
            };
        }
    }

    /// The mean churn rate at `concurrency` over the whole run's before and after phases.
    pub fn churn_rate(&self, concurrency: usize) -> Option<f64> {
        mean_rate(
            self.churn
                .iter()
                .filter(|c| c.concurrency == concurrency && c.beside.is_none()),
        )
    }

    /// The churn rate measured interleaved with one level.
    pub fn interleaved_churn_rate(&self, scenario: Scenario, concurrency: usize) -> Option<f64> {
        mean_rate(
            self.churn
                .iter()
                .filter(|c| c.concurrency == concurrency && c.beside == Some(scenario)),
        )
    }

    pub fn level(&self, scenario: Scenario, concurrency: usize) -> Option<&ScenarioRun> {
        self.scenarios
            .iter()
            .find(|r| r.scenario == scenario && r.concurrency == concurrency)
    }

    /// The targets of the warm-pool work, judged on this report's figures.
    pub fn judge(&mut self) {
        let print1 = self.level(Scenario::Print, 1);
        let plot1 = self.level(Scenario::Plot, 1);
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
            let run = self.level(Scenario::Print, concurrency);
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
        out.push_str("| scenario | c | mode | requests | errors | p50 ms | p95 ms | p99 ms | req/s | × churn interleaved | × churn of the run | × faster than docker run |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        let opt = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_else(|| "—".into());
        for run in &self.scenarios {
            let f = &run.figures;
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                run.scenario.name(),
                run.concurrency,
                run.mode,
                f.requests,
                f.errors,
                f.p50_ms,
                f.p95_ms,
                f.p99_ms,
                opt(f.requests_per_s),
                opt(run.ratio_to_interleaved_churn),
                opt(run.ratio_to_run_churn),
                opt(run.speedup_vs_docker_run),
            ));
        }
        for run in &self.churn {
            let f = &run.figures;
            let phase = match run.beside {
                Some(scenario) => {
                    format!("{} {} c={}", run.phase, scenario.name(), run.concurrency)
                }
                None => run.phase.to_string(),
            };
            out.push_str(&format!(
                "| baseline: create+start+wait+remove ({phase}) | {} | sustained | {} | {} | {} | {} | {} | {} | — | — | — |\n",
                run.concurrency, f.requests, f.errors, f.p50_ms, f.p95_ms, f.p99_ms, opt(f.requests_per_s)
            ));
        }
        let mut levels: Vec<usize> = self.churn.iter().map(|c| c.concurrency).collect();
        levels.dedup();
        levels.sort_unstable();
        levels.dedup();
        for concurrency in levels {
            out.push_str(&format!(
                "| baseline: churn, mean of before and after | {concurrency} | sustained | — | — | — | — | — | {} | — | 1 | — |\n",
                opt(self.churn_rate(concurrency))
            ));
        }
        if let Some(f) = &self.docker_run {
            out.push_str(&format!(
                "| baseline: docker run --rm | 1 | sequential | {} | {} | {} | {} | {} | {} | — | — | 1 |\n",
                f.requests, f.errors, f.p50_ms, f.p95_ms, f.p99_ms, opt(f.requests_per_s)
            ));
        }
        let rounds: Vec<String> = self
            .scenarios
            .iter()
            .filter(|run| !run.round_ratios.is_empty())
            .map(|run| {
                let ratios: Vec<String> = run.round_ratios.iter().map(f64::to_string).collect();
                format!(
                    "| {} c={} | {} |\n",
                    run.scenario.name(),
                    run.concurrency,
                    ratios.join(", ")
                )
            })
            .collect();
        if !rounds.is_empty() {
            out.push_str("\n| sustained level | × churn, round by round |\n|---|---|\n");
            out.push_str(&rounds.concat());
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

fn mean_rate<'a>(runs: impl Iterator<Item = &'a ChurnRun>) -> Option<f64> {
    let rates: Vec<f64> = runs.filter_map(|c| c.figures.requests_per_s).collect();
    (!rates.is_empty()).then(|| round(rates.iter().sum::<f64>() / rates.len() as f64))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(requests_per_s: f64) -> Figures {
        Figures {
            requests: 10,
            ok: 10,
            errors: 0,
            p50_ms: 5.0,
            p95_ms: 6.0,
            p99_ms: 7.0,
            mean_ms: 5.0,
            max_ms: 8.0,
            requests_per_s: Some(requests_per_s),
            wall_s: 1.0,
            error_samples: Vec::new(),
        }
    }

    fn churn(phase: &'static str, beside: Option<Scenario>, rate: f64) -> ChurnRun {
        ChurnRun {
            concurrency: 4,
            phase,
            beside,
            figures: figures(rate),
        }
    }

    fn sustained(scenario: Scenario, rate: f64) -> ScenarioRun {
        ScenarioRun::new(scenario, 4, "sustained", figures(rate))
    }

    fn report(scenarios: Vec<ScenarioRun>, churn: Vec<ChurnRun>) -> Report {
        Report {
            commit: String::new(),
            dirty: false,
            started_at: String::new(),
            build: "release",
            host: Value::Null,
            config: Value::Null,
            scenarios,
            churn,
            docker_run: None,
            idle_memory: Vec::new(),
            leaks: Leaks::default(),
            targets: Vec::new(),
        }
    }

    #[test]
    fn an_interleaved_level_is_divided_by_its_own_churn_and_the_rest_by_the_runs() {
        let mut report = report(
            vec![
                sustained(Scenario::Print, 9.0),
                sustained(Scenario::Plot, 4.0),
            ],
            vec![
                churn("before", None, 12.0),
                churn("interleaved", Some(Scenario::Print), 10.0),
                churn("after", None, 8.0),
            ],
        );
        report.compute_ratios();
        let print = &report.scenarios[0];
        assert_eq!(print.ratio_to_interleaved_churn, Some(0.9));
        assert_eq!(print.ratio_to_run_churn, Some(0.9));
        assert_eq!(print.ratio_to_churn, Some(0.9));
        let plot = &report.scenarios[1];
        assert_eq!(plot.ratio_to_interleaved_churn, None);
        assert_eq!(plot.ratio_to_run_churn, Some(0.4));
        assert_eq!(plot.ratio_to_churn, Some(0.4));
    }

    #[test]
    fn the_throughput_target_is_judged_on_the_interleaved_churn() {
        let mut print = sustained(Scenario::Print, 9.0);
        print.round_ratios = vec![0.88, 0.93];
        let mut report = report(
            vec![print],
            vec![
                churn("before", None, 11.0),
                churn("interleaved", Some(Scenario::Print), 10.0),
                churn("after", None, 11.0),
            ],
        );
        report.compute_ratios();
        report.judge();
        let target = report
            .targets
            .iter()
            .find(|t| t.name.starts_with("sustained print(1) c=4"))
            .expect("the c=4 throughput target is judged");
        assert_eq!(target.value, Some(0.9));
        assert!(target.met);
        assert_eq!(report.scenarios[0].ratio_to_run_churn, Some(0.82));
        let table = report.table();
        assert!(table.contains("interleaved print c=4"));
        assert!(table.contains("| print c=4 | 0.88, 0.93 |"));
    }
}
