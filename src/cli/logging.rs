//! Logs go to stderr, pretty or JSON as `logging.format` says; `RUST_LOG` overrides
//! `logging.level`.

use runbox_core::config::{LogFormat, LoggingConfig};
use tracing_subscriber::EnvFilter;

pub fn init(config: &LoggingConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    if let Err(err) = installed {
        eprintln!("runbox: logging already initialised: {err}");
    }
}
