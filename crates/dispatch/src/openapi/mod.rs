//! The OpenAPI description of the HTTP surface, served at `GET /openapi.json`.
//!
//! Operations come from the `#[utoipa::path]` annotations beside each handler and are
//! collected by the router itself (`utoipa_axum::routes!` in `routes/mod.rs`), so a route
//! cannot be served without being described. Which operations need a token is not
//! written per handler either: [`require_bearer`] marks every operation of the router
//! group that the auth middleware guards. This module adds what no single handler
//! knows: the API's introduction, its tags, the security scheme and the shared error
//! responses.

mod described;
mod responses;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::ContentBuilder;
use utoipa::openapi::{OpenApi, Ref, RefOr};
use utoipa::{Modify, OpenApi as _};

pub use described::*;
pub use responses::*;

use crate::error::{
    ErrorBody, FunctionRejection, OverConcurrencyBody, RateLimitBody, ScopeErrorBody,
    StreamErrorEvent, TooManySessionsBody,
};
use crate::routes::StreamOutputEvent;
use runbox_runtime::functions::TaskStatus;

/// The name of the security scheme in the document.
pub const BEARER: &str = "bearer";

const INTRODUCTION: &str = "\
runbox runs untrusted Python and bash in fresh, resource-limited Docker sandboxes.

Two surfaces share one engine:

* **Compatibility** (`/runcode`, `/image/{name}`): byte-for-byte the contract of the \
original Flask *Code Interpreter API*, so its clients work unchanged.
* **Native** (`/execute`, `/sessions`, `/functions`, `/tasks`): typed errors, return \
values, streaming, stateful sessions, stored functions with per-function concurrency \
limits and asynchronous tasks.

## Authentication

`Authorization: Bearer <token>` on every operation that lists the `bearer` security \
requirement; `/health`, `/openapi.json`, `/docs` and the playground `/` are public, and so \
is `GET /image/{name}` unless `images.require_auth` is set. A token is a static token \
from the configuration or a JWT (HS256) with the claims `sub`, `exp`, `jti` and `scope` \
(space-separated scopes). The scopes are `run`, `functions:read`, `functions:write`, \
`tasks` and `admin` (which implies every other); the scope an operation needs is listed \
in its security requirement. Use **Authorize** to try requests from this page.

## Errors

Failures of the user's code are HTTP 200 with `success: false` and an `error` of a known \
`kind`. Malformed requests are 4xx and failures of runbox itself 5xx, with a JSON body \
`{\"error\": \"…\"}` (400 bodies add `detail` or the `field` at fault). With `rate_limit` \
set, an operation that needs a token answers 429 with `Retry-After` when its subject goes \
over the limit. Every response carries an `x-request-id` header (echoed when the request \
sent one).";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "runbox",
        description = INTRODUCTION,
        license(name = "MIT", identifier = "MIT"),
    ),
    tags(
        (name = "compat", description = "The original Code Interpreter API, unchanged."),
        (name = "execute", description = "Ad-hoc code in a fresh sandbox, with a result object or a stream of events."),
        (name = "sessions", description = "Stateful interpreters: one container for the session's life."),
        (name = "functions", description = "A registry of named Python functions, called as endpoints."),
        (name = "tasks", description = "Asynchronous function calls."),
        (name = "mcp", description = "The Model Context Protocol: the code tools and stored functions as MCP tools."),
        (name = "operations", description = "Health, metrics, this description and the pages for people."),
    ),
    components(
        schemas(
            ErrorBody, ScopeErrorBody, FunctionRejection, OverConcurrencyBody,
            TooManySessionsBody, RateLimitBody, StreamOutputEvent, StreamErrorEvent, TaskStatus,
        ),
        responses(
            BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Gone, PayloadTooLarge,
            FunctionRejected, OverConcurrency, TooManySessions, RateLimited, Unavailable,
            Overloaded,
        ),
    ),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("static token or JWT")
                    .description(Some(
                        "A static token from the configuration, or a JWT (HS256) with the \
                         claims `sub`, `exp`, `jti` and `scope`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document every router starts from.
pub fn base() -> OpenApi {
    let mut api = ApiDoc::openapi();
    api.info.version = env!("CARGO_PKG_VERSION").to_string();
    api
}

/// Marks every operation of `api` as needing a bearer token and documents what the
/// middleware answers: 401, and 503 when a JWT's revocation cannot be looked up. An
/// operation whose annotation already names the scope it needs
/// (`security(("bearer" = ["run"]))`) keeps it.
pub fn require_bearer(api: &mut OpenApi) {
    for item in api.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            let security = operation.security.get_or_insert_with(Vec::new);
            if security.is_empty() {
                security.push(SecurityRequirement::new(BEARER, Vec::<String>::new()));
            }
            let responses = &mut operation.responses.responses;
            for (status, response) in [("401", "Unauthorized"), ("503", "Unavailable")] {
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(response)));
            }
        }
    }
}

/// Documents the rate limit's 429 on every operation of `api`. Where an operation has a
/// 429 of its own (a function's concurrency, the sessions cap), its body is either.
pub fn rate_limited(api: &mut OpenApi) {
    for item in api.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            let responses = &mut operation.responses.responses;
            let own = match responses.get("429") {
                Some(RefOr::Ref(reference)) => reference.ref_location.rsplit('/').next(),
                _ => None,
            };
            let response = match own.and_then(own_429_body) {
                Some(body) => RefOr::T(either_429(body)),
                None => RefOr::Ref(Ref::from_response_name("RateLimited")),
            };
            responses.insert("429".to_string(), response);
        }
    }
}

/// The body schema of an operation's own 429 response.
fn own_429_body(response: &str) -> Option<&'static str> {
    match response {
        "OverConcurrency" => Some("OverConcurrencyBody"),
        "TooManySessions" => Some("TooManySessionsBody"),
        _ => None,
    }
}

fn either_429(own_body: &str) -> Response {
    let schema = OneOfBuilder::new()
        .item(Ref::from_schema_name(own_body))
        .item(Ref::from_schema_name("RateLimitBody"));
    ResponseBuilder::new()
        .description(format!(
            "`{own_body}` (see its description), or the rate limit's `RateLimitBody` when \
             `rate_limit` is set."
        ))
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds (always with the rate limit)"))
                .build(),
        )
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .build()
}

/// Every operation of a path item, whatever its method.
pub fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

#[cfg(test)]
mod tests;
