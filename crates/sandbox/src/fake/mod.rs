//! An engine in memory, for tests without Docker (this crate's, and with the feature
//! `fake-backend` other crates'). Its containers run a stand-in agent that speaks the
//! real stdio protocol (see `agent.rs`); the http transport, which needs a real port,
//! is not served. Faults are injected with `set_faults`, deaths with `kill` and
//! `die_silently`, and it counts live containers so that tests can assert none leaked.

mod agent;
mod api;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::agent::AgentIo;
use crate::backend::{BackendError, ContainerFilter, ContainerSpec, ContainerStatus};

/// What goes wrong, and how slow things are, from now on.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// The next this many creates fail (the engine answers 500).
    pub failing_creates: usize,
    /// Every create fails while set.
    pub creates_fail: bool,
    /// Every call fails as when the engine is gone; health says it is unreachable.
    pub unavailable: bool,
    /// How long a create takes.
    pub create_delay: Duration,
    /// How long a started container's agent takes to say ready.
    pub start_delay: Duration,
    /// How long the agent takes to answer an exec.
    pub answer_delay: Duration,
    /// Images the engine does not have (a create of one answers 404).
    pub missing_images: Vec<String>,
}

pub struct FakeBackend {
    name: String,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, Container>,
    faults: Faults,
    next_id: u64,
    create_attempts: usize,
    created: usize,
    /// RUNBOX_PRELOAD of every container created, in order.
    preloads: Vec<String>,
    /// The OCI runtime of every container created, in order ("" for the default).
    runtimes_used: Vec<String>,
    /// The runtimes the engine has registered besides `runc`.
    extra_runtimes: Vec<String>,
    /// Containers created whose agent has not said ready yet, and the most at once.
    starting: usize,
    max_starting: usize,
    networks: HashMap<String, HashMap<String, String>>,
    /// Images loaded by `import_image`, in order.
    images_loaded: Vec<String>,
}

struct Container {
    labels: HashMap<String, String>,
    preload: Vec<String>,
    created: i64,
    status: ContainerStatus,
    exit_code: Option<i64>,
    finished_at: Option<SystemTime>,
    exited: watch::Sender<bool>,
    /// The agent's ends of stdin and stdout, from attach until start.
    io: Option<AgentIo>,
    agent: Option<JoinHandle<()>>,
    died: Arc<AtomicBool>,
    /// Counted in `State::starting`.
    starting: bool,
}

impl Container {
    /// A container as the engine records it before anything ran in it; `exited` is
    /// what a wait for its exit sees first.
    fn new(
        labels: HashMap<String, String>,
        preload: Vec<String>,
        created: i64,
        status: ContainerStatus,
        starting: bool,
        exited: bool,
    ) -> Self {
        let (exited, _) = watch::channel(exited);
        Container {
            labels,
            preload,
            created,
            status,
            exit_code: None,
            finished_at: None,
            exited,
            io: None,
            agent: None,
            died: Arc::default(),
            starting,
        }
    }

    fn stop(&mut self, code: i64) {
        if matches!(
            self.status,
            ContainerStatus::Created | ContainerStatus::Running
        ) {
            self.status = ContainerStatus::Exited;
            self.exit_code = Some(code);
            self.finished_at = Some(SystemTime::now());
        }
        self.exited.send_replace(true);
    }
}

impl State {
    fn settle_start(&mut self, id: &str) {
        if let Some(container) = self.containers.get_mut(id) {
            if std::mem::replace(&mut container.starting, false) {
                self.starting -= 1;
            }
        }
    }
}

/// Exit code of a killed container (SIGKILL).
const KILLED: i64 = 137;

impl FakeBackend {
    pub fn new() -> Arc<Self> {
        FakeBackend::named("fake")
    }

    /// A fake engine called `name` (several stand behind one `Sandboxes`).
    pub fn named(name: &str) -> Arc<Self> {
        Arc::new(FakeBackend {
            name: name.to_string(),
            state: Arc::new(Mutex::new(State::default())),
        })
    }

    /// Images loaded into this engine by `import_image`, in order.
    pub fn images_loaded(&self) -> Vec<String> {
        self.state().images_loaded.clone()
    }

    pub fn set_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.state().faults);
    }

    /// Containers that exist (created and not removed).
    pub fn live(&self) -> usize {
        self.state().containers.len()
    }

    /// Creates that succeeded, and those asked for.
    pub fn created(&self) -> usize {
        self.state().created
    }

    pub fn create_attempts(&self) -> usize {
        self.state().create_attempts
    }

    /// The most containers that were at once between create and their agent's ready.
    pub fn max_concurrent_starts(&self) -> usize {
        self.state().max_starting
    }

    /// RUNBOX_PRELOAD of every container created, in order.
    /// Registers more OCI runtimes with the engine (it always has `runc`).
    pub fn offer_runtimes(&self, runtimes: &[&str]) {
        self.state().extra_runtimes = runtimes.iter().map(|r| r.to_string()).collect();
    }

    /// The OCI runtime each container was created with, in order ("" for the default).
    pub fn runtimes_used(&self) -> Vec<String> {
        self.state().runtimes_used.clone()
    }

    pub fn preloads(&self) -> Vec<String> {
        self.state().preloads.clone()
    }

    /// The ids of the containers that match `filter`.
    pub fn ids(&self, filter: &ContainerFilter) -> Vec<String> {
        self.state()
            .containers
            .iter()
            .filter(|(_, c)| filter.matches(&c.labels, c.status))
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn exists(&self, id: &str) -> bool {
        self.state().containers.contains_key(id)
    }

    /// Kills the container: its agent and output end at once.
    pub fn kill(&self, id: &str) {
        let mut state = self.state();
        state.settle_start(id);
        if let Some(container) = state.containers.get_mut(id) {
            if let Some(agent) = container.agent.take() {
                agent.abort();
            }
            container.io = None;
            container.stop(KILLED);
        }
    }

    /// The container dies, but its output does not end until something is sent to it:
    /// a pooled sandbox that died while idle, noticed only when it is used.
    pub fn die_silently(&self, id: &str) {
        if let Some(container) = self.state().containers.get_mut(id) {
            container.died.store(true, Ordering::SeqCst);
            container.stop(KILLED);
        }
    }

    /// A container nobody owns, as an earlier run would have left it.
    pub fn add_leftover(
        &self,
        labels: &[(&str, &str)],
        status: ContainerStatus,
        age: Duration,
    ) -> String {
        let mut state = self.state();
        let id = next_id(&mut state);
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let created = unix_now() - age.as_secs() as i64;
        let exited = status != ContainerStatus::Running;
        let container = Container::new(labels, Vec::new(), created, status, false, exited);
        state.containers.insert(id.clone(), container);
        id
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The state, unless the engine is "away".
    fn answering(&self) -> Result<MutexGuard<'_, State>, BackendError> {
        let state = self.state();
        if state.faults.unavailable {
            return Err(BackendError::Unavailable(
                "the fake engine is unavailable".into(),
            ));
        }
        Ok(state)
    }

    fn container_mut<'s>(
        state: &'s mut State,
        id: &str,
    ) -> Result<&'s mut Container, BackendError> {
        state
            .containers
            .get_mut(id)
            .ok_or_else(|| BackendError::NotFound(format!("No such container: {id}")))
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn next_id(state: &mut State) -> String {
    state.next_id += 1;
    format!("fake{:012}", state.next_id)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn preload_of(spec: &ContainerSpec) -> Vec<String> {
    spec.env
        .iter()
        .flatten()
        .find_map(|var| var.strip_prefix("RUNBOX_PRELOAD="))
        .map(|list| {
            list.split(',')
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}
