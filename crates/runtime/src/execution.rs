//! The path every run takes once a surface has parsed its request: admission, a sandbox
//! run, the metrics, and storing the images the code drew so that they are served by URL.

use std::sync::Arc;

use runbox_core::{Config, ExecOutcome, ExecRequest};
use runbox_sandbox::{RunOptions, Sandboxes};
use runbox_store::Store;

use crate::admission::Admission;
use crate::error::RuntimeError;
use crate::metrics::{record_execution, record_failure, Surface};
use crate::result::{Executed, StoredImageRef};

/// What a run needs: the sandboxes it runs in, the admission it waits for, the store its
/// images go to. Shared by one-shot runs, sessions and stored functions.
#[derive(Clone)]
pub struct Runner {
    pub config: Arc<Config>,
    pub sandboxes: Sandboxes,
    pub store: Store,
    pub admission: Admission,
    /// Base of the URLs of stored images, without a trailing slash.
    pub public_url: Arc<str>,
}

impl Runner {
    /// Admits, runs and stores images. A failure of the user's code is in the outcome;
    /// `Err` is overload or a failure of runbox's own machinery.
    pub async fn execute(
        &self,
        surface: Surface,
        request: &ExecRequest,
        options: RunOptions,
    ) -> Result<Executed, RuntimeError> {
        let _admitted = self.admission.admit().await?;
        self.run_admitted(surface, request, options).await
    }

    /// [`Runner::execute`] for a caller that holds its admission already (a stream
    /// admits before it answers, so that overload is still a 504 and not an event).
    pub async fn run_admitted(
        &self,
        surface: Surface,
        request: &ExecRequest,
        options: RunOptions,
    ) -> Result<Executed, RuntimeError> {
        let outcome = match self.sandboxes.run(request, options).await {
            Ok(outcome) => outcome,
            Err(err) => {
                record_failure(surface, "sandbox");
                return Err(err.into());
            }
        };
        self.finish(surface, request, outcome).await
    }

    /// What every run does with its outcome, wherever it ran: metrics, then its images
    /// into the store.
    pub async fn finish(
        &self,
        surface: Surface,
        request: &ExecRequest,
        mut outcome: ExecOutcome,
    ) -> Result<Executed, RuntimeError> {
        record_execution(surface, request.language, &outcome);
        let images = self.store_images(&mut outcome).await?;
        Ok(Executed { outcome, images })
    }

    /// Moves the outcome's images into the store under unguessable names.
    pub async fn store_images(
        &self,
        outcome: &mut ExecOutcome,
    ) -> Result<Vec<StoredImageRef>, RuntimeError> {
        let mut stored = Vec::with_capacity(outcome.images.len());
        for image in std::mem::take(&mut outcome.images) {
            let extension = image
                .name
                .rsplit_once('.')
                .map(|(_, ext)| ext.to_ascii_lowercase())
                .unwrap_or_default();
            let stored_name = format!("{}.{extension}", uuid::Uuid::new_v4().simple());
            self.store
                .put_image(&stored_name, &image.mime, &image.data)
                .await?;
            stored.push(StoredImageRef {
                url: format!("{}/image/{stored_name}", self.public_url),
                bytes: image.data.len() as u64,
                name: image.name,
                mime: image.mime,
            });
        }
        Ok(stored)
    }
}
