//! The path every run takes once a surface has parsed its request: admission, a sandbox
//! run, the metrics, and storing the images the code drew so that they are served by URL.

use std::sync::Arc;

use std::future::Future;

use runbox_core::{Config, ExecEvent, ExecOutcome, ExecRequest, OutputItem};
use runbox_sandbox::{RunOptions, Sandboxes};
use runbox_store::Store;
use tokio::sync::mpsc;

use crate::admission::Admission;
use crate::error::RuntimeError;
use crate::metrics::{record_execution, record_failure, Surface};
use crate::outputs::{self, OutputValue, OutputView};
use crate::run_event::RunEvent;

/// Events buffered between a streaming run's sandbox and its relay.
const RELAY_DEPTH: usize = 64;
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
        let (ran, shown) = self
            .relayed(events, |events| {
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

    /// Runs `run` with a sender for its sandbox's events when `to` is there, relaying them
    /// to `to`; returns what `run` returned and the outputs already shown.
    pub(crate) async fn relayed<F, Fut>(
        &self,
        to: Option<mpsc::Sender<RunEvent>>,
        run: F,
    ) -> (Fut::Output, Vec<OutputView>)
    where
        F: FnOnce(Option<mpsc::Sender<ExecEvent>>) -> Fut,
        Fut: Future,
    {
        let Some(to) = to else {
            return (run(None).await, Vec::new());
        };
        let (events, received) = mpsc::channel(RELAY_DEPTH);
        // `run` owns the sender: when it ends, the relay drains what is left and ends too.
        tokio::join!(run(Some(events)), self.relay(received, to))
    }

    async fn relay(
        &self,
        mut received: mpsc::Receiver<ExecEvent>,
        to: mpsc::Sender<RunEvent>,
    ) -> Vec<OutputView> {
        let mut shown: Vec<OutputView> = Vec::new();
        // After a failure to store, items are left to the result (which stores them again
        // or fails): a stream never shows an item out of its place.
        let mut storing = true;
        while let Some(event) = received.recv().await {
            let event = match event {
                ExecEvent::Stdout(data) => RunEvent::Stdout(data),
                ExecEvent::Stderr(data) => RunEvent::Stderr(data),
                ExecEvent::Display(_) if !storing => continue,
                ExecEvent::Display(item) => match self.store_output(shown.len(), item).await {
                    Ok(view) => {
                        shown.push(view.clone());
                        RunEvent::Display(view)
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot store a display item while streaming");
                        storing = false;
                        continue;
                    }
                },
            };
            // A client that went away: the run goes on (or is being cancelled) regardless.
            let _ = to.send(event).await;
        }
        shown
    }
}
