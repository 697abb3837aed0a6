//! Bearer authentication on the compatibility surface: the exact 401 bodies of API.md.

use serde_json::json;

use crate::harness::{jwt, now, Server, JWT_SECRET, TOKEN};

const MISSING: &str = "Authorization header is missing or invalid";
const INVALID: &str = "Invalid token";

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_checked_with_the_exact_errors() {
    let server = Server::start().await;
    let body = json!({"languageType": "python", "variables": {}, "code": "print(1)"});
    let post = |header: Option<String>| {
        let mut request = server.client.post(server.url("/runcode")).json(&body);
        if let Some(header) = header {
            request = request.header("Authorization", header);
        }
        async move {
            let response = request.send().await.expect("post");
            let status = response.status().as_u16();
            (
                status,
                response.json::<serde_json::Value>().await.expect("json"),
            )
        }
    };

    assert_eq!(post(None).await, (401, json!({"error": MISSING})));
    assert_eq!(
        post(Some(TOKEN.into())).await,
        (401, json!({"error": MISSING}))
    );
    assert_eq!(
        post(Some("Basic 114514".into())).await,
        (401, json!({"error": MISSING}))
    );
    assert_eq!(
        post(Some("Bearer".into())).await,
        (401, json!({"error": MISSING}))
    );
    assert_eq!(
        post(Some("Bearer 1145141".into())).await,
        (401, json!({"error": INVALID}))
    );

    let expired = jwt(
        JWT_SECRET,
        &json!({"sub": "alice", "exp": now() - 120, "jti": "e1", "scope": "run"}),
    );
    assert_eq!(
        post(Some(format!("Bearer {expired}"))).await,
        (401, json!({"error": INVALID}))
    );
    let forged = jwt(
        "another-secret",
        &json!({"sub": "alice", "exp": now() + 600, "jti": "f1", "scope": "run"}),
    );
    assert_eq!(
        post(Some(format!("Bearer {forged}"))).await,
        (401, json!({"error": INVALID}))
    );

    let valid = jwt(
        JWT_SECRET,
        &json!({"sub": "alice", "exp": now() + 600, "jti": "v1", "scope": "run"}),
    );
    assert_eq!(
        post(Some(format!("Bearer {valid}"))).await,
        (200, json!({"output": "1\n"}))
    );
    let no_scope = jwt(
        JWT_SECRET,
        &json!({"sub": "alice", "exp": now() + 600, "jti": "s1", "scope": "tasks"}),
    );
    assert_eq!(
        post(Some(format!("Bearer {no_scope}"))).await,
        (
            403,
            json!({"error": "Insufficient scope", "required": "run"})
        )
    );

    // Public routes need no token.
    let (status, health) = server.get("/health", None).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_tokens_work_until_revoked() {
    let server = Server::start().await;
    let config = server.data_dir().join("config.yaml");
    let create = std::process::Command::new(crate::harness::binary())
        .args([
            "--config",
            &config.display().to_string(),
            "token",
            "create",
            "--subject",
            "bob",
            "--scope",
            "run",
            "--ttl",
            "1h",
        ])
        .output()
        .expect("token create");
    assert!(
        create.status.success(),
        "{}",
        String::from_utf8_lossy(&create.stderr)
    );
    let token = String::from_utf8_lossy(&create.stdout).trim().to_string();

    let body = json!({"languageType": "python", "variables": {}, "code": "print(2)"});
    let (status, answer) = server.post("/runcode", Some(&token), &body).await;
    assert_eq!((status, answer), (200, json!({"output": "2\n"})));

    let revoke = std::process::Command::new(crate::harness::binary())
        .args([
            "--config",
            &config.display().to_string(),
            "token",
            "revoke",
            &token,
        ])
        .output()
        .expect("token revoke");
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    let (status, answer) = server.post("/runcode", Some(&token), &body).await;
    assert_eq!((status, answer), (401, json!({"error": INVALID})));
    server.stop().await;
}
