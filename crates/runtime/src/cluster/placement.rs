//! Where a request is served: here, or at a peer. A synchronous run goes to a peer only
//! when this replica's admission is full (it would queue and maybe time out) or its
//! engine does not answer, and a live peer has room; a session's requests go to the
//! replica that holds it. Room is what the registry says (`capacity - running` at the
//! peer's last heartbeat) less the runs this replica has sent it since, so that a burst
//! does not pile onto one stale figure.
//!
//! The registry is read from the database in the background every second (or every
//! heartbeat when that is shorter), not on each request: a forwarded run pays no
//! database round trip. Its figures are at most that much older than the heartbeats
//! they carry. Where the copy has no peer with room, or does not know a session's owner
//! or thinks it dead, the database is asked afresh (the copy may predate a peer that
//! joined) before the run waits here or the session is called gone.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use runbox_store::{Backend, ReplicaRecord, Store, StoreError};
use tokio_util::sync::CancellationToken;

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

impl Peer {
    /// `peer`, to send what is not a run (it takes no room there).
    fn taking_no_room(peer: &ReplicaRecord) -> Peer {
        Peer {
            id: peer.id.clone(),
            address: peer.address.clone(),
            _sending: None,
        }
    }
}

/// Where a synchronous run is served.
pub enum RunPlace {
    /// Here; with the slot it was promised when one was free.
    Here(Option<Reserved>),
    Peer(Peer),
    /// Nowhere now: this replica's engine does not answer and no peer has room (why).
    Nowhere(String),
}

/// How often the registry is read in the background (at most; a shorter heartbeat
/// reads it every heartbeat).
const REGISTRY_REFRESH: Duration = Duration::from_secs(1);
/// A copy older than this (the background reads failing) is not used: the request
/// reads the registry itself.
const REGISTRY_STALE: Duration = Duration::from_secs(5);
/// A run that finds no peer with room in a copy older than this reads the registry
/// afresh before it waits here (while every replica is full, about one such read per
/// this interval).
const REGISTRY_RECHECK: Duration = Duration::from_millis(100);

/// The registry as last read.
struct RegistryCopy {
    read_at: Instant,
    replicas: Arc<Vec<ReplicaRecord>>,
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
    registry: Arc<RwLock<Option<RegistryCopy>>>,
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
            registry: Arc::default(),
        }
    }

    /// Reads the registry every [`REGISTRY_REFRESH`] (or `heartbeat`, when shorter)
    /// until `stop` (nothing on SQLite: no peers).
    pub(crate) fn spawn_refresh(&self, heartbeat: Duration, stop: CancellationToken) {
        if !self.clustered() {
            return;
        }
        let placement = self.clone();
        let every = REGISTRY_REFRESH.min(heartbeat);
        tokio::spawn(async move {
            let mut reads = tokio::time::interval(every);
            reads.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = reads.tick() => {}
                }
                if let Err(err) = placement.read_registry().await {
                    tracing::warn!(error = %err, "cannot read the registry of replicas");
                }
            }
        });
    }

    /// The registry as last read, when that is recent; else as read now.
    async fn registry(&self) -> Result<Arc<Vec<ReplicaRecord>>, StoreError> {
        match self.copy_within(REGISTRY_STALE) {
            Some(replicas) => Ok(replicas),
            None => self.read_registry().await,
        }
    }

    /// The copy of the registry when it was read within `age`.
    fn copy_within(&self, age: Duration) -> Option<Arc<Vec<ReplicaRecord>>> {
        self.registry
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .filter(|copy| copy.read_at.elapsed() <= age)
            .map(|copy| copy.replicas.clone())
    }

    /// The registry as the database has it now; kept as the copy requests use.
    async fn read_registry(&self) -> Result<Arc<Vec<ReplicaRecord>>, StoreError> {
        let replicas = Arc::new(self.store.replicas().await?);
        *self
            .registry
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(RegistryCopy {
            read_at: Instant::now(),
            replicas: replicas.clone(),
        });
        Ok(replicas)
    }

    /// Whether there can be peers at all (several replicas need PostgreSQL).
    pub fn clustered(&self) -> bool {
        self.store.backend() == Backend::Postgres
    }

    /// Here while admission has a free slot and the engine answers; else the live peer
    /// with the most room (the freshest heartbeat among equals); when none has any, here
    /// again (to wait for a slot) if the engine answers, and nowhere if it does not (a
    /// launch would only wait out its bound on a frozen engine).
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
        let mut best = match self.registry().await {
            Ok(replicas) => self.roomiest(&replicas),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the registry; running here");
                return RunPlace::Here(None);
            }
        };
        if best.is_none() && self.copy_within(REGISTRY_RECHECK).is_none() {
            // The copy may predate a peer that joined, or one that has room again.
            match self.read_registry().await {
                Ok(replicas) => best = self.roomiest(&replicas),
                Err(err) => tracing::warn!(error = %err, "cannot read the registry"),
            }
        }
        let Some(peer) = best else {
            if engine_answers {
                return RunPlace::Here(None);
            }
            return RunPlace::Nowhere(format!(
                "this replica's engine does not answer and no other replica has room \
                 now (replica {})",
                self.replica.id
            ));
        };
        RunPlace::Peer(self.sending_to(&peer))
    }

    /// The live, available peer in `replicas` with the most room (the freshest heartbeat
    /// among equals), when one has any.
    fn roomiest(&self, replicas: &[ReplicaRecord]) -> Option<ReplicaRecord> {
        let sending = lock(&self.sending);
        replicas
            .iter()
            .filter(|peer| peer.id != self.replica.id && peer.available && self.alive(peer))
            .map(|peer| {
                let sent = sending.get(&peer.id).copied().unwrap_or(0);
                (peer, peer.capacity - peer.running - sent)
            })
            .filter(|(_, room)| *room > 0)
            .max_by_key(|(peer, room)| (*room, peer.heartbeat_at))
            .map(|(peer, _)| peer.clone())
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
        let known = self.known(owner).await.map_err(|err| {
            format!("cannot tell where session {session} lives: the database: {err}")
        })?;
        match known {
            Some(peer) if self.alive(&peer) => Ok(SessionPlace::Owner(self.sending_to(&peer))),
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

    /// Replica `id` when it is another live one, to send what it holds (an MCP session);
    /// `None` when it is this one, or gone.
    pub(crate) async fn live_peer(&self, id: &str) -> Option<Peer> {
        if id == self.replica.id {
            return None;
        }
        match self.known(id).await {
            Ok(Some(peer)) if self.alive(&peer) => Some(Peer::taking_no_room(&peer)),
            Ok(_) => None,
            Err(err) => {
                tracing::warn!(error = %err, replica = id, "cannot read the registry");
                None
            }
        }
    }

    /// Replica `id` as the registry has it: from the copy when it is alive there; else
    /// as the database says now (the copy may predate it, or its last heartbeats).
    async fn known(&self, id: &str) -> Result<Option<ReplicaRecord>, StoreError> {
        let find = |replicas: &[ReplicaRecord]| replicas.iter().find(|peer| peer.id == id).cloned();
        let copy = self.registry().await?;
        match find(&copy) {
            Some(peer) if self.alive(&peer) => Ok(Some(peer)),
            _ => Ok(find(&self.read_registry().await?)),
        }
    }

    /// The live peers among `ids` (this replica left out), to ask something that
    /// takes no room there.
    pub(crate) async fn live_peers(&self, ids: &[String]) -> Result<Vec<Peer>, String> {
        let unreadable = |err| format!("cannot read the registry: {err}");
        let mut replicas = self.registry().await.map_err(unreadable)?;
        let unknown = |replicas: &[ReplicaRecord]| {
            ids.iter()
                .any(|id| *id != self.replica.id && !replicas.iter().any(|peer| peer.id == *id))
        };
        if unknown(&replicas) {
            // A replica that joined since the copy was read.
            replicas = self.read_registry().await.map_err(unreadable)?;
        }
        Ok(replicas
            .iter()
            .filter(|peer| peer.id != self.replica.id && ids.contains(&peer.id))
            .filter(|peer| self.alive(peer))
            .map(Peer::taking_no_room)
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
