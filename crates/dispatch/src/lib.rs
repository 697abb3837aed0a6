//! runbox's HTTP surface: routes, bearer auth, rate limits and the rendering of the
//! runtime's results for the compatibility and native surfaces. Everything beyond HTTP
//! is the runtime's (`runbox-runtime`); this crate never reaches the sandboxes or the
//! store by itself.

mod app;
pub mod auth;
pub mod error;
mod exec_body;
mod listen;
mod mcp;
pub mod metrics;
mod openapi;
pub mod peer_client;
pub mod rate_limit;
mod routes;
pub mod state;

pub use app::{Application, StartupError};
pub use mcp::PROGRESS_SENT as MCP_PROGRESS_SENT;
pub use runbox_runtime::instance_name;
