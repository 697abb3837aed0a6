//! The engine API of the fake: what `Backend` asks, answered from the in-memory state.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;

use super::agent::{self, AgentIo, AgentPlan};
use super::{lock, next_id, preload_of, unix_now, Container, FakeBackend, State, KILLED};
use crate::backend::{
    Attached, Backend, BackendError, CommitSpec, ContainerFilter, ContainerMemory, ContainerSpec,
    ContainerState, ContainerStatus, EngineFuture, EngineHealth, ImageBuild, ImageDetails,
    ImageTar, ListedContainer, ListedImage, NetworkSpec, Progress,
};
use crate::labels;

/// What the fake's image tars begin with (the image's name follows).
const FAKE_TAR: &str = "fake image tar: ";

/// Marks the container stopped with `code` once its process ended by itself.
fn process_ended(state: &Mutex<State>, id: &str, code: i64) {
    let mut state = lock(state);
    state.settle_start(id);
    if let Some(container) = state.containers.get_mut(id) {
        container.stop(code);
    }
}

impl Backend for FakeBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn health(&self) -> BoxFuture<'_, EngineHealth> {
        Box::pin(async move {
            match self.answering() {
                Ok(_) => EngineHealth {
                    reachable: true,
                    version: Some("fake".into()),
                    api_version: Some("1.47".into()),
                    error: None,
                },
                Err(err) => EngineHealth::unreachable(err.to_string()),
            }
        })
    }

    fn ping(&self) -> EngineFuture<'_, ()> {
        Box::pin(async move { self.answering().map(drop) })
    }

    fn runtimes(&self) -> EngineFuture<'_, Vec<String>> {
        Box::pin(async move {
            self.answering().map(|state| {
                let mut runtimes = vec!["runc".to_string()];
                runtimes.extend(state.extra_runtimes.iter().cloned());
                runtimes
            })
        })
    }

    fn create<'a>(&'a self, _name: &'a str, spec: ContainerSpec) -> EngineFuture<'a, String> {
        Box::pin(async move {
            let delay = {
                let mut state = self.answering()?;
                state.create_attempts += 1;
                state.faults.create_delay
            };
            tokio::time::sleep(delay).await;
            let mut state = self.answering()?;
            if state.faults.creates_fail || state.faults.failing_creates > 0 {
                state.faults.failing_creates = state.faults.failing_creates.saturating_sub(1);
                return Err(BackendError::Failed {
                    status: Some(500),
                    message: "an injected create failure".into(),
                });
            }
            let image = spec.image.clone().unwrap_or_default();
            if state.faults.missing_images.contains(&image) {
                return Err(BackendError::NotFound(format!("No such image: {image}")));
            }
            let id = next_id(&mut state);
            let preload = preload_of(&spec);
            state.created += 1;
            state.preloads.push(preload.join(","));
            let runtime = spec
                .host_config
                .as_ref()
                .and_then(|host| host.runtime.clone())
                .unwrap_or_default();
            state.runtimes_used.push(runtime);
            state.starting += 1;
            state.max_starting = state.max_starting.max(state.starting);
            let labels = spec.labels.clone().unwrap_or_default();
            let container = Container::new(
                labels,
                preload,
                unix_now(),
                ContainerStatus::Created,
                true,
                false,
            );
            state.containers.insert(id.clone(), container);
            Ok(id)
        })
    }

    fn start<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            let (io, plan, delay) = {
                let mut state = self.answering()?;
                let faults = state.faults.clone();
                let container = Self::container_mut(&mut state, id)?;
                if container.status != ContainerStatus::Created {
                    return Ok(());
                }
                container.status = ContainerStatus::Running;
                let plan = AgentPlan {
                    preload: container.preload.clone(),
                    answer_delay: faults.answer_delay,
                    died: container.died.clone(),
                };
                (container.io.take(), plan, faults.start_delay)
            };
            let state = self.state.clone();
            let owned_id = id.to_string();
            let process = tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                // Not attached, it is a command that runs and exits (a build, a baseline).
                if let Some(io) = io {
                    let ready = || lock(&state).settle_start(&owned_id);
                    agent::run(io, plan, ready).await;
                }
                process_ended(&state, &owned_id, 0);
            });
            match self.state().containers.get_mut(id) {
                Some(container) => container.agent = Some(process),
                None => process.abort(),
            }
            Ok(())
        })
    }

    fn attach<'a>(&'a self, id: &'a str) -> EngineFuture<'a, Attached> {
        Box::pin(async move {
            let mut state = self.answering()?;
            let container = Self::container_mut(&mut state, id)?;
            let (runbox_end, agent_end) = tokio::io::duplex(1 << 16);
            let (stdout, output) = mpsc::channel(64);
            container.io = Some(AgentIo {
                stdin: agent_end,
                stdout,
            });
            let output = futures::stream::unfold(output, |mut output| async move {
                output.recv().await.map(|item| (item, output))
            });
            Ok(Attached {
                input: Box::pin(runbox_end),
                output: Box::pin(output),
            })
        })
    }

    fn wait<'a>(&'a self, id: &'a str) -> EngineFuture<'a, i64> {
        Box::pin(async move {
            let mut exited = {
                let mut state = self.answering()?;
                Self::container_mut(&mut state, id)?.exited.subscribe()
            };
            // Ends with an error when the container is removed meanwhile: it is gone.
            let _ = exited.wait_for(|exited| *exited).await;
            let code = self.state().containers.get(id).and_then(|c| c.exit_code);
            Ok(code.unwrap_or(KILLED))
        })
    }

    fn inspect<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ContainerState> {
        Box::pin(async move {
            let mut state = self.answering()?;
            let container = Self::container_mut(&mut state, id)?;
            Ok(ContainerState {
                running: container.status == ContainerStatus::Running,
                exit_code: container.exit_code,
                oom_killed: false,
                finished_at: container.finished_at,
            })
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            let mut state = self.answering()?;
            state.settle_start(id);
            let mut container = state
                .containers
                .remove(id)
                .ok_or_else(|| BackendError::NotFound(format!("No such container: {id}")))?;
            if let Some(agent) = container.agent.take() {
                agent.abort();
            }
            container.stop(KILLED);
            Ok(())
        })
    }

    fn list<'a>(&'a self, filter: &'a ContainerFilter) -> EngineFuture<'a, Vec<ListedContainer>> {
        Box::pin(async move {
            let state = self.answering()?;
            Ok(state
                .containers
                .iter()
                .filter(|(_, c)| filter.matches(&c.labels, c.status))
                .map(|(id, c)| ListedContainer {
                    id: id.clone(),
                    created: Some(c.created),
                })
                .collect())
        })
    }

    fn logs<'a>(&'a self, id: &'a str, _tail_lines: usize) -> EngineFuture<'a, String> {
        Box::pin(async move {
            let mut state = self.answering()?;
            Self::container_mut(&mut state, id).map(|_| String::new())
        })
    }

    fn memory<'a>(&'a self, id: &'a str) -> EngineFuture<'a, ContainerMemory> {
        Box::pin(async move {
            let mut state = self.answering()?;
            Self::container_mut(&mut state, id).map(|_| ContainerMemory::default())
        })
    }

    fn commit<'a>(&'a self, id: &'a str, commit: CommitSpec) -> EngineFuture<'a, Option<String>> {
        Box::pin(async move {
            let mut state = self.answering()?;
            Self::container_mut(&mut state, id)?;
            Ok(Some(format!("sha256:{}-{}", commit.repo, commit.tag)))
        })
    }

    fn inspect_image<'a>(&'a self, name: &'a str) -> EngineFuture<'a, ImageDetails> {
        Box::pin(async move {
            let state = self.answering()?;
            if state.faults.missing_images.iter().any(|m| m == name) {
                return Err(BackendError::NotFound(format!("No such image: {name}")));
            }
            Ok(ImageDetails {
                id: Some(format!("sha256:{name}")),
                labels: HashMap::from([(labels::AGENT.to_string(), "fake".to_string())]),
                ..ImageDetails::default()
            })
        })
    }

    fn list_images<'a>(&'a self, _label: &'a str) -> EngineFuture<'a, Vec<ListedImage>> {
        Box::pin(async move { self.answering().map(|_| Vec::new()) })
    }

    fn remove_image<'a>(&'a self, _id: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(async move { self.answering().map(drop) })
    }

    fn pull_image<'a>(&'a self, _image: &'a str, _progress: Progress<'a>) -> EngineFuture<'a, ()> {
        Box::pin(async move { self.answering().map(drop) })
    }

    fn build_image<'a>(
        &'a self,
        _build: ImageBuild,
        _context: Vec<u8>,
        _progress: Progress<'a>,
    ) -> EngineFuture<'a, ()> {
        Box::pin(async move { self.answering().map(drop) })
    }

    fn export_image(&self, name: &str) -> ImageTar {
        let answer = self.answering().and_then(|state| {
            if state.faults.missing_images.iter().any(|m| m == name) {
                Err(BackendError::NotFound(format!("No such image: {name}")))
            } else {
                Ok(bytes::Bytes::from(format!("{FAKE_TAR}{name}")))
            }
        });
        futures::stream::iter([answer]).boxed()
    }

    fn import_image(&self, tar: ImageTar) -> EngineFuture<'_, ()> {
        Box::pin(async move {
            let chunks: Vec<bytes::Bytes> = tar.try_collect().await?;
            let text = String::from_utf8_lossy(&chunks.concat()).to_string();
            let name = text
                .strip_prefix(FAKE_TAR)
                .ok_or_else(|| BackendError::Failed {
                    status: Some(500),
                    message: "not an image tar".into(),
                })?
                .to_string();
            let mut state = self.answering()?;
            state.faults.missing_images.retain(|m| *m != name);
            state.images_loaded.push(name);
            Ok(())
        })
    }

    fn network_options<'a>(&'a self, name: &'a str) -> EngineFuture<'a, HashMap<String, String>> {
        Box::pin(async move {
            let state = self.answering()?;
            state
                .networks
                .get(name)
                .cloned()
                .ok_or_else(|| BackendError::NotFound(format!("network {name} not found")))
        })
    }

    fn create_network(&self, network: NetworkSpec) -> EngineFuture<'_, ()> {
        Box::pin(async move {
            let mut state = self.answering()?;
            state.networks.insert(network.name, network.options);
            Ok(())
        })
    }
}
