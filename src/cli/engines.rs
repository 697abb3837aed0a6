//! The engines `runbox serve` runs sandboxes on: the one local engine, or those of
//! `sandbox.engines`, each with the sandbox image.

use std::sync::Arc;

use runbox_core::config::EngineConfig;
use runbox_core::Config;
use runbox_sandbox::image::ensure_image;
use runbox_sandbox::{connect_engine, Backend, EngineSet, EngineSpec};

use crate::embedded::image_source;

/// A client of every engine of `sandbox.engines`; whether each answers is asked later
/// (one that is not there yet is tried again at each use).
pub async fn connect_configured(config: &Config) -> Vec<(&EngineConfig, Arc<dyn Backend>)> {
    let connecting = config
        .sandbox
        .engines
        .iter()
        .map(|engine| async move { (engine, connect_engine(engine).await) });
    futures::future::join_all(connecting).await
}

/// The engines of `sandbox.engines` and the sandbox image, built on each engine that
/// answers now (a build from the compiled-in context took 8–9 s on the test engines,
/// a copy 29 s: docs/cluster.md). An engine that answers later gets a copy.
pub async fn configured_engines(config: &Config) -> anyhow::Result<(EngineSet, String)> {
    let engines = connect_configured(config).await;
    let built = futures::future::join_all(engines.iter().map(|(engine, backend)| async move {
        if let Err(err) = backend.ping().await {
            tracing::warn!(engine = %engine.name, error = %err, "engine does not answer at start; runs go to the others");
            return None;
        }
        let name = engine.name.clone();
        let mut progress = move |line: &str| eprintln!("  [{name}] {line}");
        match ensure_image(backend.as_ref(), config, &image_source(), false, &mut progress).await {
            Ok(tag) => Some(tag),
            Err(err) => {
                tracing::warn!(engine = %engine.name, error = %err, "cannot make the sandbox image on this engine");
                None
            }
        }
    }))
    .await;
    let image = built.into_iter().flatten().next().ok_or_else(|| {
        anyhow::anyhow!(
            "no engine of sandbox.engines answers with the sandbox image (see the warnings \
             above, and `runbox doctor`)"
        )
    })?;
    let specs = engines
        .into_iter()
        .map(|(engine, backend)| EngineSpec {
            address: engine.host.trim().to_string(),
            backend,
            capacity: Some(engine.capacity),
            pool_size: engine.pool_size,
            labels: engine.labels.clone(),
        })
        .collect();
    Ok((EngineSet::configured(specs), image))
}
