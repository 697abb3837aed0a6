//! What a surface holds: one `Runtime`, and one way in for every run — [`Runtime::start`]
//! admits a [`Job`] and claims what it needs, [`Run::finish`] runs it, records its
//! metrics, stores its images and logs it, whichever surface asked and whether or not
//! it streams.

use std::sync::Arc;

use runbox_core::{Config, ExecEvent, ExecRequest};
use runbox_sandbox::{RunOptions, Sandboxes};
use runbox_store::Store;
use tokio::sync::mpsc;

use crate::admission::{Admission, Admitted};
use crate::error::RuntimeError;
use crate::execution::Runner;
use crate::metrics::Surface;
use crate::result::Executed;
use crate::sessions::{ExecLease, Session, Sessions};

/// Who asks: the subject a surface authenticated.
#[derive(Clone, Debug)]
pub struct Caller {
    pub subject: String,
}

/// What to run.
pub enum Job {
    /// Code in a fresh sandbox.
    OneShot {
        surface: Surface,
        request: ExecRequest,
    },
    /// Code in one of the caller's sessions (found with [`Sessions::find`], which is
    /// what tells the request's language).
    InSession {
        session: Arc<Session>,
        request: ExecRequest,
    },
}

/// The domain every surface shares.
#[derive(Clone)]
pub struct Runtime {
    pub runner: Runner,
    pub sessions: Sessions,
}

impl Runtime {
    pub fn new(runner: Runner, sessions: Sessions) -> Self {
        Runtime { runner, sessions }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.runner.config
    }

    pub fn sandboxes(&self) -> &Sandboxes {
        &self.runner.sandboxes
    }

    pub fn store(&self) -> &Store {
        &self.runner.store
    }

    pub fn admission(&self) -> &Admission {
        &self.runner.admission
    }

    /// Claims what `job` needs (a session's one execution at a time: 409 while another
    /// runs, 410 once it ended) and then admits it (504 after `admission.max_wait`), so
    /// that a surface can answer these before it starts answering a stream. A session
    /// counts against admission only while it executes, like any run.
    pub async fn start(&self, caller: &Caller, job: Job) -> Result<Run, RuntimeError> {
        let work = match job {
            Job::OneShot { surface, request } => Work::OneShot { surface, request },
            Job::InSession { session, request } => Work::InSession {
                lease: session.begin()?,
                session_id: session.id.clone(),
                request,
            },
        };
        let admitted = self.runner.admission.admit().await?;
        Ok(Run {
            runner: self.runner.clone(),
            caller: caller.clone(),
            admitted,
            work,
        })
    }
}

enum Work {
    OneShot {
        surface: Surface,
        request: ExecRequest,
    },
    InSession {
        lease: ExecLease,
        session_id: String,
        request: ExecRequest,
    },
}

/// An admitted run, not yet started; its admission slot is held until it is finished
/// or dropped.
pub struct Run {
    runner: Runner,
    caller: Caller,
    admitted: Admitted,
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
        events: Option<mpsc::Sender<ExecEvent>>,
    ) -> Result<Executed, RuntimeError> {
        let Run {
            runner,
            caller,
            admitted,
            work,
        } = self;
        match work {
            Work::OneShot { surface, request } => {
                let options = RunOptions {
                    events,
                    ..RunOptions::default()
                };
                let executed = runner.run_admitted(surface, &request, options).await;
                drop(admitted);
                if let Ok(executed) = &executed {
                    log_run(&caller, surface, &request, executed, None);
                }
                executed
            }
            Work::InSession {
                lease,
                session_id,
                request,
            } => {
                let exec = async move {
                    let _admitted = admitted;
                    let outcome = lease.exec(&request, events.as_ref()).await;
                    let executed = runner.finish(Surface::Session, &request, outcome).await?;
                    log_run(
                        &caller,
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
        }
    }
}

/// One line per run, like the access log of a run.
fn log_run(
    caller: &Caller,
    surface: Surface,
    request: &ExecRequest,
    executed: &Executed,
    session: Option<&str>,
) {
    let outcome = &executed.outcome;
    tracing::info!(
        subject = %caller.subject,
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
