//! The one way runbox creates a container (sandboxes, environment builds, the bench's
//! baseline containers): on an engine, counted live, owned by the `ContainerGuard` it
//! returns, its removals tracked so that shutdown can wait for them.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use crate::backend::{Backend, BackendError, ContainerSpec};
use crate::guard::{remove_until_gone, ContainerGuard, LiveContainers};
use crate::labels::ContainerKind;
use crate::ports::PortLease;
use crate::SandboxError;

/// The containers runbox creates on one engine.
#[derive(Clone)]
pub struct Containers {
    engine: Arc<dyn Backend>,
    tracker: TaskTracker,
    live: LiveContainers,
}

impl Containers {
    pub fn new(engine: Arc<dyn Backend>) -> Self {
        Containers {
            engine,
            tracker: TaskTracker::new(),
            live: LiveContainers::default(),
        }
    }

    pub fn engine(&self) -> &Arc<dyn Backend> {
        &self.engine
    }

    /// Containers created and not yet removed.
    pub fn live(&self) -> usize {
        self.live.count()
    }

    /// Where background work on these containers runs; shutdown waits for it.
    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Creates a container of `kind` from `spec`, owned by the guard returned.
    pub async fn create(
        &self,
        kind: ContainerKind,
        spec: ContainerSpec,
    ) -> Result<ContainerGuard, SandboxError> {
        self.create_holding(kind, spec, None).await
    }

    /// As `create`, with the container's port lease, freed once the container is gone.
    ///
    /// The engine creates it in a task of its own: a caller dropped while the engine is
    /// creating it (a cancelled request, a shutdown) would leave a container nobody
    /// knows the id of; the task removes such an orphan instead, and shutdown waits for
    /// it.
    pub(crate) async fn create_holding(
        &self,
        kind: ContainerKind,
        spec: ContainerSpec,
        lease: Option<PortLease>,
    ) -> Result<ContainerGuard, SandboxError> {
        let image = spec.image.clone().unwrap_or_default();
        let name = format!(
            "runbox-{}-{}",
            kind.as_str(),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        let engine = self.engine.clone();
        self.tracker.spawn(async move {
            let created = engine.create(&name, spec).await;
            if let Err(Ok(orphan)) = tx.send(created) {
                remove_until_gone(engine.as_ref(), &orphan, ()).await;
            }
        });
        match rx.await {
            Ok(Ok(id)) => Ok(ContainerGuard::new(
                self.engine.clone(),
                id,
                self.tracker.clone(),
                lease,
                &self.live,
            )),
            Ok(Err(BackendError::NotFound(_))) => Err(SandboxError::ImageMissing(image)),
            Ok(Err(source)) => Err(SandboxError::Docker {
                action: creating(kind),
                source,
            }),
            Err(_) => Err(SandboxError::ShuttingDown),
        }
    }

    /// Stops taking background work and waits, at most `within`, for what is under way
    /// (removals, creations); false when some was still going.
    pub async fn wait_removals(&self, within: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(within, self.tracker.wait())
            .await
            .is_ok()
    }
}

fn creating(kind: ContainerKind) -> &'static str {
    match kind {
        ContainerKind::Build => "creating the build container",
        ContainerKind::Baseline => "creating a baseline container",
        ContainerKind::Pool | ContainerKind::OnDemand | ContainerKind::Session => {
            "creating a sandbox"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeBackend;
    use crate::testing::{config, eventually, IMAGE, INSTANCE};

    fn baseline_spec() -> ContainerSpec {
        let mut spec =
            crate::stdio_sandbox_spec(&config(0, 1, &[]), IMAGE, INSTANCE, ContainerKind::Baseline)
                .expect("the profile");
        spec.open_stdin = Some(false);
        spec
    }

    #[tokio::test]
    async fn a_container_is_removed_by_its_guard_whichever_way_it_goes() {
        let engine = FakeBackend::new();
        let containers = Containers::new(engine.clone());

        let guard = containers
            .create(ContainerKind::Baseline, baseline_spec())
            .await
            .expect("created");
        assert_eq!((engine.live(), containers.live()), (1, 1));
        let engine_of = containers.engine();
        engine_of.start(guard.id()).await.expect("started");
        assert_eq!(engine_of.wait(guard.id()).await.expect("waited"), 0);
        guard.remove().await;
        assert_eq!((engine.live(), containers.live()), (0, 0));

        let dropped = containers
            .create(ContainerKind::Baseline, baseline_spec())
            .await
            .expect("created");
        drop(dropped);
        eventually(Duration::from_secs(5), "a dropped guard removes", || {
            engine.live() == 0 && containers.live() == 0
        })
        .await;
        assert!(containers.wait_removals(Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn a_failed_create_says_what_failed() {
        let engine = FakeBackend::new();
        let containers = Containers::new(engine.clone());
        engine.set_faults(|f| f.missing_images = vec![IMAGE.to_string()]);
        let missing = containers
            .create(ContainerKind::Pool, baseline_spec())
            .await;
        assert!(matches!(missing, Err(SandboxError::ImageMissing(image)) if image == IMAGE));
        engine.set_faults(|f| f.unavailable = true);
        let away = containers
            .create(ContainerKind::Build, baseline_spec())
            .await;
        match away {
            Err(err @ SandboxError::Docker { .. }) => {
                assert!(err.is_unavailable());
                assert!(
                    err.to_string().contains("creating the build container"),
                    "{err}"
                );
            }
            other => panic!("{:?}", other.map(|g| g.id().to_string())),
        }
        assert_eq!(engine.live(), 0);
    }
}
