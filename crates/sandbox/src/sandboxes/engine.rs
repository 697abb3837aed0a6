//! One engine behind `Sandboxes`: its own launcher (containers, janitor), warm pools,
//! offered runtimes, room and health. With `sandbox.engines` unset there is exactly one,
//! the local engine, which is always tried (today's behaviour); with it set, each run
//! goes to a reachable engine with room (see `order`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::backend::{Backend, EngineHealth};
use crate::placement::Placement;
use crate::pool::Pool;
use crate::sandbox::Launcher;

/// An engine as the caller hands it to `Sandboxes::start`.
pub struct EngineSpec {
    /// Where it listens, without secrets (shown in /health).
    pub address: String,
    pub backend: Arc<dyn Backend>,
    /// Sandboxes it holds at once; `None`: no limit of runbox's (the one local engine).
    pub capacity: Option<usize>,
    /// Warm sandboxes of the default image; `None`: `sandbox.pool.size`.
    pub pool_size: Option<usize>,
    pub labels: BTreeMap<String, String>,
}

/// The engines sandboxes run on: the one local engine, or those of `sandbox.engines`.
pub struct EngineSet {
    pub(crate) engines: Vec<EngineSpec>,
    /// From `sandbox.engines`: placed by health and room, each probed in the background.
    pub(crate) configured: bool,
}

impl EngineSet {
    /// The engines of `sandbox.engines`, in the order the config lists them.
    pub fn configured(engines: Vec<EngineSpec>) -> Self {
        EngineSet {
            engines,
            configured: true,
        }
    }
}

impl From<Arc<dyn Backend>> for EngineSet {
    /// The one local engine (DOCKER_HOST or the default socket).
    fn from(backend: Arc<dyn Backend>) -> Self {
        EngineSet {
            engines: vec![EngineSpec {
                address: std::env::var("DOCKER_HOST")
                    .ok()
                    .filter(|h| !h.trim().is_empty())
                    .unwrap_or_else(|| "local socket".into()),
                backend,
                capacity: None,
                pool_size: None,
                labels: BTreeMap::new(),
            }],
            configured: false,
        }
    }
}

/// What /health, /metrics and `runbox doctor` show of one engine.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EngineStatus {
    pub name: String,
    pub address: String,
    pub reachable: bool,
    pub version: Option<String>,
    pub error: Option<String>,
    /// `None`: no limit of runbox's.
    pub capacity: Option<usize>,
    pub in_use: usize,
    pub runtimes: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// An engine's load for /metrics.
#[derive(Clone, Debug)]
pub struct EngineLoad {
    pub name: String,
    pub in_use: usize,
    pub capacity: Option<usize>,
    pub reachable: bool,
}

pub(crate) struct EnginePart {
    pub address: String,
    pub capacity: Option<usize>,
    pub pool_size: Option<usize>,
    pub labels: BTreeMap<String, String>,
    pub launcher: Arc<Launcher>,
    /// Set once the engine is ready for runs (swept, image present, pools started).
    pub pools: OnceLock<HashMap<Placement, Arc<Pool>>>,
    /// The OCI runtimes the engine has registered, as last asked.
    pub offered: Mutex<Vec<String>>,
    /// Sandboxes running code on it now.
    pub in_use: Arc<AtomicUsize>,
    /// The last probe's answer (always true for the one local engine, which is tried
    /// whatever its state).
    pub reachable: AtomicBool,
    /// Its absence has been logged (once per absence).
    pub told_away: AtomicBool,
    /// Images known to be on the engine.
    pub images: Mutex<HashSet<String>>,
    /// One image copy at a time into this engine.
    pub copying: tokio::sync::Mutex<()>,
}

impl EnginePart {
    pub fn name(&self) -> &str {
        self.launcher.engine().name()
    }

    pub fn engine(&self) -> &dyn Backend {
        self.launcher.engine()
    }

    pub fn is_ready(&self) -> bool {
        self.pools.get().is_some()
    }

    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::SeqCst)
    }

    pub fn offered(&self) -> Vec<String> {
        lock(&self.offered).clone()
    }

    pub fn offers(&self, runtime: &str) -> bool {
        runtime.is_empty() || lock(&self.offered).iter().any(|r| r == runtime)
    }

    pub fn has_image(&self, image: &str) -> bool {
        lock(&self.images).contains(image)
    }

    pub fn note_image(&self, image: &str, present: bool) {
        let mut images = lock(&self.images);
        if present {
            images.insert(image.to_string());
        } else {
            images.remove(image);
        }
    }

    pub fn status(&self, health: EngineHealth) -> EngineStatus {
        EngineStatus {
            name: self.name().to_string(),
            address: self.address.clone(),
            reachable: health.reachable,
            version: health.version,
            error: health.error,
            capacity: self.capacity,
            in_use: self.in_use(),
            runtimes: self.offered(),
            labels: self.labels.clone(),
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What placement weighs of one engine.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    /// Answered its last probe and is ready for runs.
    pub usable: bool,
    /// Offers the OCI runtime the run needs.
    pub offers: bool,
    /// Has the run's image already (else it is copied there first).
    pub has_image: bool,
    pub in_use: usize,
    pub capacity: usize,
}

/// The engines to try for a run, best first: usable ones that offer the runtime and
/// have room; those that have the image before those that would need a copy, then the
/// most free room first; ties go round from `turn`, so that equal engines share the
/// work.
pub(crate) fn order(candidates: &[Candidate], turn: usize) -> Vec<usize> {
    let count = candidates.len().max(1);
    let mut chosen: Vec<usize> = (0..candidates.len())
        .filter(|&i| {
            let c = &candidates[i];
            c.usable && c.offers && c.in_use < c.capacity
        })
        .collect();
    chosen.sort_by_key(|&i| {
        let c = &candidates[i];
        (
            !c.has_image,
            std::cmp::Reverse(c.capacity - c.in_use),
            (i + count - turn % count) % count,
        )
    });
    chosen
}
