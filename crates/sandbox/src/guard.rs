//! Every container runbox creates is owned by exactly one `ContainerGuard`. Removing it
//! is explicit on the normal paths; `Drop` is the backstop for every other path (an
//! error, a panic, a request whose client went away), so no path leaks a container.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::task::TaskTracker;

use crate::backend::{Backend, BackendError};
use crate::ports::PortLease;

const RETRY_START: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(10);
const RETRY_FOR: Duration = Duration::from_secs(600);

/// How many containers runbox owns right now: created and not yet removed.
#[derive(Clone, Debug, Default)]
pub struct LiveContainers(Arc<AtomicUsize>);

impl LiveContainers {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn enter(&self) -> LiveToken {
        self.0.fetch_add(1, Ordering::SeqCst);
        LiveToken(self.0.clone())
    }
}

/// One container counted live; dropped once the container is gone.
pub(crate) struct LiveToken(Arc<AtomicUsize>);

impl Drop for LiveToken {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a container holds until it is gone: its port lease and its place in the count.
pub(crate) struct Held {
    _lease: Option<PortLease>,
    _live: Option<LiveToken>,
}

/// Owns one container: removes it when told, or when dropped. Made by
/// `Containers::create`, the one way runbox creates a container.
pub struct ContainerGuard {
    engine: Arc<dyn Backend>,
    id: String,
    tracker: TaskTracker,
    lease: Option<PortLease>,
    live: Option<LiveToken>,
    armed: bool,
}

impl ContainerGuard {
    pub(crate) fn new(
        engine: Arc<dyn Backend>,
        id: String,
        tracker: TaskTracker,
        lease: Option<PortLease>,
        live: &LiveContainers,
    ) -> Self {
        ContainerGuard {
            engine,
            id,
            tracker,
            lease,
            live: Some(live.enter()),
            armed: true,
        }
    }

    /// Hands the removal over to the caller (the guard no longer removes the container
    /// on drop): the engine, the container's id and what it holds until it is gone.
    fn disarm(&mut self) -> (Arc<dyn Backend>, String, Held) {
        self.armed = false;
        let held = Held {
            _lease: self.lease.take(),
            _live: self.live.take(),
        };
        (self.engine.clone(), std::mem::take(&mut self.id), held)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Kills and removes the container and waits until the engine has done it. Stays
    /// armed until then: a caller dropped mid-removal (a cancelled request) leaves the
    /// removal to `Drop`, never to nobody. When the engine cannot remove it now (it is
    /// away), the removal goes on in the background until it can.
    pub async fn remove(mut self) {
        let removed = remove_container(self.engine.as_ref(), &self.id).await;
        let (engine, id, held) = self.disarm();
        if removed {
            // The port is free only once the container that published it is gone.
            drop(held);
        } else {
            self.tracker
                .spawn(async move { remove_until_gone(engine.as_ref(), &id, held).await });
        }
    }

    /// Removes the container, waiting for the engine to be done with it for `bound` at
    /// most; past that the removal goes on in the background (shutdown waits for it).
    /// A sandbox under gVisor with many processes may take the engine tens of seconds
    /// to tear down, which a client waiting for its answer should not pay.
    pub async fn remove_within(mut self, bound: Duration) {
        let (engine, id, held) = self.disarm();
        let container = id.clone();
        let removal = self
            .tracker
            .spawn(async move { remove_until_gone(engine.as_ref(), &id, held).await });
        if tokio::time::timeout(bound, removal).await.is_err() {
            tracing::debug!(%container, ?bound, "removal goes on in the background");
        }
    }

    /// Removes the container in the background once it has exited by itself, or after
    /// `grace` when it has not (then by force, as `remove_in_background`). Ending by
    /// itself costs the engine less CPU than a kill, which under sustained load is what
    /// bounds how many fresh sandboxes the machine makes per second.
    pub fn remove_once_exited(mut self, grace: Duration) {
        let (engine, id, held) = self.disarm();
        self.tracker.spawn(async move {
            // Whatever the wait reports (an exit, an error, nothing in time), the
            // removal below makes sure the container is gone.
            let _ = tokio::time::timeout(grace, engine.wait(&id)).await;
            remove_until_gone(engine.as_ref(), &id, held).await;
        });
    }

    /// Removes the container in the background; shutdown waits for the tracker.
    pub fn remove_in_background(mut self) {
        let (engine, id, held) = self.disarm();
        self.tracker
            .spawn(async move { remove_until_gone(engine.as_ref(), &id, held).await });
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (engine, id, held) = self.disarm();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let task = async move { remove_until_gone(engine.as_ref(), &id, held).await };
                // Tracked, so that shutdown waits for this removal too.
                handle.spawn(self.tracker.track_future(task));
            }
            Err(_) => {
                tracing::error!(container = %id, "container guard dropped outside a runtime; the start-up sweep will remove it");
            }
        }
    }
}

/// Keeps trying to remove `id` while the engine cannot (it restarts, or is away for a
/// while), backing off up to `RETRY_MAX`, for at most `RETRY_FOR`; what the container
/// holds (the lease of its port) is dropped only once it is gone. What is still there
/// after that is left to the next start-up sweep.
pub(crate) async fn remove_until_gone<H: Send>(engine: &dyn Backend, id: &str, held: H) {
    let started = Instant::now();
    let mut pause = RETRY_START;
    while !remove_container(engine, id).await {
        if started.elapsed() >= RETRY_FOR {
            tracing::error!(container = %id, "container could not be removed; the start-up sweep will retry");
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_MAX);
    }
    drop(held);
}

/// Kills and removes `id`; true when it is gone (or was already).
pub(crate) async fn remove_container(engine: &dyn Backend, id: &str) -> bool {
    for attempt in 0..3u32 {
        match engine.remove(id).await {
            Ok(()) | Err(BackendError::NotFound(_)) => return true,
            // 409: removal already in progress — done as far as we are concerned.
            Err(BackendError::Conflict(_)) => return true,
            Err(err) => {
                tracing::warn!(container = %id, attempt, error = %err, "removing container failed");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt + 1))).await;
            }
        }
    }
    false
}
