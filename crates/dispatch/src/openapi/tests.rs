use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use runbox_core::config::AuthConfig;
use runbox_runtime::auth::Revocations;
use runbox_runtime::RuntimeError;
use serde_json::Value;
use utoipa::openapi::path::PathItem;

use super::*;
use crate::auth::Authenticator;
use crate::routes::described_routes;

/// Every route the router serves, with its methods. A route added to the router without
/// being added here (or the other way round) fails `every_route_is_described`.
const ROUTES: &[(&str, &[&str])] = &[
    ("/", &["GET"]),
    ("/docs", &["GET"]),
    ("/docs/{asset}", &["GET"]),
    ("/execute", &["POST"]),
    ("/functions", &["GET", "POST"]),
    ("/functions/{name}", &["GET", "PUT", "DELETE"]),
    ("/functions/{name}/call", &["POST"]),
    ("/functions/{name}/terminate", &["POST"]),
    ("/functions/{name}/versions/{version}", &["GET"]),
    ("/health", &["GET"]),
    ("/mcp", &["GET", "POST", "DELETE"]),
    ("/image/{name}", &["GET"]),
    ("/metrics", &["GET"]),
    ("/openapi.json", &["GET"]),
    ("/runcode", &["GET", "POST"]),
    ("/sessions", &["GET", "POST"]),
    ("/sessions/{id}", &["GET", "DELETE"]),
    ("/sessions/{id}/execute", &["POST"]),
    ("/submit", &["POST"]),
    ("/tasks", &["GET"]),
    ("/tasks/{id}", &["GET", "DELETE"]),
    ("/tasks/{id}/result", &["GET"]),
];

/// Served without a token (with `images.require_auth: false`).
const PUBLIC: &[&str] = &[
    "/",
    "/docs",
    "/docs/{asset}",
    "/health",
    "/image/{name}",
    "/openapi.json",
];

/// Nothing is revoked: the description does not depend on who is.
struct NoRevocations;

impl Revocations for NoRevocations {
    fn is_revoked<'a>(&'a self, _jti: &'a str) -> BoxFuture<'a, Result<bool, RuntimeError>> {
        Box::pin(async { Ok(false) })
    }
}

async fn description(images_need_auth: bool) -> OpenApi {
    let auth = Arc::new(Authenticator::new(
        &AuthConfig::default(),
        b"secret",
        Arc::new(NoRevocations),
    ));
    let limiter =
        crate::rate_limit::RateLimiter::from_config(&runbox_core::config::RateLimitConfig {
            per_minute: 60,
            burst: 0,
        });
    let (_, api) = described_routes(None, &auth, limiter, images_need_auth).split_for_parts();
    api
}

fn methods(item: &PathItem) -> Vec<&'static str> {
    [
        ("GET", item.get.is_some()),
        ("PUT", item.put.is_some()),
        ("POST", item.post.is_some()),
        ("DELETE", item.delete.is_some()),
        ("OPTIONS", item.options.is_some()),
        ("HEAD", item.head.is_some()),
        ("PATCH", item.patch.is_some()),
        ("TRACE", item.trace.is_some()),
    ]
    .into_iter()
    .filter_map(|(method, present)| present.then_some(method))
    .collect()
}

fn sorted(methods: &[&'static str]) -> Vec<&'static str> {
    let mut methods = methods.to_vec();
    methods.sort_unstable();
    methods
}

#[tokio::test]
async fn every_route_is_described() {
    let api = description(false).await;
    let described: BTreeMap<String, Vec<&str>> = api
        .paths
        .paths
        .iter()
        .map(|(path, item)| (path.clone(), sorted(&methods(item))))
        .collect();
    let expected: BTreeMap<String, Vec<&str>> = ROUTES
        .iter()
        .map(|(path, methods)| (path.to_string(), sorted(methods)))
        .collect();
    assert_eq!(described, expected);
}

#[tokio::test]
async fn the_description_says_which_operations_need_a_token() {
    for images_need_auth in [false, true] {
        let mut api = description(images_need_auth).await;
        for (path, item) in api.paths.paths.iter_mut() {
            let public =
                PUBLIC.contains(&path.as_str()) && !(images_need_auth && path == "/image/{name}");
            for operation in operations_mut(item) {
                let security = serde_json::to_value(&operation.security).expect("json");
                let has_401 = operation.responses.responses.contains_key("401");
                if public {
                    assert!(
                        security.is_null() && !has_401,
                        "{path} is public: {security}"
                    );
                } else {
                    assert!(
                        security[0].get(BEARER).is_some() && has_401,
                        "{path} needs a token: {security}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn the_rate_limit_is_described_where_it_applies() {
    let api = serde_json::to_value(description(false).await).expect("json");
    for (path, item) in api["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            let limited = &operation["responses"]["429"];
            let guarded = operation["security"].is_array();
            assert_eq!(limited.is_object(), guarded, "{method} {path}: {limited}");
        }
    }
    let own = &api["paths"]["/functions/{name}/call"]["post"]["responses"]["429"];
    let either = own["content"]["application/json"]["schema"]["oneOf"].to_string();
    assert!(
        either.contains("OverConcurrencyBody") && either.contains("RateLimitBody"),
        "{own}"
    );
    let plain = &api["paths"]["/tasks"]["get"]["responses"]["429"]["$ref"];
    assert_eq!(plain, "#/components/responses/RateLimited");
}

#[tokio::test]
async fn operations_are_tagged_summarised_and_unique() {
    let mut api = description(false).await;
    let tags: Vec<String> = api
        .tags
        .iter()
        .flatten()
        .map(|tag| tag.name.clone())
        .collect();
    let mut ids = Vec::new();
    for (path, item) in api.paths.paths.iter_mut() {
        for operation in operations_mut(item) {
            let tag = operation.tags.iter().flatten().next().cloned();
            assert!(
                tag.as_ref().is_some_and(|t| tags.contains(t)),
                "{path}: tag {tag:?} is not one of {tags:?}"
            );
            assert!(operation.summary.is_some(), "{path} has no summary");
            ids.push(operation.operation_id.clone().expect("operation id"));
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids repeat");
}

/// Every `$ref` in the document names something the document defines.
#[tokio::test]
async fn every_reference_resolves() {
    let api = serde_json::to_value(description(false).await).expect("json");
    let mut refs = Vec::new();
    collect_refs(&api, &mut refs);
    assert!(
        refs.len() > 50,
        "suspiciously few references: {}",
        refs.len()
    );
    for reference in refs {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{reference} is not local"));
        assert!(
            api.pointer(pointer).is_some(),
            "{reference} does not resolve"
        );
    }
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => refs.push(reference.clone()),
                    _ => collect_refs(value, refs),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, refs)),
        _ => {}
    }
}

#[tokio::test]
async fn the_stream_of_execute_is_described() {
    let api = serde_json::to_value(description(false).await).expect("json");
    let ok = &api["paths"]["/execute"]["post"]["responses"]["200"];
    assert!(ok["content"]["application/json"].is_object(), "{ok}");
    assert!(ok["content"]["text/event-stream"].is_object(), "{ok}");
    let text = ok.to_string() + &api["paths"]["/execute"]["post"]["description"].to_string();
    for event in ["stdout", "stderr", "display", "image", "result", "error"] {
        assert!(
            text.contains(&format!("`{event}`")),
            "event {event} is not described"
        );
    }
}

/// The scope check reads each route's scope from the description: every protected
/// operation names exactly the scope API.md gives it, and the check sees the same.
#[tokio::test]
async fn the_scope_check_reads_each_route_s_scope_from_its_description() {
    use axum::http::Method;
    let api = description(false).await;
    let scopes = crate::routes::scopes::RouteScopes::from_description(&api);
    let expected: &[(Method, &str, Option<&str>)] = &[
        (Method::GET, "/runcode", Some("run")),
        (Method::POST, "/runcode", Some("run")),
        (Method::POST, "/execute", Some("run")),
        (Method::GET, "/sessions", Some("run")),
        (Method::POST, "/sessions", Some("run")),
        (Method::GET, "/sessions/{id}", Some("run")),
        (Method::DELETE, "/sessions/{id}", Some("run")),
        (Method::POST, "/sessions/{id}/execute", Some("run")),
        (Method::GET, "/functions", Some("functions:read")),
        (Method::POST, "/functions", Some("functions:write")),
        (Method::POST, "/submit", Some("functions:write")),
        (Method::GET, "/functions/{name}", Some("functions:read")),
        (Method::PUT, "/functions/{name}", Some("functions:write")),
        (Method::DELETE, "/functions/{name}", Some("functions:write")),
        (
            Method::GET,
            "/functions/{name}/versions/{version}",
            Some("functions:read"),
        ),
        (Method::POST, "/functions/{name}/call", Some("run")),
        (
            Method::POST,
            "/functions/{name}/terminate",
            Some("functions:write"),
        ),
        (Method::GET, "/tasks", Some("tasks")),
        (Method::GET, "/tasks/{id}", Some("tasks")),
        (Method::DELETE, "/tasks/{id}", Some("tasks")),
        (Method::GET, "/tasks/{id}/result", Some("tasks")),
        (Method::GET, "/metrics", None),
        (Method::POST, "/mcp", None),
        (Method::GET, "/health", None),
        (Method::GET, "/image/{name}", None),
    ];
    for (method, path, scope) in expected {
        let found = scopes.of(method, path);
        assert_eq!(found, scope.map(|s| vec![s]).as_deref(), "{method} {path}");
    }
}
