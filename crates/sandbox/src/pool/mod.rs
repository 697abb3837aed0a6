//! The warm pool: containers started ahead of demand, agent running and modules
//! preloaded, each handed out once. A background task keeps it at its target size with
//! bounded parallelism and backs off exponentially while Docker fails.
//!
//! Preload policy: importing numpy and matplotlib costs a CPU-second per container, more
//! than the container itself. While the pool is under pressure (in the last few seconds a
//! request found it empty, or took its last sandbox while another was still in use) the
//! refill skips the preload, so that sustained load is bound by the engine's container
//! churn rather than by imports nobody may need; once the pressure is gone, the sandboxes
//! started without preload are replaced one at a time by preloaded ones. Counting the
//! drain by concurrent requests as pressure matters at the start of a burst: otherwise
//! the refill of the first sandboxes taken would start preloading just before the first
//! miss, and those imports would be paid during the burst. For the same reason a refill
//! that is still preloading when the pressure begins is dropped (its container removed)
//! and replaced by one without the preload: the rest of its CPU-second would be spent
//! while requests wait.
//!
//! Refill timing: while ready sandboxes remain, the replacement of a taken one waits until
//! the run that took it has ended (at most `DEFER_REFILL_MAX`), so that a request does not
//! share the CPU with the start and preload of its own replacement. An empty pool refills
//! at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::labels::ContainerKind;
use crate::placement::Placement;
use crate::sandbox::{Launcher, Sandbox};

/// A pooled sandbox idle longer than this is pinged before it is handed out: a dead
/// container is noticed at once (its stream ends), a hung agent only by asking.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_millis(300);
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A request that found the pool empty (or drained it, see above) this recently means
/// the pool is under pressure.
const PRESSURE_WINDOW: Duration = Duration::from_secs(3);
/// How often the refill looks for pooled sandboxes that died.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// The longest a refill waits for the runs of taken sandboxes to end.
const DEFER_REFILL_MAX: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PoolStatus {
    /// The engine the pool's sandboxes run on.
    pub engine: String,
    pub image: String,
    /// The OCI runtime of its sandboxes; empty: the engine's default.
    pub runtime: String,
    pub ready: usize,
    /// Ready sandboxes that have the configured modules imported.
    pub preloaded: usize,
    pub target: usize,
    pub starting: usize,
    /// In the last few seconds a request found the pool empty, or took its last sandbox
    /// while another was in use; refills skip the preload.
    pub under_pressure: bool,
    /// The last refill failure while the pool is failing, else `None`.
    pub last_error: Option<String>,
}

pub(crate) struct Pool {
    launcher: Arc<Launcher>,
    placement: Placement,
    target: usize,
    parallelism: usize,
    preload: Vec<String>,
    ready: Mutex<VecDeque<Sandbox>>,
    starting: AtomicUsize,
    wake: Notify,
    /// Docker works again (a sandbox was created on demand): cut the back-off short.
    recovered: Notify,
    last_error: Mutex<Option<String>>,
    /// When a request last found the pool empty, or drained it (see the module docs).
    last_miss: Mutex<Option<Instant>>,
    /// Fired when the pool comes under pressure: preloading launches give way.
    pressure_began: Notify,
    /// Sandboxes taken from this pool whose runs have not ended, and the latest take.
    on_loan: AtomicUsize,
    last_take: Mutex<Option<Instant>>,
}

/// Held by a sandbox taken from a pool until it is removed: tells the pool its run ended.
pub(crate) struct Loan(Arc<Pool>);

impl Drop for Loan {
    fn drop(&mut self) {
        self.0.on_loan.fetch_sub(1, Ordering::SeqCst);
        self.0.wake.notify_one();
    }
}

impl Pool {
    pub fn new(
        launcher: Arc<Launcher>,
        placement: Placement,
        target: usize,
        preload: Vec<String>,
    ) -> Arc<Self> {
        let parallelism = launcher.config.sandbox.pool.refill_parallelism.max(1);
        Arc::new(Pool {
            launcher,
            placement,
            target,
            parallelism,
            preload,
            ready: Mutex::new(VecDeque::new()),
            starting: AtomicUsize::new(0),
            wake: Notify::new(),
            recovered: Notify::new(),
            last_error: Mutex::new(None),
            last_miss: Mutex::new(None),
            pressure_began: Notify::new(),
            on_loan: AtomicUsize::new(0),
            last_take: Mutex::new(None),
        })
    }

    /// A ready sandbox nobody has used, or `None` when the pool is empty (the caller
    /// then creates one itself rather than waiting for the refill).
    pub async fn take(self: &Arc<Self>) -> Option<Sandbox> {
        loop {
            let (candidate, drained) = {
                let mut ready = self.lock_ready();
                let candidate = ready.pop_front();
                (candidate, ready.is_empty())
            };
            let Some(mut sandbox) = candidate else {
                if self.target > 0 {
                    self.mark_pressure();
                }
                self.wake.notify_one();
                return None;
            };
            if drained && self.on_loan.load(Ordering::SeqCst) > 0 {
                // Demand beyond the pool's size: the refill this wakes skips the preload.
                self.mark_pressure();
            }
            self.wake.notify_one();
            let alive = sandbox.seems_alive()
                && (sandbox.idle_since.elapsed() < PING_WHEN_IDLE_FOR
                    || sandbox.ping(PING_TIMEOUT).await);
            if alive {
                self.on_loan.fetch_add(1, Ordering::SeqCst);
                *lock(&self.last_take) = Some(Instant::now());
                sandbox.loan = Some(Box::new(Loan(self.clone())));
                return Some(sandbox);
            }
            tracing::warn!(container = %sandbox.id(), "a pooled sandbox died or stopped answering; replacing it");
            sandbox.discard();
        }
    }

    /// A sandbox was just created on demand: whatever made the refill fail is over.
    pub fn docker_recovered(&self) {
        if lock(&self.last_error).is_some() {
            self.recovered.notify_one();
        }
    }

    pub fn status(&self) -> PoolStatus {
        let (ready, preloaded) = {
            let ready = self.lock_ready();
            (ready.len(), ready.iter().filter(|s| s.preloaded).count())
        };
        PoolStatus {
            engine: self.launcher.engine().name().to_string(),
            image: self.placement.image.clone(),
            runtime: self.placement.runtime.clone(),
            ready,
            preloaded,
            target: self.target,
            starting: self.starting.load(Ordering::SeqCst),
            under_pressure: self.under_pressure(),
            last_error: lock(&self.last_error).clone(),
        }
    }

    /// How much longer the next launch waits for runs of taken sandboxes to end; `None`
    /// when it goes now (the pool is empty or under pressure, or no run is going on).
    fn refill_deferred_for(&self) -> Option<Duration> {
        if self.lock_ready().is_empty()
            || self.under_pressure()
            || self.on_loan.load(Ordering::SeqCst) == 0
        {
            return None;
        }
        let since = lock(&self.last_take).map(|at| at.elapsed())?;
        DEFER_REFILL_MAX
            .checked_sub(since)
            .filter(|left| !left.is_zero())
    }

    fn mark_pressure(&self) {
        *lock(&self.last_miss) = Some(Instant::now());
        self.pressure_began.notify_waiters();
    }

    fn under_pressure(&self) -> bool {
        lock(&self.last_miss).is_some_and(|at| at.elapsed() < PRESSURE_WINDOW)
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
                backoff = next_backoff(backoff, succeeded);
            }
            if !backoff.is_zero() {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                    () = self.recovered.notified() => backoff = Duration::ZERO,
                }
            }
            if cancel.is_cancelled() {
                break;
            }
            self.remove_dead();
            let starting = self.starting.load(Ordering::SeqCst);
            let have = self.lock_ready().len() + starting;
            if have < self.target && starting < self.parallelism {
                match self.refill_deferred_for() {
                    None => {
                        self.spawn_launch(&cancel, done_tx.clone());
                        continue;
                    }
                    Some(wait) => {
                        tokio::select! {
                            () = cancel.cancelled() => break,
                            () = self.wake.notified() => {}
                            () = tokio::time::sleep(wait) => {}
                        }
                        continue;
                    }
                }
            }
            if have >= self.target && starting == 0 && self.upgrade_one() {
                continue;
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(CHECK_EVERY) => {}
            }
        }
        self.drain().await;
    }

    fn spawn_launch(
        self: &Arc<Self>,
        cancel: &CancellationToken,
        done: tokio::sync::mpsc::UnboundedSender<bool>,
    ) {
        self.starting.fetch_add(1, Ordering::SeqCst);
        let preload = if self.under_pressure() {
            Vec::new()
        } else {
            self.preload.clone()
        };
        let pool = self.clone();
        let cancel = cancel.clone();
        self.launcher.containers.tracker().spawn(async move {
            // Registered before the launch starts, so that no pressure is missed.
            let pressure = pool.pressure_began.notified();
            let launched = tokio::select! {
                () = cancel.cancelled() => None,
                () = pressure, if !preload.is_empty() => {
                    // Dropping the launch removes its container (see ContainerGuard).
                    tracing::debug!(pool = %pool.placement, "the pool came under pressure; a preloading refill was dropped");
                    metrics::counter!("runbox_pool_preloads_dropped_total").increment(1);
                    None
                }
                launched = pool.launcher.launch(&pool.placement, ContainerKind::Pool, &preload) => Some(launched),
            };
            let succeeded = match launched {
                Some(Ok(mut sandbox)) => {
                    sandbox.preloaded = preload.len() == pool.preload.len();
                    if cancel.is_cancelled() {
                        sandbox.discard();
                    } else {
                        pool.lock_ready().push_back(sandbox);
                        *lock(&pool.last_error) = None;
                    }
                    true
                }
                Some(Err(err)) => {
                    tracing::warn!(pool = %pool.placement, error = %err, "pool refill failed");
                    *lock(&pool.last_error) = Some(err.to_string());
                    false
                }
                None => true,
            };
            pool.starting.fetch_sub(1, Ordering::SeqCst);
            let _ = done.send(succeeded);
            pool.wake.notify_one();
        });
    }

    /// Drops pooled sandboxes whose container is known to be gone.
    fn remove_dead(&self) {
        let dead: Vec<Sandbox> = {
            let mut ready = self.lock_ready();
            let (alive, dead): (VecDeque<Sandbox>, VecDeque<Sandbox>) =
                ready.drain(..).partition(Sandbox::seems_alive);
            *ready = alive;
            dead.into()
        };
        for sandbox in dead {
            tracing::warn!(container = %sandbox.id(), "a pooled sandbox died; replacing it");
            sandbox.discard();
        }
    }

    /// When the pressure is over, replaces one sandbox started without the preload.
    fn upgrade_one(&self) -> bool {
        if self.preload.is_empty() || self.under_pressure() {
            return false;
        }
        let stale = {
            let mut ready = self.lock_ready();
            let index = ready.iter().position(|s| !s.preloaded);
            index.and_then(|i| ready.remove(i))
        };
        match stale {
            Some(sandbox) => {
                tracing::debug!(container = %sandbox.id(), "replacing a sandbox started without preload");
                sandbox.discard();
                true
            }
            None => false,
        }
    }

    /// Removes every ready sandbox and waits until they are gone.
    pub async fn drain(&self) {
        let sandboxes: Vec<Sandbox> = self.lock_ready().drain(..).collect();
        futures::future::join_all(sandboxes.into_iter().map(Sandbox::remove)).await;
    }

    fn lock_ready(&self) -> std::sync::MutexGuard<'_, VecDeque<Sandbox>> {
        lock(&self.ready)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn next_backoff(current: Duration, succeeded: bool) -> Duration {
    if succeeded {
        Duration::ZERO
    } else if current.is_zero() {
        BACKOFF_START
    } else {
        (current * 2).min(BACKOFF_MAX)
    }
}

#[cfg(test)]
mod tests;
