//! runbox's domain, apart from HTTP: who a caller is, admission, the run pipeline every
//! surface shares, sessions, stored functions and their tasks, and the views every
//! surface renders. A surface (`runbox-dispatch`, HTTP) parses a request, hands it
//! here and renders what comes back; it never reaches the sandboxes or the store by
//! itself.
//!
//! Modules depend one way: `error`, `metrics`, `admission`, `result`, `auth` at the
//! bottom; `execution` (the run pipeline), `sessions` and `functions` on those;
//! `runtime` (what a surface holds) on them; `run`, `health`, `gauges`, `placing` and
//! `stored_images` add the surface's ways in to `Runtime`.

mod admission;
pub mod auth;
pub mod cluster;
mod error;
mod execution;
pub mod functions;
mod gauges;
mod health;
mod image_ref;
mod instance;
pub mod metrics;
pub mod outputs;
mod placing;
pub mod replica;
pub mod result;
mod run;
mod run_event;
mod runtime;
pub mod sessions;
mod stored_images;

pub use error::{Rejection, RuntimeError};
pub use health::{
    BuildsHealth, ClusterHealth, DatabaseHealth, DockerHealth, HealthReport, HostFirewallHealth,
    IsolationHealth, PoolHealth, PoolState, RuntimeHealth, TierHealth,
};
pub use instance::instance_name;
pub use run::{Job, Run};
pub use run_event::RunEvent;
pub use runbox_sandbox::{Backend, EngineSet, EngineSpec};
pub use runbox_store::StoredImage;
pub use runtime::{OpenError, Runtime};
