//! A sandbox that lives as long as a stateful session: its agent keeps globals, imports
//! and files between execs. A timeout or a crash ends the session (the container is
//! removed); it never affects another session.

use runbox_core::{ExecEvent, ExecOutcome, ExecRequest};
use tokio::sync::mpsc;

use crate::in_use::InUse;
use crate::protocol::OutputCaps;
use crate::sandbox::Sandbox;
use crate::SandboxError;

pub struct SessionSandbox {
    sandbox: Option<Sandbox>,
    caps: OutputCaps,
    /// Set while an exec runs. Still set at the next call means the previous exec was
    /// dropped half-way: its frames may still arrive, so the connection cannot be
    /// trusted any more and the session ends.
    in_flight: bool,
    _in_use: InUse,
    /// The engine the sandbox runs on: a session stays there for its life.
    engine: String,
}

impl SessionSandbox {
    pub(crate) fn new(sandbox: Sandbox, caps: OutputCaps, in_use: InUse, engine: String) -> Self {
        SessionSandbox {
            sandbox: Some(sandbox),
            caps,
            in_flight: false,
            _in_use: in_use,
            engine,
        }
    }

    /// The engine the session's sandbox runs on.
    pub fn engine(&self) -> &str {
        &self.engine
    }

    /// False once a timeout or a crash has ended the session.
    pub fn is_alive(&self) -> bool {
        !self.in_flight && self.sandbox.as_ref().is_some_and(Sandbox::seems_alive)
    }

    pub fn container_id(&self) -> Option<&str> {
        self.sandbox.as_ref().map(Sandbox::id)
    }

    /// Runs `request` in the session. A timeout kills the session's container (the
    /// state is lost) and says so in the outcome; so does a crash of the interpreter.
    pub async fn exec(
        &mut self,
        request: &ExecRequest,
        events: Option<&mpsc::Sender<ExecEvent>>,
    ) -> Result<ExecOutcome, SandboxError> {
        if self.in_flight {
            self.close().await;
            return Err(SandboxError::SessionEnded);
        }
        let Some(sandbox) = self.sandbox.as_mut() else {
            return Err(SandboxError::SessionEnded);
        };
        self.in_flight = true;
        let ran = sandbox.exec(request, self.caps, true, events).await;
        self.in_flight = false;
        match ran {
            Ok(outcome) => {
                // A timeout, a crash of the interpreter or of the container: the agent
                // said the session cannot go on, or is gone.
                if !sandbox.seems_alive() {
                    self.close().await;
                }
                Ok(outcome)
            }
            Err(err) => {
                self.close().await;
                Err(err)
            }
        }
    }

    /// Removes the container and waits until it is gone. Idempotent.
    pub async fn close(&mut self) {
        if let Some(sandbox) = self.sandbox.take() {
            sandbox.remove().await;
        }
    }
}
