//! Which image a function runs in, building its dependency environment when needed.
//! Builds are single-flight: concurrent registrations and calls that need the same set
//! share one build (an in-process map of shared futures); the database records the
//! status and pip's log for GET /functions/{name}, for other replicas and across
//! restarts. A build runs in its own task, so a client that goes away does not stop it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use runbox_sandbox::{DependencySet, EnvironmentPlan};
use runbox_store::{EnvironmentRecord, EnvironmentStatus};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::RuntimeError;
use crate::execution::Runner;

/// A call that finds its environment failed retries the build only after this long, so
/// that a broken requirement does not cost a pip run per call.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(60);

/// The image a function can run in, or why there is none.
#[derive(Clone, Debug)]
pub enum Environment {
    Ready {
        image: String,
    },
    /// pip could not install the requirements: the user's failure (422 `dependency`).
    Failed {
        message: String,
        log: String,
    },
    /// runbox or its Docker engine failed to build it: a 503, and on /health.
    Unbuildable {
        message: String,
    },
}

// The last build that the engine failed, for /health; cleared by a build that works.
// (A plain comment: the schema has no description.)
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EngineFailureHealth)]
pub struct EngineFailure {
    pub message: String,
    /// When it happened (RFC 3339).
    pub at: String,
}

/// What GET /functions/{name} shows.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EnvironmentView {
    /// `ready`, `building` or `failed`.
    pub status: EnvironmentState,
    /// The image calls run in.
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    pub log: String,
    /// Seconds the last build took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_seconds: Option<f64>,
}

/// The state of a dependency environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = EnvironmentStatus)]
pub enum EnvironmentState {
    Ready,
    Building,
    Failed,
}

/// Who is asking: a registration always rebuilds a failed environment; a call only
/// after [`RETRY_FAILED_AFTER`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Registration,
    Call,
}

type Build = Shared<BoxFuture<'static, Environment>>;

#[derive(Clone)]
pub struct Environments {
    inflight: Arc<Mutex<HashMap<String, Build>>>,
    /// Builds are heavy (network, pip, a commit): only so many at once.
    builders: Arc<Semaphore>,
    engine_failure: Arc<Mutex<Option<EngineFailure>>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Environments {
    pub fn new(parallel_builds: usize, tracker: TaskTracker, shutdown: CancellationToken) -> Self {
        Environments {
            inflight: Arc::default(),
            builders: Arc::new(Semaphore::new(parallel_builds.max(1))),
            engine_failure: Arc::default(),
            tracker,
            shutdown,
        }
    }

    /// The image for `deps`: the sandbox image when there are none, else the
    /// environment image, built first when it is missing (the caller waits).
    pub async fn ensure(
        &self,
        state: &Runner,
        deps: &DependencySet,
        need: Need,
    ) -> Result<Environment, RuntimeError> {
        if deps.is_empty() {
            return Ok(Environment::Ready {
                image: state.sandboxes.default_image().to_string(),
            });
        }
        let plan = state.sandboxes.plan_environment(deps);
        if let Some(build) = self.running(&plan.hash) {
            return Ok(build.await);
        }
        match state.store.environment(&plan.hash).await? {
            Some(record) if record.status == EnvironmentStatus::Ready => {
                if state.sandboxes.image_exists(&record.image).await? {
                    return Ok(Environment::Ready {
                        image: record.image,
                    });
                }
                tracing::info!(image = %record.image, "environment image is gone; rebuilding it");
            }
            Some(record) if record.status == EnvironmentStatus::Failed && need == Need::Call => {
                let age = chrono::Utc::now().signed_duration_since(record.updated_at);
                if age.to_std().is_ok_and(|age| age < RETRY_FAILED_AFTER) {
                    return Ok(failed_from(&record));
                }
            }
            _ => {}
        }
        Ok(self.start(state, deps, plan).await)
    }

    /// The status to show for `deps`, starting a build in the background when the
    /// environment is missing (after an upgrade of the sandbox image, or a prune).
    pub async fn view(
        &self,
        state: &Runner,
        deps: &DependencySet,
    ) -> Result<EnvironmentView, RuntimeError> {
        if deps.is_empty() {
            return Ok(EnvironmentView {
                status: EnvironmentState::Ready,
                image: state.sandboxes.default_image().to_string(),
                hash: None,
                log: String::new(),
                build_seconds: None,
            });
        }
        let plan = state.sandboxes.plan_environment(deps);
        let record = state.store.environment(&plan.hash).await?;
        let building = self.running(&plan.hash).is_some();
        let view = |status: EnvironmentState, record: Option<&EnvironmentRecord>| EnvironmentView {
            status,
            image: record.map_or_else(|| plan.image.clone(), |r| r.image.clone()),
            hash: Some(plan.hash.clone()),
            log: record.map(|r| r.log.clone()).unwrap_or_default(),
            build_seconds: record.and_then(|r| r.build_ms).map(|ms| ms as f64 / 1000.0),
        };
        if building {
            return Ok(view(EnvironmentState::Building, None));
        }
        match &record {
            Some(r) if r.status == EnvironmentStatus::Failed => {
                Ok(view(EnvironmentState::Failed, Some(r)))
            }
            Some(r)
                if r.status == EnvironmentStatus::Ready
                    && state.sandboxes.image_exists(&r.image).await? =>
            {
                Ok(view(EnvironmentState::Ready, Some(r)))
            }
            // Building elsewhere (another replica), or missing: make sure it is built.
            _ => {
                if !matches!(&record, Some(r) if r.status == EnvironmentStatus::Building) {
                    drop(self.start(state, deps, plan.clone()));
                }
                Ok(view(EnvironmentState::Building, None))
            }
        }
    }

    /// The engine's last failure to build an environment, while no build has worked since.
    pub fn engine_failure(&self) -> Option<EngineFailure> {
        lock(&self.engine_failure).clone()
    }

    fn running(&self, hash: &str) -> Option<Build> {
        lock(&self.inflight).get(hash).cloned()
    }

    /// Joins the build of `plan` or starts it.
    fn start(&self, state: &Runner, deps: &DependencySet, plan: EnvironmentPlan) -> Build {
        let mut inflight = lock(&self.inflight);
        if let Some(build) = inflight.get(&plan.hash) {
            return build.clone();
        }
        let task = {
            let state = state.clone();
            let deps = deps.clone();
            let plan = plan.clone();
            let inflight = self.inflight.clone();
            let shutdown = self.shutdown.clone();
            let builders = self.builders.clone();
            let engine_failure = self.engine_failure.clone();
            async move {
                let built = tokio::select! {
                    built = async {
                        let _turn = builders.acquire_owned().await;
                        build(&state, &deps, &plan).await
                    } => built,
                    () = shutdown.cancelled() => Environment::Unbuildable {
                        message: "runbox is shutting down".into(),
                    },
                };
                *lock(&engine_failure) = match &built {
                    Environment::Unbuildable { message } => Some(EngineFailure {
                        message: message.clone(),
                        at: chrono::Utc::now().to_rfc3339(),
                    }),
                    Environment::Ready { .. } | Environment::Failed { .. } => None,
                };
                lock(&inflight).remove(&plan.hash);
                built
            }
        };
        let handle = self.tracker.spawn(task);
        let map = self.inflight.clone();
        let hash = plan.hash.clone();
        let shared = async move {
            handle.await.unwrap_or_else(|err| {
                // The task could not remove its own entry: without this, the set
                // would read `building` for ever.
                lock(&map).remove(&hash);
                Environment::Unbuildable {
                    message: format!("the environment build stopped unexpectedly: {err}"),
                }
            })
        }
        .boxed()
        .shared();
        inflight.insert(plan.hash.clone(), shared.clone());
        shared
    }
}

async fn build(state: &Runner, deps: &DependencySet, plan: &EnvironmentPlan) -> Environment {
    let builder = crate::instance_name(&state.config);
    let requirements = deps.requirements();
    if let Err(err) = state
        .store
        .environment_building(&plan.hash, &plan.image, requirements, &builder)
        .await
    {
        tracing::warn!(error = %err, "cannot record the start of an environment build");
    }
    tracing::info!(image = %plan.image, requirements = ?requirements, "building a dependency environment");
    let timeout = state.config.functions.build_timeout.get();
    let built = state.sandboxes.build_environment(deps, plan, timeout).await;
    let (status, image, log, elapsed_ms, outcome) = match built {
        Ok(report) => {
            tracing::info!(
                image = %report.image,
                seconds = report.duration.as_secs_f64(),
                "dependency environment ready"
            );
            let ms = report.duration.as_millis() as i64;
            let outcome = Environment::Ready {
                image: report.image.clone(),
            };
            (
                EnvironmentStatus::Ready,
                report.image,
                report.log,
                ms,
                outcome,
            )
        }
        Err(failure) if failure.by_engine => {
            // Nothing is known about the requirements: the set is not recorded as
            // failed (that would answer the next calls 422), and the next try builds.
            tracing::error!(image = %plan.image, error = %failure, "the engine could not build a dependency environment");
            if let Err(err) = state.store.delete_environment(&plan.hash).await {
                tracing::warn!(error = %err, "cannot clear the record of an environment build");
            }
            return Environment::Unbuildable {
                message: failure.message,
            };
        }
        Err(failure) => {
            tracing::warn!(image = %plan.image, error = %failure, "dependency environment failed");
            let outcome = Environment::Failed {
                message: failure.message.clone(),
                log: failure.log.clone(),
            };
            let log = failure_log(&failure.message, &failure.log);
            (
                EnvironmentStatus::Failed,
                plan.image.clone(),
                log,
                0,
                outcome,
            )
        }
    };
    if let Err(err) = state
        .store
        .environment_finished(&plan.hash, status, &image, &log, elapsed_ms)
        .await
    {
        tracing::warn!(error = %err, "cannot record the end of an environment build");
    }
    outcome
}

/// What is stored for a failed build: pip's output, then why runbox gave up.
fn failure_log(message: &str, log: &str) -> String {
    if log.is_empty() {
        message.to_string()
    } else {
        format!("{log}\n{message}")
    }
}

fn failed_from(record: &EnvironmentRecord) -> Environment {
    let summary = record
        .log
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("the build failed");
    Environment::Failed {
        message: format!(
            "installing {} failed: {summary}",
            record.dependencies.join(", ")
        ),
        log: record.log.clone(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
