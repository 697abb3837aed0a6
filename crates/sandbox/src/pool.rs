//! The warm pool: containers started ahead of demand, agent running and modules
//! preloaded, each handed out once. A background task keeps it at its target size with
//! bounded parallelism and backs off exponentially while Docker fails.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::labels::ContainerKind;
use crate::sandbox::{Launcher, Sandbox};

/// A pooled sandbox idle longer than this is pinged before it is handed out: a dead
/// container is noticed at once (its stream ends), a hung agent only by asking.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_millis(300);
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PoolStatus {
    pub image: String,
    pub ready: usize,
    pub target: usize,
    pub starting: usize,
    /// The last refill failure while the pool is failing, else `None`.
    pub last_error: Option<String>,
}

pub(crate) struct Pool {
    launcher: Arc<Launcher>,
    image: String,
    target: usize,
    parallelism: usize,
    preload: Vec<String>,
    ready: Mutex<VecDeque<Sandbox>>,
    starting: AtomicUsize,
    wake: Notify,
    last_error: Mutex<Option<String>>,
}

impl Pool {
    pub fn new(
        launcher: Arc<Launcher>,
        image: String,
        target: usize,
        preload: Vec<String>,
    ) -> Arc<Self> {
        let parallelism = launcher.config.sandbox.pool.refill_parallelism.max(1);
        Arc::new(Pool {
            launcher,
            image,
            target,
            parallelism,
            preload,
            ready: Mutex::new(VecDeque::new()),
            starting: AtomicUsize::new(0),
            wake: Notify::new(),
            last_error: Mutex::new(None),
        })
    }

    /// A ready sandbox nobody has used, or `None` when the pool is empty (the caller
    /// then creates one itself rather than waiting for the refill).
    pub async fn take(&self) -> Option<Sandbox> {
        loop {
            let candidate = self.lock_ready().pop_front();
            self.wake.notify_one();
            let mut sandbox = candidate?;
            let alive = sandbox.seems_alive()
                && (sandbox.idle_since.elapsed() < PING_WHEN_IDLE_FOR
                    || sandbox.ping(PING_TIMEOUT).await);
            if alive {
                return Some(sandbox);
            }
            tracing::warn!(container = %sandbox.id(), "a pooled sandbox died or stopped answering; replacing it");
            sandbox.discard();
        }
    }

    pub fn status(&self) -> PoolStatus {
        PoolStatus {
            image: self.image.clone(),
            ready: self.lock_ready().len(),
            target: self.target,
            starting: self.starting.load(Ordering::SeqCst),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }

    /// Keeps the pool at its target until `cancel` fires.
    pub async fn refill_loop(self: Arc<Self>, cancel: CancellationToken) {
        if self.target == 0 {
            return;
        }
        let mut backoff = Duration::ZERO;
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
        loop {
            // Results of finished launches adjust the back-off.
            while let Ok(succeeded) = done_rx.try_recv() {
                backoff = if succeeded {
                    Duration::ZERO
                } else if backoff.is_zero() {
                    BACKOFF_START
                } else {
                    (backoff * 2).min(BACKOFF_MAX)
                };
            }
            if !backoff.is_zero() {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
            }
            let starting = self.starting.load(Ordering::SeqCst);
            let have = self.lock_ready().len() + starting;
            if have < self.target && starting < self.parallelism && !cancel.is_cancelled() {
                self.starting.fetch_add(1, Ordering::SeqCst);
                let pool = self.clone();
                let done = done_tx.clone();
                let cancel = cancel.clone();
                self.launcher.tracker.spawn(async move {
                    let launched = tokio::select! {
                        () = cancel.cancelled() => None,
                        launched = pool.launcher.launch(&pool.image, ContainerKind::Pool, &pool.preload) => Some(launched),
                    };
                    let succeeded = match launched {
                        Some(Ok(sandbox)) => {
                            if cancel.is_cancelled() {
                                sandbox.discard();
                            } else {
                                pool.lock_ready().push_back(sandbox);
                                if let Ok(mut last) = pool.last_error.lock() {
                                    *last = None;
                                }
                            }
                            true
                        }
                        Some(Err(err)) => {
                            tracing::warn!(image = %pool.image, error = %err, "pool refill failed");
                            if let Ok(mut last) = pool.last_error.lock() {
                                *last = Some(err.to_string());
                            }
                            false
                        }
                        None => true,
                    };
                    pool.starting.fetch_sub(1, Ordering::SeqCst);
                    let _ = done.send(succeeded);
                    pool.wake.notify_one();
                });
                continue;
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.wake.notified() => {}
            }
        }
        self.drain().await;
    }

    /// Removes every ready sandbox and waits until they are gone.
    pub async fn drain(&self) {
        let sandboxes: Vec<Sandbox> = self.lock_ready().drain(..).collect();
        futures::future::join_all(sandboxes.into_iter().map(Sandbox::remove)).await;
    }

    fn lock_ready(&self) -> std::sync::MutexGuard<'_, VecDeque<Sandbox>> {
        self.ready
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
