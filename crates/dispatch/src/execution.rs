//! The path every surface shares once a request is parsed: admission, a sandbox run, and
//! storing the images the code drew so they can be served by URL.

use runbox_core::{ExecOutcome, ExecRequest};
use runbox_sandbox::RunOptions;

use crate::error::{ApiError, ApiResult};
use crate::metrics::{record_execution, record_failure, Surface};
use crate::state::AppState;

/// An image the run produced, as stored and served.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StoredImageRef {
    /// The file name the code wrote.
    pub name: String,
    /// Where it is served (`GET /image/{name}`).
    pub url: String,
    pub mime: String,
    /// Size in bytes.
    pub bytes: u64,
}

pub struct Executed {
    pub outcome: ExecOutcome,
    pub images: Vec<StoredImageRef>,
}

impl AppState {
    /// Admits, runs and stores images. A failure of the user's code is in the outcome;
    /// `Err` is overload (504) or a failure of runbox's own machinery (5xx).
    pub async fn execute(
        &self,
        surface: Surface,
        request: &ExecRequest,
        options: RunOptions,
    ) -> ApiResult<Executed> {
        let _admitted = self.admission.admit().await?;
        self.run_admitted(surface, request, options).await
    }

    /// [`AppState::execute`] for a caller that holds its admission already (a stream
    /// admits before it answers, so that overload is still a 504 and not an event).
    pub async fn run_admitted(
        &self,
        surface: Surface,
        request: &ExecRequest,
        options: RunOptions,
    ) -> ApiResult<Executed> {
        let mut outcome = match self.sandboxes.run(request, options).await {
            Ok(outcome) => outcome,
            Err(err) => {
                record_failure(surface, "sandbox");
                return Err(err.into());
            }
        };
        record_execution(surface, request.language, &outcome);
        let images = self.store_images(&mut outcome).await?;
        Ok(Executed { outcome, images })
    }

    /// Moves the outcome's images into the store under unguessable names.
    pub async fn store_images(&self, outcome: &mut ExecOutcome) -> ApiResult<Vec<StoredImageRef>> {
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
                .await
                .map_err(ApiError::from)?;
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
