//! The engine containers run on, behind a trait. `DockerBackend` drives a Docker engine
//! through bollard; `crate::fake` (tests, feature `fake-backend`) keeps them in memory.
//! Everything the crate asks of an engine goes through `Backend`, used as
//! `Arc<dyn Backend>`, so that several engines can stand behind one runbox.
//!
//! The methods return boxed futures rather than being `async fn`: a trait with `async fn`
//! is not object-safe, and a boxed future is what an `async-trait` expansion would give.

mod docker;
mod error;
mod lazy;
mod types;

use std::collections::HashMap;

use futures::future::BoxFuture;

pub use self::docker::{connect_docker, DockerBackend};
pub use self::error::BackendError;
pub use self::lazy::{connect_engine, LazyEngine};
pub use self::types::{
    Attached, CommitSpec, ContainerFilter, ContainerMemory, ContainerSpec, ContainerState,
    ContainerStatus, EngineHealth, ImageBuild, ImageDetails, InputWriter, ListedContainer,
    ListedImage, NetworkSpec, OutputChunk, OutputStream,
};

/// A line of progress while an image is built or pulled.
pub type Progress<'a> = &'a mut (dyn FnMut(&str) + Send);

/// What an engine call returns.
pub type EngineFuture<'a, T> = BoxFuture<'a, Result<T, BackendError>>;

/// An image as a tar archive (`docker save`), streamed in chunks.
pub type ImageTar = futures::stream::BoxStream<'static, Result<bytes::Bytes, BackendError>>;

/// A container engine: what runbox needs to create, run, watch and remove containers,
/// and the image and network operations around them.
pub trait Backend: Send + Sync {
    /// Names this engine in logs and status (several engines may serve one runbox).
    fn name(&self) -> &str;

    /// Version facts, or why the engine does not answer; never fails.
    fn health(&self) -> BoxFuture<'_, EngineHealth>;
    fn ping(&self) -> EngineFuture<'_, ()>;
    /// The OCI runtimes the engine knows (`runc`, and `runsc` when gVisor is installed).
    fn runtimes(&self) -> EngineFuture<'_, Vec<String>>;

    /// Creates a container named `name`; returns its id.
    fn create<'a>(&'a self, name: &'a str, spec: ContainerSpec) -> EngineFuture<'a, String>;
    fn start<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ()>;
    /// The container's stdin and its stdout/stderr, for a container created with them
    /// attached. Attach before `start` so that nothing written at start-up is missed.
    fn attach<'a>(&'a self, id: &'a str) -> EngineFuture<'a, Attached>;
    /// Waits until the container is not running; its exit code.
    fn wait<'a>(&'a self, id: &'a str) -> EngineFuture<'a, i64>;
    fn inspect<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ContainerState>;
    /// Kills the container when it runs, and removes it with its anonymous volumes.
    fn remove<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ()>;
    fn list<'a>(&'a self, filter: &'a ContainerFilter) -> EngineFuture<'a, Vec<ListedContainer>>;
    /// The last `tail_lines` lines of the container's stdout and stderr, interleaved.
    fn logs<'a>(&'a self, id: &'a str, tail_lines: usize) -> EngineFuture<'a, String>;
    fn memory<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ContainerMemory>;
    /// Commits the container as an image; its id when the engine says.
    fn commit<'a>(&'a self, id: &'a str, commit: CommitSpec) -> EngineFuture<'a, Option<String>>;

    fn inspect_image<'a>(&'a self, name: &'a str) -> EngineFuture<'a, ImageDetails>;
    /// Images that carry the label `label`.
    fn list_images<'a>(&'a self, label: &'a str) -> EngineFuture<'a, Vec<ListedImage>>;
    fn remove_image<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ()>;
    fn pull_image<'a>(&'a self, image: &'a str, progress: Progress<'a>) -> EngineFuture<'a, ()>;
    /// Builds `build.tag` from a tar of the build context; each output line goes to
    /// `progress`.
    fn build_image<'a>(
        &'a self,
        build: ImageBuild,
        context: Vec<u8>,
        progress: Progress<'a>,
    ) -> EngineFuture<'a, ()>;

    /// The image `name` (with its tags) as a tar, as `docker save` writes it.
    fn export_image(&self, name: &str) -> ImageTar;
    /// Loads a tar that `export_image` of another engine wrote, as `docker load` does.
    fn import_image(&self, tar: ImageTar) -> EngineFuture<'_, ()>;

    /// The driver options of network `name`.
    fn network_options<'a>(&'a self, name: &'a str) -> EngineFuture<'a, HashMap<String, String>>;
    fn create_network(&self, network: NetworkSpec) -> EngineFuture<'_, ()>;
}

/// The OCI runtimes the engine knows; none when it does not answer.
pub async fn docker_runtimes(engine: &dyn Backend) -> Vec<String> {
    // Asked on request paths (`/health`, a run for an isolation tier): an engine that
    // does not answer offers nothing, rather than holding the request.
    tokio::time::timeout(RUNTIMES_TIMEOUT, engine.runtimes())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

/// How long the engine may take to list its OCI runtimes.
const RUNTIMES_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
