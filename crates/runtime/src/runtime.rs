//! What a surface holds: one `Runtime`, opened once per server. It owns what runs,
//! sessions, functions and tasks share (the configuration, the sandboxes, the store,
//! admission, the authenticator) and stops them in order at shutdown. The one way in
//! for a run is [`Runtime::start`] (`run.rs`).

use std::sync::Arc;
use std::time::Duration;

use runbox_core::{Config, Isolation, Language};
use runbox_sandbox::{EngineSet, SandboxError, Sandboxes};
use runbox_store::{spawn_retention_sweep, Retention, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::auth::{jwt_secret, Authenticator, Principal, SecretError};
use crate::cluster::leases::ClusterLeases;
use crate::cluster::placement::Placement;
use crate::cluster::proof::{self, ForwardProof};
use crate::cluster::session_directory::SessionDirectory;
use crate::cluster::upkeep::Upkeep;
use crate::error::RuntimeError;
use crate::execution::Runner;
use crate::functions::{recover_interrupted, spawn_takeover, Functions};
use crate::instance::instance_name;
use crate::replica::{
    beat, claim_sqlite, probe_engine, spawn_heartbeat, Replica, ReplicaError, SqliteClaim,
};
use crate::sessions::{Session, SessionInfo, Sessions};

const RETENTION_SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Why a runtime could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Replica(#[from] ReplicaError),
}

/// The domain every surface shares.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) runner: Runner,
    pub(crate) sessions: Sessions,
    pub(crate) functions: Functions,
    auth: Arc<Authenticator>,
    /// Background work that ends with the runtime (the retention sweep, the reaper,
    /// the heartbeat).
    background: CancellationToken,
    pub(crate) replica: Arc<Replica>,
    /// Where requests are served: here or at a peer.
    pub(crate) placement: Placement,
    pub(crate) forward_proof: ForwardProof,
    /// This replica's sessions as the cluster sees them.
    pub(crate) session_directory: SessionDirectory,
    /// The heartbeat's task: shutdown waits for it to leave the registry.
    heartbeat: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// Held while this server runs on a SQLite file.
    _sqlite_claim: Arc<Option<SqliteClaim>>,
}

impl Runtime {
    /// Opens the store, marks what a dead run of this instance left unfinished, starts
    /// the sandboxes (sweep, pools), registers this replica and starts the background
    /// work (heartbeat, the task queue, watching for dead replicas). `image` is the
    /// sandbox image, already made sure of by the caller; `public_url` is where stored
    /// images are served from (no trailing slash).
    pub async fn open(
        config: Arc<Config>,
        engines: impl Into<EngineSet>,
        image: String,
        public_url: String,
    ) -> Result<Runtime, OpenError> {
        let store = Store::connect(&config.database_url()).await?;
        let sqlite_claim = claim_sqlite(store.sqlite_file().as_deref())?;
        let secret = jwt_secret(&config.auth.jwt_secret, &config.data_dir, &store).await?;
        let auth = Arc::new(Authenticator::new(
            &config.auth,
            &secret,
            Arc::new(store.clone()),
        ));
        let instance = instance_name(&config);
        let replica = Arc::new(Replica::new(&config, &public_url, &instance));
        recover_interrupted(&store, &replica).await?;
        let sandboxes = Sandboxes::start(config.clone(), engines, image, instance.clone()).await?;
        let background = CancellationToken::new();
        spawn_retention_sweep(
            store.clone(),
            Retention {
                images: config.images.retention.get(),
                tasks: config.tasks.retention.get(),
            },
            RETENTION_SWEEP_EVERY,
            background.clone(),
        );
        let sessions = Sessions::start(
            sandboxes.clone(),
            config.sessions.clone(),
            background.clone(),
        );
        let runner = Runner {
            admission: Admission::new(
                config.admission.max_concurrent_runs,
                config.admission.max_wait.get(),
            ),
            config: config.clone(),
            sandboxes,
            store,
            public_url: public_url.into(),
        };
        // Registered before it claims anything: a peer fails the tasks of runners the
        // registry does not know.
        probe_engine(&replica, &runner.sandboxes).await;
        beat(&replica, &config, &runner.store, &runner.admission).await?;
        if sqlite_claim.is_some() {
            runner.store.forget_replicas_except(&replica.id).await?;
        }
        let signals = runner.store.task_signals().await?;
        let listener = signals.listen().await?;
        let dead_after = config.cluster.dead_after.get();
        let leases = ClusterLeases::new(runner.store.clone(), &replica.id, dead_after);
        let functions = Functions::new(runner.clone(), replica.clone(), signals, leases.clone());
        let forward_proof = ForwardProof::new(
            runner
                .store
                .shared_setting(proof::SECRET_SETTING, random_secret)
                .await?,
        );
        let placement = Placement::new(
            runner.store.clone(),
            replica.clone(),
            dead_after,
            runner.admission.clone(),
        );
        placement.spawn_refresh(config.cluster.heartbeat.get(), background.clone());
        let session_directory = SessionDirectory::new(
            runner.store.clone(),
            &replica.id,
            leases,
            config.sessions.max_per_subject,
        );
        let heartbeat = spawn_heartbeat(
            replica.clone(),
            config.clone(),
            runner.store.clone(),
            runner.sandboxes.clone(),
            runner.admission.clone(),
            background.clone(),
        );
        functions.spawn_queue(listener, background.clone());
        spawn_takeover(
            runner.store.clone(),
            replica.id.clone(),
            config.cluster.heartbeat.get(),
            dead_after,
            background.clone(),
        );
        let runtime = Runtime {
            runner,
            sessions,
            functions,
            auth,
            background: background.clone(),
            replica,
            placement,
            forward_proof,
            session_directory,
            heartbeat: Arc::new(std::sync::Mutex::new(Some(heartbeat))),
            _sqlite_claim: Arc::new(sqlite_claim),
        };
        Upkeep {
            config: config.clone(),
            store: runtime.runner.store.clone(),
            sessions: runtime.sessions.clone(),
            directory: runtime.session_directory.clone(),
        }
        .spawn(background);
        Ok(runtime)
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.runner.config
    }

    pub fn auth(&self) -> &Arc<Authenticator> {
        &self.auth
    }

    /// Stored functions and the tasks of their async calls.
    pub fn functions(&self) -> &Functions {
        &self.functions
    }

    /// The sandboxes, for the tools that measure them (`runbox bench`).
    pub fn sandboxes(&self) -> &Sandboxes {
        &self.runner.sandboxes
    }

    /// Opens a session for `principal`.
    pub async fn open_session(
        &self,
        principal: &Principal,
        language: Language,
        idle_timeout: Option<Duration>,
        isolation: Isolation,
    ) -> Result<SessionInfo, RuntimeError> {
        let isolation = isolation.at_least(&principal.isolation);
        let id = uuid::Uuid::new_v4().to_string();
        let clustered = self.clustered();
        if clustered {
            self.session_directory
                .admit(&self.sessions, &principal.subject, &id)
                .await?;
        }
        let opened = self
            .sessions
            .open(
                id.clone(),
                &principal.subject,
                language,
                idle_timeout,
                isolation,
            )
            .await;
        let session = match opened {
            Ok(session) => session,
            Err(err) => {
                self.session_directory.abandon(&id);
                return Err(err.into());
            }
        };
        if clustered {
            if let Err(err) = self
                .session_directory
                .opened(&id, &principal.subject, session.created_at)
                .await
            {
                // Unrecorded, the other replicas could not find it: end it rather than
                // hand out a session that works only here.
                let _ = self.sessions.delete(&principal.subject, &id).await;
                self.session_directory.abandon(&id);
                return Err(err);
            }
        }
        Ok(session.info())
    }

    /// `principal`'s session `id` (ended ones included while they are remembered).
    pub fn session(&self, principal: &Principal, id: &str) -> Result<Arc<Session>, RuntimeError> {
        Ok(self.sessions.find(&principal.subject, id)?)
    }

    /// `principal`'s sessions, oldest first.
    pub fn sessions_of(&self, principal: &Principal) -> Vec<SessionInfo> {
        self.sessions
            .list(&principal.subject)
            .iter()
            .map(|session| session.info())
            .collect()
    }

    /// Ends `principal`'s session `id`; its container is gone when this returns.
    pub async fn end_session(&self, principal: &Principal, id: &str) -> Result<(), RuntimeError> {
        self.sessions.delete(&principal.subject, id).await?;
        if self.clustered() {
            self.session_directory.deleted(id).await;
        }
        Ok(())
    }

    /// For a shutdown whose grace has expired: refuses new runs and kills the ones
    /// still going (they end with `ShuttingDown`, session execs with an error), so that
    /// their answers can still be sent.
    pub async fn stop_runs(&self) {
        self.runner.admission.close();
        self.runner.sandboxes.stop_runs();
        self.sessions.close_all().await;
    }

    /// Stops everything in order: async tasks get `grace` to finish and are then
    /// killed (they end FAILED, `interrupted`); then sessions, background work, the
    /// sandboxes (every container of this instance is gone when this returns) and the
    /// store.
    pub async fn shutdown(&self, grace: Duration) {
        self.functions.shutdown(grace).await;
        self.runner.admission.close();
        self.sessions.close_all().await;
        self.background.cancel();
        let heartbeat = self
            .heartbeat
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(heartbeat) = heartbeat {
            let _ = tokio::time::timeout(Duration::from_secs(5), heartbeat).await;
        }
        if self.clustered() {
            self.session_directory.leave().await;
        }
        self.runner.sandboxes.shutdown().await;
        self.runner.store.close().await;
    }
}

/// A fresh shared secret (hex of 32 random bytes).
fn random_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
