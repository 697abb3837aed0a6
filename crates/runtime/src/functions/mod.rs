//! Stored functions, the parts apart from any surface: their argument specs, their
//! dependency environments and the registry of calls running now.

pub mod args;
pub mod environments;
pub mod running;

pub use environments::{Environment, EnvironmentState, EnvironmentView, Environments, Need};
pub use running::{CallSlot, RunningCalls};
