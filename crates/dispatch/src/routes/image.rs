//! `GET /image/{name}`: stored images, served with their type, an ETag, and as
//! immutable (a name is never reused).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::openapi::{NotFound, Unavailable};
use crate::state::AppState;

const NOT_FOUND: &str = "Image not found";

/// Fetch a stored image
///
/// An image a run wrote, by the name in its URL. Public unless `images.require_auth` is
/// set (names are unguessable); images expire after `images.retention`.
#[utoipa::path(
    get,
    path = "/image/{name}",
    tag = "compat",
    params(
        ("name" = String, Path, description = "The stored name (`<hex>.<ext>`)"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer: 304 when it still matches"),
    ),
    responses(
        (status = 200, description = "The image, immutable.",
         headers(
            ("ETag" = String),
            ("Cache-Control" = String, description = "`public, max-age=31536000, immutable`"),
         ),
         content(
            (Vec<u8> = "image/png"),
            (Vec<u8> = "image/jpeg"),
            (Vec<u8> = "image/gif"),
            (String = "image/svg+xml"),
            (Vec<u8> = "image/webp"),
         )),
        (status = 304, description = "`If-None-Match` matched the ETag."),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn get_image(
    State(state): State<AppState>,
    principal: Option<axum::Extension<Principal>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if state.config.images.require_auth && principal.is_none() {
        return Err(ApiError::MissingAuth);
    }
    // Stored names are `<hex>.<ext>`; anything else cannot exist, and is never looked up.
    let plausible = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
        && !name.contains("..");
    if !plausible {
        return Err(ApiError::NotFound(NOT_FOUND.into()));
    }
    let image = state
        .runtime
        .stored_image(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(NOT_FOUND.into()))?;
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&image.data))[..32]);
    let cache = HeaderValue::from_static("public, max-age=31536000, immutable");
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| ApiError::Internal(e.to_string()))?;
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    if matches {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    let content_type = HeaderValue::from_str(&image.mime)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::ETAG, etag_value),
            (header::CACHE_CONTROL, cache),
            (
                header::HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
            // An SVG drawn by untrusted code must not run script in runbox's origin.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
            ),
        ],
        image.data,
    )
        .into_response())
}
