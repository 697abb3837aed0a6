//! What the domain records through the `metrics` facade: executions by surface, language
//! and outcome, run latency, runbox's own failures, admission waits. The HTTP surface
//! installs the recorder and serves `/metrics`.

use std::time::Duration;

use runbox_core::{ExecOutcome, Language};

/// Which API surface ran the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    Runcode,
    Execute,
    Session,
    Function,
    /// The check of a function's code at registration.
    FunctionCheck,
    /// A code tool of the MCP endpoint.
    Mcp,
}

impl Surface {
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Runcode => "runcode",
            Surface::Execute => "execute",
            Surface::Session => "session",
            Surface::Function => "function",
            Surface::FunctionCheck => "function_check",
            Surface::Mcp => "mcp",
        }
    }
}

/// One finished execution: what ran, where, and how it ended.
pub fn record_execution(surface: Surface, language: Language, outcome: &ExecOutcome) {
    let result = match &outcome.error {
        None => "ok",
        Some(error) => error.kind.as_str(),
    };
    metrics::counter!(
        "runbox_executions_total",
        "surface" => surface.as_str(),
        "language" => language.as_str(),
        "outcome" => result,
    )
    .increment(1);
    metrics::histogram!("runbox_run_seconds", "surface" => surface.as_str())
        .record(outcome.execution_time.as_secs_f64());
    if outcome.truncated {
        metrics::counter!("runbox_output_truncated_total").increment(1);
    }
}

/// A run that failed in runbox itself (not in the user's code).
pub fn record_failure(surface: Surface, reason: &'static str) {
    metrics::counter!(
        "runbox_execution_failures_total",
        "surface" => surface.as_str(),
        "reason" => reason,
    )
    .increment(1);
}

pub fn record_admission_wait(waited: Duration) {
    metrics::histogram!("runbox_admission_wait_seconds").record(waited.as_secs_f64());
}
