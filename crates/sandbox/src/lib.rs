//! Everything in runbox that touches a container engine: the engine itself behind a
//! trait (`backend`), the sandbox image, the container spec and its limits, the warm
//! pool, the two transports to the in-container agent, the guard that removes every
//! container on every path, and the sweeps that catch leftovers.

pub mod backend;
mod containers;
pub mod environment;
mod error;
#[cfg(any(test, feature = "fake-backend"))]
pub mod fake;
mod frame;
mod guard;
pub mod host_firewall;
pub mod image;
mod in_use;
pub mod labels;
pub mod network;
mod outputs;
mod placement;
mod pool;
mod ports;
mod protocol;
mod sandbox;
mod sandboxes;
mod seccomp;
mod session;
mod spec;
mod sweep;
#[cfg(test)]
mod testing;
mod transport;

pub use backend::{
    connect_docker, connect_engine, docker_runtimes, Backend, BackendError, ContainerMemory,
    ContainerSpec, DockerBackend, EngineHealth, ImageTar,
};
pub use containers::Containers;
pub use environment::{
    plan_environment, prune_environments, BuildFailure, BuildReport, DependencySet,
    EnvironmentPlan, InvalidRequirement, PruneReport,
};
pub use error::SandboxError;
pub use guard::ContainerGuard;
pub use labels::ContainerKind;
pub use placement::Placement;
pub use pool::PoolStatus;
pub use sandboxes::{
    EngineLoad, EngineSet, EngineSpec, EngineStatus, RunOptions, Sandboxes, SandboxesStatus,
};
pub use seccomp::{Seccomp, RUNBOX_PROFILE};
pub use session::SessionSandbox;
pub use spec::{stdio_sandbox_body, stdio_sandbox_spec};
pub use sweep::{list_containers, sweep_instance};
