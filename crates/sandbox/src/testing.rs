//! What the unit tests share: a configuration, sandboxes on the fake engine, requests,
//! and waiting for a condition.

use std::sync::Arc;
use std::time::{Duration, Instant};

use runbox_core::config::Transport;
use runbox_core::{Config, ExecRequest, Language};

use crate::backend::Backend;
use crate::fake::FakeBackend;
use crate::Sandboxes;

pub(crate) const IMAGE: &str = "runbox-sandbox:unit";
pub(crate) const INSTANCE: &str = "unit";

/// The defaults over the stdio transport, with this pool and no extra pool images.
pub(crate) fn config(pool_size: usize, refill_parallelism: usize, preload: &[&str]) -> Config {
    let mut config = Config::defaults();
    config.sandbox.transport = Transport::Stdio;
    config.sandbox.pool.size = pool_size;
    config.sandbox.pool.refill_parallelism = refill_parallelism;
    config.sandbox.pool.images.clear();
    config.sandbox.preload = preload.iter().map(|m| m.to_string()).collect();
    config
}

pub(crate) async fn start(engine: &Arc<FakeBackend>, config: Config) -> Sandboxes {
    let engine: Arc<dyn Backend> = engine.clone();
    Sandboxes::start(
        Arc::new(config),
        engine,
        IMAGE.to_string(),
        INSTANCE.to_string(),
    )
    .await
    .expect("sandboxes start on the fake engine")
}

pub(crate) fn request(code: &str) -> ExecRequest {
    ExecRequest::new(Language::Python, code, Duration::from_secs(5))
}

/// Ready sandboxes over every pool.
pub(crate) fn ready(sandboxes: &Sandboxes) -> usize {
    sandboxes.status().pools.iter().map(|p| p.ready).sum()
}

/// Waits until `condition` holds; fails the test, saying `what`, after `within`.
pub(crate) async fn eventually(within: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
