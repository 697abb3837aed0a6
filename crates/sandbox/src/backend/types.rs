//! What goes into and comes out of a `Backend`.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures::Stream;
use tokio::io::AsyncWrite;

use super::error::BackendError;

/// A container as runbox creates it: the body of the engine API's create call. runbox
/// builds it once (spec.rs), prints it for audits (`runbox image spec`), and every
/// engine behind the trait speaks that API (Docker, Podman), so there is no second
/// description of the same limits to keep in step with the first.
pub type ContainerSpec = bollard::container::Config<String>;

/// Something the container wrote.
#[derive(Clone, Debug)]
pub enum OutputChunk {
    Stdout(Bytes),
    Stderr(Bytes),
}

pub type OutputStream = Pin<Box<dyn Stream<Item = Result<OutputChunk, BackendError>> + Send>>;
pub type InputWriter = Pin<Box<dyn AsyncWrite + Send>>;

/// A container's stdin and output, from `Backend::attach`. Dropping `input` closes the
/// container's stdin.
pub struct Attached {
    pub input: InputWriter,
    pub output: OutputStream,
}

/// What the crate reads of an inspected container.
#[derive(Clone, Debug, Default)]
pub struct ContainerState {
    pub running: bool,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// When it stopped; `None` while it has not.
    pub finished_at: Option<SystemTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerStatus {
    Created,
    Running,
    Exited,
    Dead,
}

impl ContainerStatus {
    /// The engine API's name of the status (its list filter's value).
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Exited => "exited",
            ContainerStatus::Dead => "dead",
        }
    }
}

/// Which containers `Backend::list` returns: those with every one of `labels` (a
/// `(key, value)` pair each) in any of `statuses` (any status when empty).
#[derive(Clone, Debug, Default)]
pub struct ContainerFilter {
    pub labels: Vec<(String, String)>,
    pub statuses: Vec<ContainerStatus>,
}

impl ContainerFilter {
    pub fn matches(&self, labels: &HashMap<String, String>, status: ContainerStatus) -> bool {
        self.labels
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
            && (self.statuses.is_empty() || self.statuses.contains(&status))
    }
}

#[derive(Clone, Debug)]
pub struct ListedContainer {
    pub id: String,
    /// When it was created, in seconds since the Unix epoch.
    pub created: Option<i64>,
}

/// Engine facts for /health and `runbox doctor`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EngineHealth {
    pub reachable: bool,
    pub version: Option<String>,
    pub api_version: Option<String>,
    pub error: Option<String>,
}

impl EngineHealth {
    pub fn unreachable(error: impl Into<String>) -> Self {
        EngineHealth {
            reachable: false,
            version: None,
            api_version: None,
            error: Some(error.into()),
        }
    }
}

/// Memory of one container, from the engine's stats (cgroup v1 or v2).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ContainerMemory {
    /// What `docker stats` shows: usage less the inactive page cache.
    pub working_set: u64,
    /// Anonymous memory of the processes (rss on cgroup v1, anon on v2).
    pub anon: u64,
    /// The cgroup's whole charge, page cache included.
    pub usage: u64,
}

/// The image of a committed container.
#[derive(Clone, Debug)]
pub struct CommitSpec {
    pub repo: String,
    pub tag: String,
    pub comment: String,
    pub author: String,
    /// The image's user, command, environment and labels.
    pub config: ContainerSpec,
}

/// What the crate reads of an inspected image.
#[derive(Clone, Debug, Default)]
pub struct ImageDetails {
    pub id: Option<String>,
    pub labels: HashMap<String, String>,
    pub user: Option<String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    pub working_dir: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ListedImage {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub labels: HashMap<String, String>,
}

/// An image build from a tar context.
#[derive(Clone, Debug, Default)]
pub struct ImageBuild {
    pub tag: String,
    pub buildargs: HashMap<String, String>,
    pub labels: HashMap<String, String>,
}

/// A bridge network.
#[derive(Clone, Debug, Default)]
pub struct NetworkSpec {
    pub name: String,
    pub options: HashMap<String, String>,
    pub labels: HashMap<String, String>,
}
