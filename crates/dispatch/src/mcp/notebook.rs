//! The runbox session behind one MCP session (handshake era): opened by the first code
//! tool that needs it, kept while its interpreter lives, ended with the MCP session
//! (a `DELETE`, or the MCP session idling out). It counts against the caller's session
//! cap like any session.

use std::sync::Arc;

use runbox_core::{Isolation, Language};
use runbox_runtime::sessions::Session;
use runbox_runtime::{Runtime, RuntimeError};
use tokio::sync::Mutex;

use crate::auth::Principal;

pub struct Notebook {
    runtime: Runtime,
    /// The session and whom it belongs to.
    open: Mutex<Option<(Principal, String)>>,
}

impl Notebook {
    pub fn new(runtime: Runtime) -> Self {
        Notebook {
            runtime,
            open: Mutex::new(None),
        }
    }

    /// The session, opened now when there is none, or when the last one has ended (a
    /// timeout or a crash takes the interpreter with it; the next call gets a new one,
    /// as a notebook's kernel restarts).
    pub async fn session(&self, principal: &Principal) -> Result<Arc<Session>, RuntimeError> {
        let mut open = self.open.lock().await;
        if let Some((owner, id)) = open.as_ref() {
            if owner.subject == principal.subject {
                if let Ok(session) = self.runtime.session(principal, id) {
                    if session.info().alive {
                        return Ok(session);
                    }
                }
            }
        }
        let info = self
            .runtime
            .open_session(principal, Language::Python, None, Isolation::Standard)
            .await?;
        if let Some((owner, old)) = open.replace((principal.clone(), info.id.clone())) {
            // A session of another subject's, or one that has ended: nothing more
            // will run in it.
            let runtime = self.runtime.clone();
            tokio::spawn(async move {
                let _ = runtime.end_session(&owner, &old).await;
            });
        }
        self.runtime.session(principal, &info.id)
    }
}

impl Drop for Notebook {
    fn drop(&mut self) {
        let Some((owner, id)) = self.open.get_mut().take() else {
            return;
        };
        let runtime = self.runtime.clone();
        // The MCP session ended: its container goes now rather than at its idle timeout.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(err) = runtime.end_session(&owner, &id).await {
                    tracing::debug!(session = %id, error = %err, "an MCP session's notebook was already gone");
                }
            });
        }
    }
}
