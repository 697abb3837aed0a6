//! One way in for every run, whichever surface asks and whether or not it streams:
//! [`Runtime::start`] claims what a [`Job`] needs and admits it, [`Run::finish`] runs
//! it, records its metrics, stores its images and logs it.

use std::sync::Arc;

use runbox_core::ExecRequest;
use runbox_sandbox::RunOptions;
use tokio::sync::mpsc;

use crate::admission::Admitted;
use crate::auth::Principal;
use crate::error::RuntimeError;
use crate::execution::Runner;
use crate::functions::{Admit, CallRequest, Functions, Prepared, Ran};
use crate::metrics::Surface;
use crate::result::Executed;
use crate::run_event::RunEvent;
use crate::runtime::Runtime;
use crate::sessions::{ExecLease, Session};

/// What to run.
pub enum Job {
    /// Code in a fresh sandbox.
    OneShot {
        surface: Surface,
        request: ExecRequest,
    },
    /// Code in one of the caller's sessions (found with [`Runtime::session`], which is
    /// what tells the request's language).
    InSession {
        session: Arc<Session>,
        request: ExecRequest,
    },
    /// A synchronous call of the stored function `function` (an async call is a task:
    /// [`Functions::enqueue`]).
    Call { function: String, call: CallRequest },
}

impl Runtime {
    /// Claims what `job` needs and admits it, so that a surface can answer these
    /// before it starts answering a stream: a session's one execution at a time (409
    /// while another runs, 410 once it ended), then admission (504 after
    /// `admission.max_wait`). A call is checked here (404, 422 `invalid_args`, 429 at
    /// its `max_concurrency`); it is admitted in [`Run::finish`], once its dependency
    /// environment is there, so that a build does not hold a run's slot.
    pub async fn start(&self, principal: &Principal, job: Job) -> Result<Run, RuntimeError> {
        let work = match job {
            Job::OneShot {
                surface,
                mut request,
            } => {
                request.isolation = request.isolation.at_least(&principal.isolation);
                Work::OneShot {
                    surface,
                    request,
                    admitted: self.runner.admission.admit().await?,
                }
            }
            Job::InSession { session, request } => {
                let lease = session.begin()?;
                Work::InSession {
                    lease,
                    session_id: session.id.clone(),
                    request,
                    admitted: self.runner.admission.admit().await?,
                }
            }
            Job::Call { function, call } => {
                principal.require("run")?;
                let mut prepared = self.functions.prepare(&function, &call, None).await?;
                prepared.isolation = prepared.isolation.at_least(&principal.isolation);
                Work::Call(prepared)
            }
        };
        Ok(Run {
            runner: self.runner.clone(),
            functions: self.functions.clone(),
            principal: principal.clone(),
            work,
        })
    }
}

enum Work {
    OneShot {
        surface: Surface,
        request: ExecRequest,
        admitted: Admitted,
    },
    InSession {
        lease: ExecLease,
        session_id: String,
        request: ExecRequest,
        admitted: Admitted,
    },
    Call(Prepared),
}

/// A run that was started and not yet finished; what it holds (an admission slot, a
/// session's lease, a function's concurrency slot) is held until it is finished or
/// dropped.
pub struct Run {
    runner: Runner,
    functions: Functions,
    principal: Principal,
    work: Work,
}

impl Run {
    /// Runs to the end and returns the outcome with its images stored. `events`, when
    /// given, receives the output as it is written. A one-shot run stops when this
    /// future is dropped (its sandbox is removed); a session's execution runs in a task
    /// of its own, so that a client that goes away does not cut it off half-way, which
    /// would leave the interpreter in an unknown state.
    pub async fn finish(
        self,
        events: Option<mpsc::Sender<RunEvent>>,
    ) -> Result<Executed, RuntimeError> {
        let Run {
            runner,
            functions,
            principal,
            work,
        } = self;
        match work {
            Work::OneShot {
                surface,
                request,
                admitted,
            } => {
                let executed = runner
                    .run_streamed(surface, &request, RunOptions::default(), events)
                    .await;
                drop(admitted);
                if let Ok(executed) = &executed {
                    log_run(&principal, surface, &request, executed, None);
                }
                executed
            }
            Work::InSession {
                lease,
                session_id,
                request,
                admitted,
            } => {
                let exec = async move {
                    let _admitted = admitted;
                    let asked = &request;
                    let (outcome, shown) = runner
                        .relayed(events, |events| async move {
                            lease.exec(asked, events.as_ref()).await
                        })
                        .await;
                    let executed = runner
                        .finish(Surface::Session, &request, outcome, shown)
                        .await?;
                    log_run(
                        &principal,
                        Surface::Session,
                        &request,
                        &executed,
                        Some(&session_id),
                    );
                    Ok(executed)
                };
                tokio::spawn(exec).await.map_err(|err| {
                    RuntimeError::Internal(format!("the session's exec task failed: {err}"))
                })?
            }
            Work::Call(mut prepared) => {
                let ran = functions.run(&prepared, Admit::Bounded).await;
                // Its place under max_concurrency is free before the caller hears back,
                // so that a call sent on the answer is not refused for this one.
                prepared.give_back_lease().await;
                let executed = match ran? {
                    Ran::Finished(executed) => *executed,
                    Ran::Cancelled => {
                        Executed::cancelled("the call was cancelled before it started")
                    }
                };
                tracing::info!(
                    subject = %principal.subject,
                    surface = Surface::Function.as_str(),
                    function = %prepared.function.name,
                    success = executed.outcome.error.is_none(),
                    error = executed.outcome.error.as_ref().map(|e| e.kind.as_str()),
                    execution_s = executed.outcome.execution_time.as_secs_f64(),
                    "call"
                );
                Ok(executed)
            }
        }
    }
}

/// One line per run, like the access log of a run.
fn log_run(
    principal: &Principal,
    surface: Surface,
    request: &ExecRequest,
    executed: &Executed,
    session: Option<&str>,
) {
    let outcome = &executed.outcome;
    tracing::info!(
        subject = %principal.subject,
        surface = surface.as_str(),
        language = request.language.as_str(),
        session,
        success = outcome.error.is_none(),
        error = outcome.error.as_ref().map(|e| e.kind.as_str()),
        truncated = outcome.truncated,
        execution_s = outcome.execution_time.as_secs_f64(),
        "execute"
    );
}
