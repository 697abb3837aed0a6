//! The router: which path goes to which handler, and which need a bearer token.
//!
//! Routes are registered with `utoipa_axum::routes!`, which takes the path and methods
//! from each handler's `#[utoipa::path]` annotation and adds the operation to the OpenAPI
//! description in the same step. The router and `/openapi.json` therefore cannot drift:
//! a handler without an annotation does not compile into a route, and a route's path is
//! written once. Plain `axum` routing would need a second, hand-kept list.

mod body_guard;
mod docs;
mod execute;
mod forward;
mod functions;
mod health;
mod image;
mod json;
mod mcp;
mod playground;
mod runcode;
pub(crate) mod scopes;
mod sessions;
mod stream;
mod tasks;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use axum::Router;
use axum::{middleware, Extension};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::auth::{require_bearer, Authenticator};
use crate::error::ApiError;
use crate::openapi;
use crate::rate_limit::{limit_rate, RateLimiter};
use crate::state::AppState;

pub(crate) use stream::StreamOutputEvent;

pub fn router(state: AppState) -> Router {
    let body_limit =
        usize::try_from(state.config.server.max_body_bytes.bytes()).unwrap_or(usize::MAX);
    let body_rules = body_guard::BodyRules {
        limit: body_limit as u64,
        idle: state.config.server.client_timeout.get(),
    };
    let (router, description) = described_routes(
        Some(&state),
        state.runtime.auth(),
        RateLimiter::from_config(&state.config.rate_limit),
        state.config.images.require_auth,
    )
    .split_for_parts();
    // Serialising a document of plain values cannot fail; an empty body would be caught
    // by the black-box tests at once.
    let spec = serde_json::to_vec(&description).unwrap_or_default();
    router
        .fallback(not_found)
        .layer(Extension(docs::ApiSpec(spec.into())))
        .layer(middleware::from_fn(crate::metrics::track_http))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(request_tracing())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            body_rules,
            body_guard::guard_body,
        ))
}

/// Every route with its description. `serving`: the state requests are forwarded to
/// peers with (None: the description only); `rate_limiter`: from `rate_limit` (None when
/// it is off); `images_need_auth`: `images.require_auth`.
pub(crate) fn described_routes(
    serving: Option<&AppState>,
    auth: &Arc<Authenticator>,
    rate_limiter: Option<Arc<RateLimiter>>,
    images_need_auth: bool,
) -> OpenApiRouter<AppState> {
    let protected = OpenApiRouter::default()
        .routes(
            routes!(runcode::get_runcode, runcode::post_runcode)
                .map(|methods| methods.fallback(runcode::method_not_allowed)),
        )
        .routes(routes!(execute::post_execute))
        .routes(routes!(sessions::create_session, sessions::list_sessions))
        .routes(routes!(sessions::get_session, sessions::delete_session))
        .routes(routes!(sessions::execute_in_session))
        .routes(routes!(crate::metrics::scrape))
        .routes(routes!(functions::list, functions::create))
        .routes(routes!(functions::submit))
        .routes(routes!(functions::get, functions::put, functions::delete))
        .routes(routes!(functions::get_version))
        .routes(routes!(functions::call))
        .routes(routes!(functions::terminate))
        .routes(routes!(tasks::list))
        .routes(routes!(tasks::get, tasks::cancel))
        .routes(routes!(tasks::result))
        .routes(routes!(mcp::message, mcp::stream, mcp::end));
    // Route layers run last-added first: authentication, then the rate limit (it counts
    // a subject's requests), then the scope the route's description names, then
    // forwarding to the replica that serves the request.
    let protected = match serving {
        Some(state) => protected.route_layer(middleware::from_fn_with_state(
            state.clone(),
            forward::forward,
        )),
        None => protected,
    };
    let scopes = Arc::new(scopes::RouteScopes::from_description(
        protected.get_openapi(),
    ));
    let protected = protected.route_layer(middleware::from_fn_with_state(
        scopes,
        scopes::require_scope,
    ));
    let mut protected = match rate_limiter {
        Some(limiter) => protected.route_layer(middleware::from_fn_with_state(limiter, limit_rate)),
        None => protected,
    };
    openapi::rate_limited(protected.get_openapi_mut());

    let images = OpenApiRouter::default().routes(routes!(image::get_image));
    let images = if images_need_auth {
        guarded(images, auth)
    } else {
        images
    };

    let public = OpenApiRouter::default()
        .routes(routes!(health::health))
        .routes(routes!(playground::playground))
        .routes(routes!(docs::openapi_json))
        .routes(routes!(docs::docs_page))
        .routes(routes!(docs::docs_asset));

    OpenApiRouter::with_openapi(openapi::base())
        .merge(guarded(protected, auth))
        .merge(images)
        .merge(public)
}

/// Puts `routes` behind the bearer middleware, and says so in their description.
fn guarded(
    mut routes: OpenApiRouter<AppState>,
    auth: &Arc<Authenticator>,
) -> OpenApiRouter<AppState> {
    openapi::require_bearer(routes.get_openapi_mut());
    routes.route_layer(middleware::from_fn_with_state(auth.clone(), require_bearer))
}

type RequestTracing = TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    fn(&axum::http::Request<axum::body::Body>) -> tracing::Span,
    (),
    DefaultOnResponse,
    (),
    (),
    (),
>;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// One span per request, carrying its id into everything done for it (sandbox runs
/// included), and one line when it is answered. Only the path is logged: a query string
/// can hold code (GET /runcode) and headers hold tokens.
fn request_tracing() -> RequestTracing {
    fn span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
        let id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info_span!(
            "request",
            id = %id,
            method = %request.method(),
            path = %request.uri().path(),
        )
    }
    TraceLayer::new_for_http()
        .make_span_with(span as fn(&axum::http::Request<axum::body::Body>) -> tracing::Span)
        .on_request(())
        .on_response(
            DefaultOnResponse::new()
                .level(tracing::Level::INFO)
                .latency_unit(LatencyUnit::Millis),
        )
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

async fn not_found() -> ApiError {
    ApiError::NotFound("Not found".into())
}
