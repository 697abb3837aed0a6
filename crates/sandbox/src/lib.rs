//! Everything in runbox that touches Docker: the sandbox image, the container spec and
//! its limits, the warm pool, the two transports to the in-container agent, the guard
//! that removes every container on every path, and the sweeps that catch leftovers.

mod docker;
mod engine;
pub mod environment;
mod error;
mod frame;
mod guard;
pub mod image;
pub mod labels;
pub mod network;
mod pool;
mod ports;
mod protocol;
mod sandbox;
mod session;
mod spec;
mod sweep;
mod transport;

pub use bollard::Docker;
pub use docker::{connect_docker, docker_runtimes, docker_status, DockerStatus};
pub use engine::{EngineStatus, RunOptions, Sandboxes};
pub use environment::{
    plan_environment, prune_environments, BuildFailure, BuildReport, DependencySet,
    EnvironmentPlan, InvalidRequirement, PruneReport,
};
pub use error::SandboxError;
pub use pool::PoolStatus;
pub use session::SessionSandbox;
pub use sweep::sweep_instance;
