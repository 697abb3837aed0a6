//! The cluster's ways in to [`Runtime`]: where a request is served (here or at a peer),
//! and what proves a forwarded request.

use std::time::Duration;

use crate::auth::Principal;
use crate::cluster::{ForwardProof, Peer, RunPlace, SessionPlace};
use crate::error::RuntimeError;
use crate::runtime::Runtime;

/// How long a run with nowhere else to go waits for this replica's engine to answer
/// before it is refused.
const ENGINE_RECHECK: Duration = Duration::from_secs(1);

impl Runtime {
    /// This replica's id in the registry.
    pub fn replica_id(&self) -> &str {
        &self.replica.id
    }

    /// Whether this replica may have peers (PostgreSQL).
    pub fn clustered(&self) -> bool {
        self.placement.clustered()
    }

    /// What proves to a peer that a request was forwarded by a replica.
    pub fn forward_proof(&self) -> &ForwardProof {
        &self.forward_proof
    }

    /// Where a synchronous run is served: here, unless every slot is taken and a live
    /// peer has room.
    pub async fn place_run(&self) -> RunPlace {
        match self.placement.place_run().await {
            // The engine watch runs every second: the engine may be back already.
            RunPlace::Nowhere(_) if self.engine_answers_now().await => RunPlace::Here(None),
            place => place,
        }
    }

    /// Whether an engine answers a ping within [`ENGINE_RECHECK`] (a frozen one does
    /// not), asked now rather than as of the engine watch's last look.
    async fn engine_answers_now(&self) -> bool {
        tokio::time::timeout(ENGINE_RECHECK, self.runner.sandboxes.docker_status())
            .await
            .is_ok_and(|status| status.reachable)
    }

    /// Where a request of `principal` for session `id` is served: at the replica that
    /// holds it; here when this replica does or nobody does (404 as ever). A session
    /// whose replica is gone is 410, saying so.
    pub async fn place_session(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<SessionPlace, RuntimeError> {
        if !self.clustered() || self.sessions.find(&principal.subject, id).is_ok() {
            return Ok(SessionPlace::Here);
        }
        match self.session_directory.find(id).await? {
            Some(record) if record.subject == principal.subject => self
                .placement
                .place_session(&record.owner, id)
                .await
                .map_err(RuntimeError::Gone),
            _ => Ok(SessionPlace::Here),
        }
    }

    /// Replica `id` when it is a live peer: what it holds in memory alone (an MCP
    /// session) is sent there. `None` when it is this replica, or gone.
    pub async fn live_peer(&self, id: &str) -> Option<Peer> {
        if !self.clustered() {
            return None;
        }
        self.placement.live_peer(id).await
    }

    /// The live peers that hold sessions of `principal`: `GET /sessions` asks them for
    /// theirs. None on SQLite.
    pub async fn session_peers(&self, principal: &Principal) -> Result<Vec<Peer>, RuntimeError> {
        if !self.clustered() {
            return Ok(Vec::new());
        }
        let owners = self
            .session_directory
            .owners_for(&principal.subject)
            .await?;
        if owners.iter().all(|owner| owner == self.replica_id()) {
            return Ok(Vec::new());
        }
        self.placement
            .live_peers(&owners)
            .await
            .map_err(RuntimeError::Unavailable)
    }
}
