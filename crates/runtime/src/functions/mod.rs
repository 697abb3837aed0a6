//! Stored functions: definitions with versions (checked in a sandbox before they are
//! stored), their argument specs, dependency environments, calls (sync and async) with
//! per-function concurrency limits, and the tasks that async calls become.

pub mod args;
mod call;
mod definition;
mod environments;
mod queue;
mod registry;
mod running;
mod takeover;
mod tasks;
mod views;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use runbox_store::TaskSignals;
use serde_json::Value;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::leases::ClusterLeases;
use crate::error::{Rejection, RuntimeError};
use crate::execution::Runner;
use crate::replica::Replica;

pub use call::CallRequest;
pub(crate) use call::{Admit, Prepared, Ran};
pub use definition::Registration;
pub use environments::{EngineFailure, EnvironmentState, EnvironmentView};
pub(crate) use environments::{Environment, Environments, Need};
pub use running::{CallSlot, RunningCalls};
pub(crate) use takeover::{recover_interrupted, spawn_takeover};
pub use tasks::{TaskQuery, TaskResult, MAX_RESULT_WAIT};
pub use views::{
    FunctionDeleted, FunctionVersionSummary, FunctionView, Registered, TaskAccepted, TaskStatus,
    TaskView, Terminated,
};

/// What stored functions share: the run pipeline, the calls running now, environment
/// builds and the background tasks of async calls.
#[derive(Clone)]
pub struct Functions {
    runner: Runner,
    running: RunningCalls,
    /// `max_concurrency` across the replicas.
    leases: ClusterLeases,
    environments: Environments,
    tracker: TaskTracker,
    /// Fires at shutdown: running calls are killed, waiting builds give up.
    shutdown: CancellationToken,
    /// Bumped whenever a task of this server ends, so long-polls wake up.
    finished: watch::Sender<u64>,
    /// Bumped whenever a function is stored or deleted here, so that surfaces listing
    /// functions (MCP's tool list) can say their list changed.
    changed: watch::Sender<u64>,
    queue: Arc<Queue>,
}

/// This replica's place at the task queue.
struct Queue {
    /// The runner of the tasks it claims.
    replica_id: String,
    /// This replica: it claims nothing while its engine does not answer.
    replica: Arc<Replica>,
    signals: TaskSignals,
    /// Rung when the queue is worth a look (a task queued, a run ended).
    wake: Notify,
    /// Whether a task may be waiting: set by every wake, cleared when a claim finds
    /// none. A slot given back here looks at the queue only while it is set, so that
    /// the end of every run is not a query.
    maybe_queued: AtomicBool,
}

impl Functions {
    /// `replica` is the runner of the tasks this replica claims; `signals` tell the
    /// other replicas about queued tasks and cancel requests; `leases` hold
    /// `max_concurrency` across the replicas.
    pub(crate) fn new(
        runner: Runner,
        replica: Arc<Replica>,
        signals: TaskSignals,
        leases: ClusterLeases,
    ) -> Self {
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let parallel_builds = runner.config.functions.max_parallel_builds;
        Functions {
            environments: Environments::new(parallel_builds, tracker.clone(), shutdown.clone()),
            runner,
            running: RunningCalls::default(),
            leases,
            tracker,
            shutdown,
            finished: watch::Sender::new(0),
            changed: watch::Sender::new(0),
            queue: Arc::new(Queue {
                replica_id: replica.id.clone(),
                replica,
                signals,
                wake: Notify::new(),
                maybe_queued: AtomicBool::new(true),
            }),
        }
    }

    /// The engine's last failure to build an environment, while no build has worked
    /// since (for /health).
    pub fn engine_failure(&self) -> Option<EngineFailure> {
        self.environments.engine_failure()
    }

    /// Lets running tasks finish for up to `grace`, then kills what is left and waits
    /// until every task has recorded how it ended.
    pub(crate) async fn shutdown(&self, grace: Duration) {
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "stopping the async tasks and environment builds still running at shutdown"
            );
        }
        self.shutdown.cancel();
        if tokio::time::timeout(Duration::from_secs(15), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some async tasks did not stop within 15 s");
        }
    }

    /// Changes whenever a function is stored or deleted by this server.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn functions_changed(&self) {
        self.changed.send_modify(|generation| *generation += 1);
    }

    fn task_finished(&self) {
        self.finished.send_modify(|generation| *generation += 1);
    }
}

/// 422 `invalid_args`, naming the argument when there is one.
pub(crate) fn invalid_args(argument: Option<String>, message: String) -> RuntimeError {
    Rejection {
        argument,
        ..Rejection::new("invalid_args", message)
    }
    .into()
}

pub(crate) fn function_not_found(name: &str) -> RuntimeError {
    RuntimeError::NotFound(format!("no function named `{name}`"))
}

/// How a JSON value is named in a message (`a list`, `a string`, …).
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
