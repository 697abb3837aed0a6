//! The OpenAPI description and the documentation page, from outside: both are public,
//! the page loads only runbox's own files, every operation the description lists is
//! served (and guarded exactly when the description says so), and Swagger UI works in a
//! real browser with a token entered through "Authorize".

use serde_json::{json, Value};

use crate::harness::{run_browser_check, Options, Server, TOKEN};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

async fn description(server: &Server) -> Value {
    let response = server
        .client
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "the description is public");
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("application/json"));
    response.json().await.expect("json")
}

/// A concrete path for a templated one (`/tasks/{id}` → `/tasks/x`).
fn concrete(path: &str) -> String {
    path.replace("{asset}", "docs.js")
        .replace("{version}", "1")
        .split('/')
        .map(|part| if part.starts_with('{') { "x" } else { part })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_description_and_the_docs_are_public_and_self_contained() {
    let server = Server::start().await;
    let spec = description(&server).await;
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for path in [
        "/runcode",
        "/execute",
        "/sessions/{id}/execute",
        "/tasks/{id}/result",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} is not described");
    }

    let response = server
        .client
        .get(server.url("/docs"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "the docs page is public");
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"));
    assert!(
        !csp.contains("http"),
        "the policy allows another origin: {csp}"
    );
    let page = response.text().await.expect("html");
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("//"));
    assert!(
        !page.contains("<script>"),
        "inline scripts would need an unsafe policy"
    );

    let assets: Vec<&str> = page
        .split(['"', '\''])
        .filter(|part| part.starts_with("docs/"))
        .collect();
    assert_eq!(assets.len(), 4, "{assets:?}");
    for asset in assets {
        let response = server
            .client
            .get(server.url(&format!("/{asset}")))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{asset}");
        let cache = response.headers()["cache-control"].to_str().expect("cache");
        assert!(cache.contains("immutable") && cache.contains("max-age=31536000"));
        let kind = response.headers()["content-type"].to_str().expect("type");
        assert!(
            kind.starts_with("text/javascript") || kind.starts_with("text/css"),
            "{asset}: {kind}"
        );
    }
    let (status, _) = server.get("/docs/swagger-ui.js", None).await;
    assert_eq!(status, 404);
    server.stop().await;
}

/// Every operation of the description is routed, and asks for a token exactly when the
/// description says so.
#[tokio::test(flavor = "multi_thread")]
async fn every_described_operation_is_served_and_guarded_as_described() {
    for images_need_auth in [false, true] {
        let server = Server::start_with(Options {
            extra_yaml: format!("images:\n  require_auth: {images_need_auth}\n"),
            ..Options::default()
        })
        .await;
        let spec = description(&server).await;
        let paths = spec["paths"].as_object().expect("paths");
        assert!(paths.len() >= 21, "{} paths", paths.len());
        for (path, item) in paths {
            for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
                let operation = &item[*method];
                let guarded = operation["security"][0].get("bearer").is_some();
                let url = server.url(&concrete(path));
                let response = server
                    .client
                    .request(method.to_uppercase().parse().expect("method"), &url)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await
                    .expect("request");
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let label = format!("{method} {path} ({status} {body})");
                if guarded {
                    assert_eq!(status, 401, "{label}");
                    assert_eq!(
                        body,
                        json!({"error": "Authorization header is missing or invalid"}),
                        "{label}"
                    );
                    assert!(operation["responses"]["401"].is_object(), "{label}");
                } else {
                    assert!(status != 401 && status != 405, "{label}");
                    // Answered by the operation, not by the fallback for unknown paths.
                    assert_ne!(body, json!({"error": "Not found"}), "{label}");
                }
                if path == "/image/{name}" {
                    assert_eq!(guarded, images_need_auth, "{label}");
                }
            }
        }
        server.stop().await;
    }
}

/// Found by schemathesis: a `wait` of 1.8e19 seconds overflowed the conversion to a
/// duration, and the handler's panic dropped the connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_wait_for_a_task_result_is_capped() {
    let server = Server::start().await;
    let (status, body) = server
        .get("/tasks/x/result?wait=1.8446744073709552e%2B19", Some(TOKEN))
        .await;
    assert_eq!(status, 404, "{body}");
    server.stop().await;
}

/// Found by schemathesis on PostgreSQL, whose text cannot hold NUL: a NUL in a task
/// filter or in a name was a database error (503); it names nothing on either backend.
#[tokio::test(flavor = "multi_thread")]
async fn nul_characters_in_names_find_nothing() {
    let server = Server::start().await;
    let (status, body) = server.get("/tasks?function=a%00b", Some(TOKEN)).await;
    assert_eq!((status, body), (200, json!({"tasks": []})));
    for path in ["/tasks/a%00b", "/tasks/a%00b/result", "/functions/a%00b"] {
        let (status, body) = server.get(path, Some(TOKEN)).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, body) = server.delete("/functions/a%00b", Some(TOKEN)).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = server.delete("/tasks/a%00b", Some(TOKEN)).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = server
        .post("/functions/a%00b/call", Some(TOKEN), &json!({}))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = server
        .post("/functions/a%00b/terminate", Some(TOKEN), &json!({}))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = server
        .post(
            "/functions",
            Some(TOKEN),
            &json!({"name": "f", "code": "def f(): pass", "description": "a\0b"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "description");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_docs_page_works_in_a_real_browser() {
    let server = Server::start().await;
    run_browser_check(
        &server,
        "docs-check.py",
        "docs.png",
        "Swagger UI did not work",
    )
    .await;
    server.stop().await;
}
