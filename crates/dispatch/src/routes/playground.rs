//! `GET /`: the playground, one self-contained page (no build step, nothing from a CDN)
//! that runs code through /execute with a token the user types in.

use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse};

const PAGE: &str = include_str!("../../assets/playground.html");

/// The playground
///
/// A page to write code, run it with a token and see its output, notebook outputs
/// (figures, tables, rich displays), value and images.
#[utoipa::path(
    get,
    path = "/",
    tag = "operations",
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
pub async fn playground() -> impl IntoResponse {
    (
        [
            // Scripts and styles are inline and nothing is loaded from elsewhere; images
            // come from runbox itself, SVG outputs as data: URLs. HTML outputs are shown in
            // sandboxed srcdoc frames, which are not fetched, so frame-src stays 'none'
            // (from default-src): that also keeps the frames from navigating anywhere.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'",
                ),
            ),
            (
                header::HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
        ],
        Html(PAGE),
    )
}
