//! runbox's domain, apart from HTTP: admission, the run pipeline every surface shares,
//! sessions and the result objects. The HTTP surface (`runbox-dispatch`) parses a
//! request, hands it here and renders what comes back; it never reaches the sandboxes
//! or the store by itself.
//!
//! Modules depend one way: `error`, `metrics`, `admission`, `result` at the bottom;
//! `sessions` on those; `execution` (the run pipeline) on all of them; `runtime` (what
//! a surface holds) on top.

pub mod admission;
mod error;
pub mod execution;
pub mod functions;
mod instance;
pub mod metrics;
pub mod result;
mod runtime;
pub mod sessions;

pub use error::RuntimeError;
pub use instance::instance_name;
pub use runbox_sandbox::RunOptions;
pub use runtime::{Caller, Job, Run, Runtime};
