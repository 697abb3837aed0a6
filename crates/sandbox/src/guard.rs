//! Every container runbox creates is owned by exactly one `ContainerGuard`. Removing it
//! is explicit on the normal paths; `Drop` is the backstop for every other path (an
//! error, a panic, a request whose client went away), so no path leaks a container.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bollard::container::RemoveContainerOptions;
use bollard::Docker;
use tokio_util::task::TaskTracker;

use crate::ports::PortLease;

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
struct LiveToken(Arc<AtomicUsize>);

impl Drop for LiveToken {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct ContainerGuard {
    docker: Docker,
    id: String,
    tracker: TaskTracker,
    lease: Option<PortLease>,
    live: Option<LiveToken>,
    armed: bool,
}

impl ContainerGuard {
    pub fn new(
        docker: Docker,
        id: String,
        tracker: TaskTracker,
        lease: Option<PortLease>,
        live: &LiveContainers,
    ) -> Self {
        ContainerGuard {
            docker,
            id,
            tracker,
            lease,
            live: Some(live.enter()),
            armed: true,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Kills and removes the container and waits until the engine has done it. Stays
    /// armed until then: a caller dropped mid-removal (a cancelled request) leaves the
    /// removal to `Drop`, never to nobody.
    pub async fn remove(mut self) {
        remove_container(&self.docker, &self.id).await;
        self.armed = false;
        // The port is free only once the container that published it is gone.
        drop(self.lease.take());
        drop(self.live.take());
    }

    /// Removes the container in the background; shutdown waits for the tracker.
    pub fn remove_in_background(mut self) {
        self.armed = false;
        let docker = self.docker.clone();
        let id = std::mem::take(&mut self.id);
        let lease = self.lease.take();
        let live = self.live.take();
        self.tracker.spawn(async move {
            remove_container(&docker, &id).await;
            drop(lease);
            drop(live);
        });
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let docker = self.docker.clone();
        let id = std::mem::take(&mut self.id);
        let lease = self.lease.take();
        let live = self.live.take();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let task = async move {
                    remove_container(&docker, &id).await;
                    drop(lease);
                    drop(live);
                };
                // Tracked, so that shutdown waits for this removal too.
                handle.spawn(self.tracker.track_future(task));
            }
            Err(_) => {
                tracing::error!(container = %id, "container guard dropped outside a runtime; the start-up sweep will remove it");
            }
        }
    }
}

pub(crate) async fn remove_container(docker: &Docker, id: &str) {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    for attempt in 0..3u32 {
        match docker.remove_container(id, Some(options)).await {
            Ok(()) => return,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return,
            // 409: removal already in progress — done as far as we are concerned.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => return,
            Err(err) => {
                tracing::warn!(container = %id, attempt, error = %err, "removing container failed");
                tokio::time::sleep(std::time::Duration::from_millis(
                    200 * u64::from(attempt + 1),
                ))
                .await;
            }
        }
    }
    tracing::error!(container = %id, "container could not be removed; the start-up sweep will retry");
}
