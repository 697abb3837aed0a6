//! `GET /openapi.json` and `GET /docs`: the description of the API and Swagger UI on it.
//! Swagger UI is vendored (`assets/swagger-ui/`, see its README) and compiled into the
//! binary: nothing is fetched from elsewhere, at build time or by the browser.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::openapi::NotFound;

const PAGE: &str = include_str!("../../assets/docs/index.html");
const PAGE_JS: &[u8] = include_bytes!("../../assets/docs/docs.js");
const PAGE_CSS: &[u8] = include_bytes!("../../assets/docs/docs.css");
const SWAGGER_JS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_CSS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");

/// Everything the page loads comes from runbox itself; Swagger UI's icons are data: URIs
/// in its stylesheet.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";
/// Asset URLs carry a hash of their content, so they can be cached for good.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The serialized description, made once when the router is built.
#[derive(Clone)]
pub struct ApiSpec(pub Bytes);

/// The OpenAPI description
///
/// This document (OpenAPI 3.1).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The description.", content_type = "application/json", body = Object)),
)]
pub async fn openapi_json(Extension(spec): Extension<ApiSpec>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        spec.0,
    )
        .into_response()
}

/// Interactive documentation
///
/// Swagger UI on `/openapi.json`: browse the operations, enter a token with **Authorize**
/// and try requests.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "operations",
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
pub async fn docs_page() -> Response {
    static RENDERED: OnceLock<String> = OnceLock::new();
    let page = RENDERED.get_or_init(|| {
        PAGE.replace("{{css}}", &short_hash(SWAGGER_CSS))
            .replace("{{js}}", &short_hash(SWAGGER_JS))
            .replace("{{page_css}}", &short_hash(PAGE_CSS))
            .replace("{{page_js}}", &short_hash(PAGE_JS))
    });
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(DOCS_CSP),
            ),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
        ],
        page.as_str(),
    )
        .into_response()
}

/// A file of the documentation page
///
/// Swagger UI's script and stylesheet and the page's own; cached for a year (the page
/// names them with a hash of their content).
#[utoipa::path(
    get,
    path = "/docs/{asset}",
    tag = "operations",
    params(("asset" = String, Path, description = "`swagger-ui-bundle.js`, `swagger-ui.css`, `docs.js` or `docs.css`")),
    responses(
        (status = 200, description = "The file.",
         content((String = "text/javascript"), (String = "text/css"))),
        (status = 404, response = NotFound),
    ),
)]
pub async fn docs_asset(Path(asset): Path<String>) -> ApiResult<Response> {
    let (content_type, body) = match asset.as_str() {
        "swagger-ui-bundle.js" => ("text/javascript; charset=utf-8", SWAGGER_JS),
        "swagger-ui.css" => ("text/css; charset=utf-8", SWAGGER_CSS),
        "docs.js" => ("text/javascript; charset=utf-8", PAGE_JS),
        "docs.css" => ("text/css; charset=utf-8", PAGE_CSS),
        _ => return Err(ApiError::NotFound("Not found".into())),
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response())
}

fn short_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}
