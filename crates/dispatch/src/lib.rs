//! runbox's HTTP surface: routes, bearer auth, admission control and the rendering of
//! results for the compatibility and native surfaces.

pub mod admission;
mod app;
pub mod auth;
pub mod error;
pub mod execution;
pub mod functions;
mod listen;
pub mod metrics;
mod openapi;
pub mod rate_limit;
pub mod result;
mod routes;
pub mod sessions;
pub mod state;

pub use app::{instance_name, Application, StartupError};
