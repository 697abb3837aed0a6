//! `Backend` on a Docker engine (DOCKER_HOST or the local socket) through bollard,
//! negotiated down to the engine's API version so that older engines work.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bollard::container::{
    AttachContainerOptions, AttachContainerResults, CreateContainerOptions, ListContainersOptions,
    LogOutput, LogsOptions, MemoryStatsStats, RemoveContainerOptions, StatsOptions,
    WaitContainerOptions,
};
use bollard::image::{
    BuildImageOptions, CommitContainerOptions, CreateImageOptions, ImportImageOptions,
    ListImagesOptions,
};
use bollard::network::CreateNetworkOptions;
use bollard::Docker;
use futures::future::BoxFuture;
use futures::StreamExt;
use runbox_core::config::{EngineAddress, EngineConfig};

use super::{
    Attached, Backend, BackendError, CommitSpec, ContainerFilter, ContainerMemory, ContainerSpec,
    ContainerState, EngineFuture, EngineHealth, ImageBuild, ImageDetails, ImageTar,
    ListedContainer, ListedImage, NetworkSpec, OutputChunk, Progress,
};

/// How long /health waits for the engine's version.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// bollard's request timeout for the engines of `sandbox.engines` (its default for the
/// local socket): long enough for a slow image load or build step.
const CLIENT_TIMEOUT_SECS: u64 = 120;

pub struct DockerBackend {
    docker: Docker,
    name: String,
}

/// A client of an engine of `sandbox.engines` (no request is made yet). Fails when
/// the address cannot make one, e.g. a unix socket that is not there (yet).
pub(crate) fn engine_client(engine: &EngineConfig) -> Result<Docker, BackendError> {
    let unusable = |e: bollard::errors::Error| {
        BackendError::Unavailable(format!("engine {}: {e}", engine.name))
    };
    let address = EngineAddress::parse(&engine.host).map_err(BackendError::Unavailable)?;
    match (&address, &engine.tls) {
        (EngineAddress::Unix(path), _) => {
            Docker::connect_with_unix(path, CLIENT_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                .map_err(unusable)
        }
        (EngineAddress::Tcp { host, port }, Some(tls)) => Docker::connect_with_ssl(
            &format!("tcp://{host}:{port}"),
            Path::new(&tls.key),
            Path::new(&tls.cert),
            Path::new(&tls.ca),
            CLIENT_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(unusable),
        (EngineAddress::Tcp { .. }, None) => Err(BackendError::Unavailable(format!(
            "engine {}: a tcp:// engine needs tls",
            engine.name
        ))),
    }
}

/// `client` negotiated down to the engine's API version when it answers within 3 s;
/// as it is (the client's default version) when not.
pub(crate) async fn negotiated(client: Docker, name: &str) -> Docker {
    match tokio::time::timeout(HEALTH_TIMEOUT, client.clone().negotiate_version()).await {
        Ok(Ok(negotiated)) => negotiated,
        Ok(Err(err)) => {
            tracing::warn!(engine = name, error = %err, "engine does not answer");
            client
        }
        Err(_) => {
            tracing::warn!(engine = name, "engine did not answer within 3 s");
            client
        }
    }
}

/// Connects to the engine of DOCKER_HOST (or the local socket) and makes sure it answers.
pub async fn connect_docker() -> Result<Arc<dyn Backend>, BackendError> {
    Ok(Arc::new(DockerBackend::connect().await?))
}

impl DockerBackend {
    pub fn new(docker: Docker, name: impl Into<String>) -> Self {
        DockerBackend {
            docker,
            name: name.into(),
        }
    }

    pub async fn connect() -> Result<Self, BackendError> {
        let unavailable = |e: bollard::errors::Error| {
            BackendError::Unavailable(format!("cannot reach the Docker engine: {e}"))
        };
        let docker = Docker::connect_with_local_defaults().map_err(unavailable)?;
        let docker = docker.negotiate_version().await.map_err(unavailable)?;
        docker.ping().await.map_err(unavailable)?;
        Ok(DockerBackend::new(docker, "docker"))
    }
}

/// The engine's answer as runbox tells answers apart.
fn engine_error(err: bollard::errors::Error) -> BackendError {
    use bollard::errors::Error as E;
    match err {
        E::DockerResponseServerError {
            status_code,
            message,
        } => {
            if message.contains("port is already allocated")
                || message.contains("address already in use")
            {
                BackendError::PortAllocated(message)
            } else if status_code == 404 {
                BackendError::NotFound(message)
            } else if status_code == 409 {
                BackendError::Conflict(message)
            } else {
                BackendError::Failed {
                    status: Some(status_code),
                    message,
                }
            }
        }
        err @ (E::IOError { .. }
        | E::HyperResponseError { .. }
        | E::HyperLegacyError { .. }
        | E::RequestTimeoutError
        | E::SocketNotFoundError(_)) => BackendError::Unavailable(err.to_string()),
        other => BackendError::Failed {
            status: None,
            message: other.to_string(),
        },
    }
}

impl Backend for DockerBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn health(&self) -> BoxFuture<'_, EngineHealth> {
        Box::pin(async move {
            match tokio::time::timeout(HEALTH_TIMEOUT, self.docker.version()).await {
                Ok(Ok(version)) => EngineHealth {
                    reachable: true,
                    version: version.version,
                    api_version: version.api_version,
                    error: None,
                },
                Ok(Err(err)) => EngineHealth::unreachable(err.to_string()),
                Err(_) => EngineHealth::unreachable("the engine did not answer within 3 s"),
            }
        })
    }

    fn ping(&self) -> EngineFuture<'_, ()> {
        Box::pin(async move {
            self.docker.ping().await.map_err(engine_error)?;
            Ok(())
        })
    }

    fn runtimes(&self) -> EngineFuture<'_, Vec<String>> {
        Box::pin(async move {
            let info = self.docker.info().await.map_err(engine_error)?;
            let mut names: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
            names.sort();
            Ok(names)
        })
    }

    fn create<'a>(&'a self, name: &'a str, spec: ContainerSpec) -> EngineFuture<'a, String> {
        Box::pin(async move {
            let options = CreateContainerOptions {
                name,
                platform: None,
            };
            let created = self
                .docker
                .create_container(Some(options), spec)
                .await
                .map_err(engine_error)?;
            Ok(created.id)
        })
    }

    fn start<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            self.docker
                .start_container::<String>(id, None)
                .await
                .map_err(engine_error)
        })
    }

    fn attach<'a>(&'a self, id: &'a str) -> EngineFuture<'a, Attached> {
        Box::pin(async move {
            let options = AttachContainerOptions::<String> {
                stdin: Some(true),
                stdout: Some(true),
                stderr: Some(true),
                stream: Some(true),
                logs: Some(false),
                detach_keys: None,
            };
            let AttachContainerResults { output, input } = self
                .docker
                .attach_container(id, Some(options))
                .await
                .map_err(engine_error)?;
            let output = output.filter_map(|item| async move {
                match item {
                    Ok(LogOutput::StdOut { message }) => Some(Ok(OutputChunk::Stdout(message))),
                    Ok(LogOutput::StdErr { message }) => Some(Ok(OutputChunk::Stderr(message))),
                    Ok(_) => None,
                    Err(err) => Some(Err(engine_error(err))),
                }
            });
            Ok(Attached {
                input,
                output: Box::pin(output),
            })
        })
    }

    fn wait<'a>(&'a self, id: &'a str) -> EngineFuture<'a, i64> {
        Box::pin(async move {
            let mut wait = self
                .docker
                .wait_container(id, None::<WaitContainerOptions<String>>);
            match wait.next().await {
                Some(Ok(response)) => Ok(response.status_code),
                // bollard reports a non-zero exit as this error.
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    Ok(code)
                }
                Some(Err(err)) => Err(engine_error(err)),
                None => Ok(self.inspect(id).await?.exit_code.unwrap_or(-1)),
            }
        })
    }

    fn inspect<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ContainerState> {
        Box::pin(async move {
            let inspected = self
                .docker
                .inspect_container(id, None)
                .await
                .map_err(engine_error)?;
            let state = inspected.state.unwrap_or_default();
            let running = state.running.unwrap_or(false);
            // The engine says 0001-01-01T00:00:00Z for a container that never stopped.
            let finished_at = state
                .finished_at
                .as_deref()
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                .map(SystemTime::from)
                .filter(|at| !running && *at > SystemTime::UNIX_EPOCH);
            Ok(ContainerState {
                running,
                exit_code: state.exit_code,
                oom_killed: state.oom_killed.unwrap_or(false),
                finished_at,
            })
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            self.docker
                .remove_container(id, Some(options))
                .await
                .map_err(engine_error)
        })
    }

    fn list<'a>(&'a self, filter: &'a ContainerFilter) -> EngineFuture<'a, Vec<ListedContainer>> {
        Box::pin(async move {
            let mut filters = HashMap::from([(
                "label".to_string(),
                filter
                    .labels
                    .iter()
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect::<Vec<_>>(),
            )]);
            if !filter.statuses.is_empty() {
                filters.insert(
                    "status".to_string(),
                    filter
                        .statuses
                        .iter()
                        .map(|s| s.as_str().to_string())
                        .collect(),
                );
            }
            let options = ListContainersOptions {
                all: true,
                filters,
                ..Default::default()
            };
            let listed = self
                .docker
                .list_containers(Some(options))
                .await
                .map_err(engine_error)?;
            Ok(listed
                .into_iter()
                .filter_map(|c| {
                    Some(ListedContainer {
                        id: c.id?,
                        created: c.created,
                    })
                })
                .collect())
        })
    }

    fn logs<'a>(&'a self, id: &'a str, tail_lines: usize) -> EngineFuture<'a, String> {
        Box::pin(async move {
            let options = LogsOptions {
                stdout: true,
                stderr: true,
                tail: tail_lines.to_string(),
                ..Default::default()
            };
            let mut stream = self.docker.logs(id, Some(options));
            let mut text = String::new();
            // What came before a broken stream is still worth showing.
            while let Some(Ok(chunk)) = stream.next().await {
                let bytes = match chunk {
                    LogOutput::StdOut { message }
                    | LogOutput::StdErr { message }
                    | LogOutput::Console { message }
                    | LogOutput::StdIn { message } => message,
                };
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
            Ok(text)
        })
    }

    fn memory<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ContainerMemory> {
        Box::pin(async move {
            let options = StatsOptions {
                stream: false,
                one_shot: true,
            };
            let mut stats = self.docker.stats(id, Some(options));
            let sample = stats
                .next()
                .await
                .ok_or_else(|| BackendError::Failed {
                    status: None,
                    message: format!("no stats for container {id}"),
                })?
                .map_err(engine_error)?;
            let memory = sample.memory_stats;
            let usage = memory.usage.unwrap_or_default();
            let (inactive_file, anon) = match memory.stats {
                Some(MemoryStatsStats::V1(v1)) => (v1.total_inactive_file, v1.total_rss),
                Some(MemoryStatsStats::V2(v2)) => (v2.inactive_file, v2.anon),
                None => (0, 0),
            };
            Ok(ContainerMemory {
                working_set: usage.saturating_sub(inactive_file),
                anon,
                usage,
            })
        })
    }

    fn commit<'a>(&'a self, id: &'a str, commit: CommitSpec) -> EngineFuture<'a, Option<String>> {
        Box::pin(async move {
            let options = CommitContainerOptions {
                container: id.to_string(),
                repo: commit.repo,
                tag: commit.tag,
                comment: commit.comment,
                author: commit.author,
                pause: false,
                changes: None,
            };
            let committed = self
                .docker
                .commit_container(options, commit.config)
                .await
                .map_err(engine_error)?;
            Ok(committed.id)
        })
    }

    fn inspect_image<'a>(&'a self, name: &'a str) -> EngineFuture<'a, ImageDetails> {
        Box::pin(async move {
            let image = self
                .docker
                .inspect_image(name)
                .await
                .map_err(engine_error)?;
            let config = image.config.unwrap_or_default();
            Ok(ImageDetails {
                id: image.id,
                labels: config.labels.unwrap_or_default(),
                user: config.user,
                cmd: config.cmd,
                entrypoint: config.entrypoint,
                env: config.env,
                working_dir: config.working_dir,
            })
        })
    }

    fn list_images<'a>(&'a self, label: &'a str) -> EngineFuture<'a, Vec<ListedImage>> {
        Box::pin(async move {
            let options = ListImagesOptions::<String> {
                all: false,
                filters: HashMap::from([("label".to_string(), vec![label.to_string()])]),
                ..Default::default()
            };
            let images = self
                .docker
                .list_images(Some(options))
                .await
                .map_err(engine_error)?;
            Ok(images
                .into_iter()
                .map(|image| ListedImage {
                    id: image.id,
                    repo_tags: image.repo_tags,
                    labels: image.labels,
                })
                .collect())
        })
    }

    fn remove_image<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            self.docker
                .remove_image(id, None, None)
                .await
                .map_err(engine_error)?;
            Ok(())
        })
    }

    fn pull_image<'a>(&'a self, image: &'a str, progress: Progress<'a>) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            let options = CreateImageOptions {
                from_image: image.to_string(),
                ..Default::default()
            };
            let mut stream = self.docker.create_image(Some(options), None, None);
            let mut last_status = String::new();
            while let Some(item) = stream.next().await {
                let info = item.map_err(engine_error)?;
                if let Some(status) = info.status {
                    if status != last_status {
                        progress(&status);
                        last_status = status;
                    }
                }
            }
            Ok(())
        })
    }

    fn build_image<'a>(
        &'a self,
        build: ImageBuild,
        context: Vec<u8>,
        progress: Progress<'a>,
    ) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            let options = BuildImageOptions {
                t: build.tag,
                rm: true,
                forcerm: true,
                buildargs: build.buildargs,
                labels: build.labels,
                ..Default::default()
            };
            let mut stream = self.docker.build_image(options, None, Some(context.into()));
            while let Some(item) = stream.next().await {
                let info = item.map_err(engine_error)?;
                if let Some(error) = info.error {
                    return Err(BackendError::Failed {
                        status: None,
                        message: error,
                    });
                }
                if let Some(line) = info.stream {
                    let line = line.trim_end();
                    if !line.is_empty() {
                        progress(line);
                    }
                }
            }
            Ok(())
        })
    }

    fn export_image(&self, name: &str) -> ImageTar {
        self.docker
            .export_image(name)
            .map(|chunk| chunk.map_err(engine_error))
            .boxed()
    }

    fn import_image(&self, tar: ImageTar) -> EngineFuture<'_, ()> {
        Box::pin(async move {
            // bollard takes a stream of bytes without errors: a failed read of the
            // source ends the stream, and its error is the one reported.
            let failed: Arc<Mutex<Option<BackendError>>> = Arc::default();
            let source_failed = failed.clone();
            let body = tar
                .take_while(move |chunk| {
                    let keep = match chunk {
                        Ok(_) => true,
                        Err(err) => {
                            *source_failed.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(BackendError::Failed {
                                    status: None,
                                    message: format!("reading the image from its engine: {err}"),
                                });
                            false
                        }
                    };
                    futures::future::ready(keep)
                })
                .filter_map(|chunk| futures::future::ready(chunk.ok()));
            let mut progress =
                self.docker
                    .import_image_stream(ImportImageOptions { quiet: true }, body, None);
            let mut answer = Ok(());
            while let Some(item) = progress.next().await {
                match item {
                    Ok(info) => {
                        if let Some(message) = info.error {
                            answer = Err(BackendError::Failed {
                                status: None,
                                message,
                            });
                        }
                    }
                    Err(err) => answer = Err(engine_error(err)),
                }
            }
            if let Some(err) = failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(err);
            }
            answer
        })
    }

    fn network_options<'a>(&'a self, name: &'a str) -> EngineFuture<'a, HashMap<String, String>> {
        Box::pin(async move {
            let network = self
                .docker
                .inspect_network::<String>(name, None)
                .await
                .map_err(engine_error)?;
            Ok(network.options.unwrap_or_default())
        })
    }

    fn create_network(&self, network: NetworkSpec) -> EngineFuture<'_, ()> {
        Box::pin(async move {
            let options = CreateNetworkOptions {
                name: network.name,
                check_duplicate: true,
                driver: "bridge".to_string(),
                options: network.options,
                labels: network.labels,
                ..Default::default()
            };
            self.docker
                .create_network(options)
                .await
                .map_err(engine_error)?;
            Ok(())
        })
    }
}
