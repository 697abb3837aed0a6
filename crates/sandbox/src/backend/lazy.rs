//! An engine of `sandbox.engines` that may not be there when runbox starts (a stopped
//! local engine has no socket, and a client of a missing socket cannot be made): its
//! client is made at the first call that finds the engine there, and until then every
//! call fails as when the engine is away.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;
use futures::StreamExt;
use runbox_core::config::EngineConfig;

use super::docker::{engine_client, negotiated};
use super::{
    Attached, Backend, BackendError, CommitSpec, ContainerFilter, ContainerMemory, ContainerSpec,
    ContainerState, DockerBackend, EngineFuture, EngineHealth, ImageBuild, ImageDetails, ImageTar,
    ListedContainer, ListedImage, NetworkSpec, Progress,
};

pub struct LazyEngine {
    config: EngineConfig,
    client: OnceLock<DockerBackend>,
}

/// An engine of `sandbox.engines`: its client now when it can be made (negotiated when
/// the engine answers), else at the first call that finds it.
pub async fn connect_engine(config: &EngineConfig) -> Arc<dyn Backend> {
    let engine = LazyEngine {
        config: config.clone(),
        client: OnceLock::new(),
    };
    match engine_client(config) {
        Ok(client) => {
            let client = negotiated(client, &config.name).await;
            let _ = engine
                .client
                .set(DockerBackend::new(client, config.name.clone()));
        }
        Err(err) => tracing::warn!(engine = %config.name, error = %err, "engine is not there yet"),
    }
    Arc::new(engine)
}

impl LazyEngine {
    fn client(&self) -> Result<&DockerBackend, BackendError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let docker = engine_client(&self.config)?;
        Ok(self
            .client
            .get_or_init(|| DockerBackend::new(docker, self.config.name.clone())))
    }
}

fn away<'a, T: Send + 'a>(err: BackendError) -> EngineFuture<'a, T> {
    Box::pin(futures::future::ready(Err(err)))
}

impl Backend for LazyEngine {
    fn name(&self) -> &str {
        &self.config.name
    }
    fn health(&self) -> BoxFuture<'_, EngineHealth> {
        match self.client() {
            Ok(c) => c.health(),
            Err(err) => Box::pin(futures::future::ready(EngineHealth::unreachable(
                err.to_string(),
            ))),
        }
    }
    fn ping(&self) -> EngineFuture<'_, ()> {
        self.client().map_or_else(away, |c| c.ping())
    }
    fn runtimes(&self) -> EngineFuture<'_, Vec<String>> {
        self.client().map_or_else(away, |c| c.runtimes())
    }
    fn create<'a>(&'a self, name: &'a str, spec: ContainerSpec) -> EngineFuture<'a, String> {
        self.client().map_or_else(away, |c| c.create(name, spec))
    }
    fn start<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ()> {
        self.client().map_or_else(away, |c| c.start(id))
    }
    fn attach<'a>(&'a self, id: &'a str) -> EngineFuture<'a, Attached> {
        self.client().map_or_else(away, |c| c.attach(id))
    }
    fn wait<'a>(&'a self, id: &'a str) -> EngineFuture<'a, i64> {
        self.client().map_or_else(away, |c| c.wait(id))
    }
    fn inspect<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ContainerState> {
        self.client().map_or_else(away, |c| c.inspect(id))
    }
    fn remove<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ()> {
        self.client().map_or_else(away, |c| c.remove(id))
    }
    fn list<'a>(&'a self, filter: &'a ContainerFilter) -> EngineFuture<'a, Vec<ListedContainer>> {
        self.client().map_or_else(away, |c| c.list(filter))
    }
    fn logs<'a>(&'a self, id: &'a str, tail_lines: usize) -> EngineFuture<'a, String> {
        self.client().map_or_else(away, |c| c.logs(id, tail_lines))
    }
    fn memory<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ContainerMemory> {
        self.client().map_or_else(away, |c| c.memory(id))
    }
    fn commit<'a>(&'a self, id: &'a str, commit: CommitSpec) -> EngineFuture<'a, Option<String>> {
        self.client().map_or_else(away, |c| c.commit(id, commit))
    }
    fn inspect_image<'a>(&'a self, name: &'a str) -> EngineFuture<'a, ImageDetails> {
        self.client().map_or_else(away, |c| c.inspect_image(name))
    }
    fn list_images<'a>(&'a self, label: &'a str) -> EngineFuture<'a, Vec<ListedImage>> {
        self.client().map_or_else(away, |c| c.list_images(label))
    }
    fn remove_image<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ()> {
        self.client().map_or_else(away, |c| c.remove_image(id))
    }
    fn pull_image<'a>(&'a self, image: &'a str, progress: Progress<'a>) -> EngineFuture<'a, ()> {
        self.client()
            .map_or_else(away, |c| c.pull_image(image, progress))
    }
    fn build_image<'a>(
        &'a self,
        build: ImageBuild,
        context: Vec<u8>,
        progress: Progress<'a>,
    ) -> EngineFuture<'a, ()> {
        self.client()
            .map_or_else(away, |c| c.build_image(build, context, progress))
    }
    fn export_image(&self, name: &str) -> ImageTar {
        match self.client() {
            Ok(c) => c.export_image(name),
            Err(err) => futures::stream::iter([Err(err)]).boxed(),
        }
    }
    fn import_image(&self, tar: ImageTar) -> EngineFuture<'_, ()> {
        self.client().map_or_else(away, |c| c.import_image(tar))
    }
    fn network_options<'a>(&'a self, name: &'a str) -> EngineFuture<'a, HashMap<String, String>> {
        self.client().map_or_else(away, |c| c.network_options(name))
    }
    fn create_network(&self, network: NetworkSpec) -> EngineFuture<'_, ()> {
        self.client()
            .map_or_else(away, |c| c.create_network(network))
    }
}
