//! The path every run takes once a surface has parsed its request: admission, a sandbox
//! run, the metrics, and storing the images the code drew so that they are served by URL.

use std::sync::Arc;

use runbox_core::{Config, ExecOutcome, ExecRequest, OutputItem};
use runbox_sandbox::{RunOptions, Sandboxes};
use runbox_store::Store;
use tokio::sync::mpsc;

use crate::admission::Admission;
use crate::error::RuntimeError;
use crate::metrics::{record_execution, record_failure, Surface};
use crate::outputs::{self, OutputValue, OutputView};
use crate::relay::{relayed, RunEvent};
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
        self.run_streamed(surface, request, options, None).await
    }

    /// [`Runner::run_admitted`], sending the run's output and display items to
    /// `events` as they are made.
    pub async fn run_streamed(
        &self,
        surface: Surface,
        request: &ExecRequest,
        options: RunOptions,
        events: Option<mpsc::Sender<RunEvent>>,
    ) -> Result<Executed, RuntimeError> {
        let (ran, shown) = relayed(self, events, |events| {
            self.sandboxes
                .run(request, RunOptions { events, ..options })
        })
        .await;
        let outcome = match ran {
            Ok(outcome) => outcome,
            Err(err) => {
                record_failure(surface, "sandbox");
                return Err(err.into());
            }
        };
        self.finish(surface, request, outcome, shown).await
    }

    /// What every run does with its outcome, wherever it ran: metrics, then its images
    /// and its outputs' images into the store. `shown`: the outputs a stream has
    /// already stored and sent, the first of the outcome's.
    pub async fn finish(
        &self,
        surface: Surface,
        request: &ExecRequest,
        mut outcome: ExecOutcome,
        shown: Vec<OutputView>,
    ) -> Result<Executed, RuntimeError> {
        record_execution(surface, request.language, &outcome);
        let mut images = Vec::with_capacity(outcome.images.len());
        for image in std::mem::take(&mut outcome.images) {
            images.push(
                self.store_image(image.name, &image.mime, &image.data)
                    .await?,
            );
        }
        let items = std::mem::take(&mut outcome.outputs);
        let mut outputs = shown;
        for (index, item) in items.into_iter().enumerate().skip(outputs.len()) {
            outputs.push(self.store_output(index, item).await?);
        }
        Ok(Executed {
            outcome,
            images,
            outputs,
        })
    }

    /// The view of the run's `index`th output, its raster images stored.
    pub async fn store_output(
        &self,
        index: usize,
        item: OutputItem,
    ) -> Result<OutputView, RuntimeError> {
        let (mut view, rasters) = outputs::split(index, item);
        for raster in rasters {
            let stored = self
                .store_image(raster.name, raster.mime, &raster.data)
                .await?;
            view.data
                .insert(raster.mime.to_string(), OutputValue::Image(stored));
        }
        Ok(view)
    }

    /// Stores one image under an unguessable name; `name` is what the run called it.
    async fn store_image(
        &self,
        name: String,
        mime: &str,
        data: &[u8],
    ) -> Result<StoredImageRef, RuntimeError> {
        let extension = name
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .unwrap_or_default();
        let stored_name = format!("{}.{extension}", uuid::Uuid::new_v4().simple());
        self.store.put_image(&stored_name, mime, data).await?;
        Ok(StoredImageRef {
            url: format!("{}/image/{stored_name}", self.public_url),
            bytes: data.len() as u64,
            name,
            mime: mime.to_string(),
        })
    }
}
