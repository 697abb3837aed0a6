//! Stored functions, the parts apart from any surface: their argument specs and the
//! registry of calls running now.

pub mod args;
pub mod running;

pub use running::{CallSlot, RunningCalls};
