//! `runbox bench --runtime runc,crun,runsc`: the same bench under each OCI runtime, one
//! after the other in one run, and how they compare — above all runbox's sustained
//! fresh-sandbox throughput under each runtime against the bare churn of runc, the
//! engine's usual runtime, measured in the same run.

use serde::Serialize;

use super::load::Scenario;
use super::report::{Report, Target};
use super::stats::round;

/// The level whose throughput is compared across runtimes.
const SUSTAINED_LEVEL: usize = 4;
/// The runtime the others are measured against.
const REFERENCE: &str = "runc";
/// runbox under the fastest runtime against runc's bare churn.
const FASTER_THAN_RUNC_CHURN: f64 = 1.3;

/// One runtime's figures side by side with the others'.
#[derive(Debug, Serialize)]
pub struct RuntimeRow {
    pub runtime: String,
    /// Warm `print(1)` p50 at c=1, ms.
    pub warm_p50_ms: Option<f64>,
    /// Sustained `print(1)` at c=4, requests/s.
    pub sustained_rps: Option<f64>,
    /// Bare create+start+wait+remove at c=4 under this runtime, per s (mean of the
    /// run's phases).
    pub churn_rps: Option<f64>,
    /// `sustained_rps` over this runtime's own churn.
    pub ratio_to_own_churn: Option<f64>,
    /// `sustained_rps` over runc's churn of the same run.
    pub ratio_to_runc_churn: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub rows: Vec<RuntimeRow>,
    pub targets: Vec<Target>,
}

/// Compares the reports of one run, one per runtime.
pub fn compare(reports: &[(String, Report)]) -> Comparison {
    let runc_churn = reports
        .iter()
        .find(|(runtime, _)| runtime == REFERENCE)
        .and_then(|(_, report)| report.churn_rate(SUSTAINED_LEVEL));
    let rows: Vec<RuntimeRow> = reports
        .iter()
        .map(|(runtime, report)| {
            let warm_p50_ms = report
                .level(Scenario::Print, 1)
                .map(|run| run.figures.p50_ms);
            let sustained_rps = report
                .level(Scenario::Print, SUSTAINED_LEVEL)
                .and_then(|run| run.figures.requests_per_s);
            let churn_rps = report.churn_rate(SUSTAINED_LEVEL);
            RuntimeRow {
                runtime: runtime.clone(),
                warm_p50_ms,
                sustained_rps,
                churn_rps,
                ratio_to_own_churn: ratio(sustained_rps, churn_rps),
                ratio_to_runc_churn: ratio(sustained_rps, runc_churn),
            }
        })
        .collect();
    let row = |name: &str| rows.iter().find(|row| row.runtime == name);
    let mut targets = Vec::new();
    if let (Some(crun), Some(runc)) = (row("crun"), row(REFERENCE)) {
        let value = crun.ratio_to_runc_churn;
        targets.push(Target {
            name: "crun: sustained print(1) c=4 / runc's bare churn",
            value,
            limit: FASTER_THAN_RUNC_CHURN,
            kind: "min",
            met: value.is_some_and(|v| v >= FASTER_THAN_RUNC_CHURN),
        });
        let value = ratio(crun.warm_p50_ms, runc.warm_p50_ms);
        targets.push(Target {
            name: "crun: warm print(1) p50 / runc's",
            value,
            limit: 1.0,
            kind: "max",
            met: value.is_some_and(|v| v <= 1.0),
        });
    }
    Comparison { rows, targets }
}

fn ratio(value: Option<f64>, base: Option<f64>) -> Option<f64> {
    match (value, base) {
        (Some(value), Some(base)) if base > 0.0 => Some(round(value / base)),
        _ => None,
    }
}

impl Comparison {
    pub fn table(&self) -> String {
        let cell = |value: Option<f64>| value.map_or("—".to_string(), |v| v.to_string());
        let mut text = String::from(
            "| runtime | warm print(1) c=1 p50 ms | sustained print(1) c=4 req/s | bare churn c=4 /s | × own churn | × runc churn |\n|---|---|---|---|---|---|\n",
        );
        for row in &self.rows {
            text.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                row.runtime,
                cell(row.warm_p50_ms),
                cell(row.sustained_rps),
                cell(row.churn_rps),
                cell(row.ratio_to_own_churn),
                cell(row.ratio_to_runc_churn),
            ));
        }
        if !self.targets.is_empty() {
            text.push_str("\n| target | value | limit | met |\n|---|---|---|---|\n");
            for target in &self.targets {
                text.push_str(&format!(
                    "| {} | {} | {} {} | {} |\n",
                    target.name,
                    cell(target.value),
                    if target.kind == "min" { "≥" } else { "≤" },
                    target.limit,
                    if target.met { "yes" } else { "**no**" },
                ));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_needs_both_figures() {
        assert_eq!(ratio(Some(13.0), Some(10.0)), Some(1.3));
        assert_eq!(ratio(Some(13.0), None), None);
        assert_eq!(ratio(Some(13.0), Some(0.0)), None);
    }
}
