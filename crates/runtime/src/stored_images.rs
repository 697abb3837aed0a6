//! The images runs drew (image files the code wrote, moved into the database by the run
//! pipeline), served by the name in their URL. Not to be confused with Docker images.

use runbox_store::StoredImage;

use crate::error::RuntimeError;
use crate::runtime::Runtime;

impl Runtime {
    /// The stored image `name`, if there is one.
    pub async fn stored_image(&self, name: &str) -> Result<Option<StoredImage>, RuntimeError> {
        Ok(self.runner.store.get_image(name).await?)
    }
}
