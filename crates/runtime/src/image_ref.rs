//! Where an image a run made is served from: the reference every view carries.

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
