//! Configuration and the execution types that every runbox crate shares.

pub mod config;
pub mod exec;
pub mod fence;
pub mod isolation;
pub mod numbers;
pub mod outputs;
pub mod units;

pub use config::{Config, ConfigError};
pub use exec::{
    ErrorKind, ExecError, ExecEvent, ExecMode, ExecOutcome, ExecRequest, FunctionCall, ImageFile,
    InputFile, Language,
};
pub use isolation::Isolation;
pub use outputs::{OutputData, OutputItem, OutputKind};
