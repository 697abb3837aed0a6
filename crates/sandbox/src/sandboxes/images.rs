//! Images on several engines: the sandbox image and function environments are made on
//! one engine (built there) and copied to the others with the engines' own image
//! export and import (`docker save | docker load`), which took a fraction of a build's
//! time on the test engines (docs/cluster.md, "Several engines").

use std::sync::Arc;
use std::time::Instant;

use super::engine::EnginePart;
use crate::backend::BackendError;
use crate::SandboxError;

/// Makes sure `image` is on `part`, copying it from another engine that has it.
pub(crate) async fn ensure_image_on(
    part: &EnginePart,
    engines: &[Arc<EnginePart>],
    image: &str,
) -> Result<(), SandboxError> {
    if part.has_image(image) {
        return Ok(());
    }
    let _one_at_a_time = part.copying.lock().await;
    if part.has_image(image) {
        return Ok(());
    }
    match part.engine().inspect_image(image).await {
        Ok(_) => {
            part.note_image(image, true);
            return Ok(());
        }
        Err(BackendError::NotFound(_)) => {}
        Err(err) => return Err(SandboxError::docker("looking for an image")(err)),
    }
    for source in engines {
        if source.name() == part.name() || source.engine().inspect_image(image).await.is_err() {
            continue;
        }
        let started = Instant::now();
        let tar = source.engine().export_image(image);
        match part.engine().import_image(tar).await {
            Ok(()) => {
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(
                    image,
                    from = source.name(),
                    to = part.name(),
                    seconds,
                    "copied an image between engines"
                );
                metrics::histogram!("runbox_image_copy_seconds", "engine" => part.name().to_string())
                    .record(seconds);
                part.note_image(image, true);
                return Ok(());
            }
            Err(err) => tracing::warn!(
                image,
                from = source.name(),
                to = part.name(),
                error = %err,
                "copying an image between engines failed"
            ),
        }
    }
    Err(SandboxError::ImageMissing(image.to_string()))
}
