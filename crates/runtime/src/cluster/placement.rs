//! Where a request is served: here, or at a peer. A synchronous run goes to a peer only
//! when this replica's admission is full (it would queue and maybe time out) and a live
//! peer has room; a session's requests go to the replica that holds it. Room is what
//! the registry says (`capacity - running` at the peer's last heartbeat) less the runs
//! this replica has sent it since, so that a burst does not pile onto one stale figure.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use runbox_store::{Backend, ReplicaRecord, Store};

use crate::admission::{Admission, Reserved};
use crate::replica::Replica;

/// A peer a request is sent to. While it exists, the request counts against the peer's
/// room here.
pub struct Peer {
    pub id: String,
    /// Its base URL (`http://10.0.0.2:8000`).
    pub address: String,
    /// Counts against the peer's room while the request is a run or a session's.
    _sending: Option<Sending>,
}

/// Where a synchronous run is served.
pub enum RunPlace {
    /// Here; with the slot it was promised when one was free.
    Here(Option<Reserved>),
    Peer(Peer),
}

/// Where a request for a session is served.
pub enum SessionPlace {
    /// This replica holds it, or nobody does (it answers 404 or 410 as for any session).
    Here,
    Owner(Peer),
}

#[derive(Clone)]
pub struct Placement {
    store: Store,
    replica: Arc<Replica>,
    dead_after: Duration,
    admission: Admission,
    /// Runs this replica is sending to each peer now.
    sending: Arc<Mutex<HashMap<String, i64>>>,
}

struct Sending {
    sending: Arc<Mutex<HashMap<String, i64>>>,
    peer: String,
}

impl Drop for Sending {
    fn drop(&mut self) {
        let mut sending = lock(&self.sending);
        if let Some(count) = sending.get_mut(&self.peer) {
            *count -= 1;
            if *count <= 0 {
                sending.remove(&self.peer);
            }
        }
    }
}

impl Placement {
    pub fn new(
        store: Store,
        replica: Arc<Replica>,
        dead_after: Duration,
        admission: Admission,
    ) -> Self {
        Placement {
            store,
            replica,
            dead_after,
            admission,
            sending: Arc::default(),
        }
    }

    /// Whether there can be peers at all (several replicas need PostgreSQL).
    pub fn clustered(&self) -> bool {
        self.store.backend() == Backend::Postgres
    }

    /// Here while admission has a free slot and the engine answers; else the live peer
    /// with the most room (the freshest heartbeat among equals); here again when none
    /// has any.
    pub async fn place_run(&self) -> RunPlace {
        let engine_answers = self.replica.engine_answers.load(Ordering::Relaxed);
        if !self.clustered() {
            return RunPlace::Here(None);
        }
        if engine_answers {
            if let Some(reserved) = self.admission.reserve() {
                return RunPlace::Here(Some(reserved));
            }
        }
        let replicas = match self.store.replicas().await {
            Ok(replicas) => replicas,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the registry; running here");
                return RunPlace::Here(None);
            }
        };
        let sending = lock(&self.sending);
        let best = replicas
            .iter()
            .filter(|peer| peer.id != self.replica.id && peer.available && self.alive(peer))
            .map(|peer| {
                let sent = sending.get(&peer.id).copied().unwrap_or(0);
                (peer, peer.capacity - peer.running - sent)
            })
            .filter(|(_, room)| *room > 0)
            .max_by_key(|(peer, room)| (*room, peer.heartbeat_at));
        let Some((peer, _)) = best else {
            return RunPlace::Here(None);
        };
        drop(sending);
        RunPlace::Peer(self.sending_to(peer))
    }

    /// Where the session `record` names is served: at its owner while the owner is
    /// alive; `Err(why)` when the owner is gone.
    pub(crate) async fn place_session(
        &self,
        owner: &str,
        session: &str,
    ) -> Result<SessionPlace, String> {
        if owner == self.replica.id {
            return Ok(SessionPlace::Here);
        }
        let replicas = self.store.replicas().await.map_err(|err| {
            format!("cannot tell where session {session} lives: the database: {err}")
        })?;
        match replicas.iter().find(|peer| peer.id == owner) {
            Some(peer) if self.alive(peer) => Ok(SessionPlace::Owner(self.sending_to(peer))),
            Some(peer) => Err(format!(
                "session {session} lived on replica {owner} ({}), which is gone: no \
                 heartbeat for {} s; its sandbox is lost",
                peer.address,
                (Utc::now() - peer.heartbeat_at).num_seconds()
            )),
            None => Err(format!(
                "session {session} lived on replica {owner}, which is gone: it left the \
                 cluster; its sandbox is lost"
            )),
        }
    }

    /// The live peers among `ids` (this replica left out), to ask something that
    /// takes no room there.
    pub(crate) async fn live_peers(&self, ids: &[String]) -> Result<Vec<Peer>, String> {
        let replicas = self
            .store
            .replicas()
            .await
            .map_err(|err| format!("cannot read the registry: {err}"))?;
        Ok(replicas
            .iter()
            .filter(|peer| peer.id != self.replica.id && ids.contains(&peer.id))
            .filter(|peer| self.alive(peer))
            .map(|peer| Peer {
                id: peer.id.clone(),
                address: peer.address.clone(),
                _sending: None,
            })
            .collect())
    }

    fn alive(&self, peer: &ReplicaRecord) -> bool {
        (Utc::now() - peer.heartbeat_at)
            .to_std()
            .map_or(true, |age| age <= self.dead_after)
    }

    fn sending_to(&self, peer: &ReplicaRecord) -> Peer {
        *lock(&self.sending).entry(peer.id.clone()).or_default() += 1;
        Peer {
            id: peer.id.clone(),
            address: peer.address.clone(),
            _sending: Some(Sending {
                sending: self.sending.clone(),
                peer: peer.id.clone(),
            }),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
