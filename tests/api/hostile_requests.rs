//! Requests written to hurt: oversized, malformed, forged or too many. Each gets a 4xx
//! with a JSON error where runbox answers it (hyper itself refuses some header
//! overflows before runbox sees them; what it answers is asserted here and written down
//! in SECURITY.md), and no sandbox is started for any of them.
//!
//! Over 500 lines: one case per hostile request, read as one catalogue with
//! `hostile_code.rs`.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{jwt, now, Options, Server, JWT_SECRET, OTHER_TOKEN, TOKEN};

const INVALID_TOKEN: &str = "Invalid token";

/// A raw HTTP/1.1 exchange (for what a well-behaved client cannot send): the status
/// and the body, or `None` when the server sent nothing within `within`.
async fn raw(server: &Server, request: &[u8], within: Duration) -> Option<(u16, String)> {
    let address = server.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    // The server may answer (and close) before it has read all of a large request.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buffer = [0u8; 8192];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buffer[..n]);
                    if complete(&answer) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    if read.is_err() && answer.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Whether `answer` holds a whole response with a Content-Length body.
fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .is_some_and(|length| body.len() >= length)
}

fn json_error(body: &str) -> Value {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert!(value["error"].is_string(), "no error field: {body}");
    value
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_oversized_requests_are_refused() {
    let server = Server::start_with(Options {
        env: vec![("RUNBOX_SERVER__MAX_BODY_BYTES".into(), "64k".into())],
        ..Options::default()
    })
    .await;

    // Bodies over server.max_body_bytes: 413 JSON, declared or streamed.
    let big = "x".repeat(100 * 1024);
    for path in ["/runcode", "/execute"] {
        let (status, body) = server
            .post(path, Some(TOKEN), &json!({"code": big.clone()}))
            .await;
        assert_eq!(
            (status, body),
            (413, json!({"error": "Request body too large"})),
            "{path}"
        );
    }
    let mut variables = serde_json::Map::new();
    for i in 0..20_000 {
        variables.insert(format!("v{i}"), json!(i));
    }
    let (status, body) = server
        .runcode("python", "print(1)", Value::Object(variables))
        .await;
    assert_eq!(
        (status, body),
        (413, json!({"error": "Request body too large"}))
    );
    // A chunked body without a length is cut when it passes the limit.
    let chunk = format!("1000\r\n{}\r\n", " ".repeat(0x1000));
    let chunked = format!(
        "POST /execute HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
        chunk.repeat(20)
    );
    let (status, body) = raw(&server, chunked.as_bytes(), Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(status, 413, "{body}");
    json_error(&body);
    // A declared length far beyond the limit is refused before any of it is read,
    // not waited for.
    let started = Instant::now();
    let answer = raw(
        &server,
        format!(
            "POST /execute HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{{\"code\""
        )
        .as_bytes(),
        Duration::from_secs(5),
    )
    .await
    .expect("an answer, not a wait for 100 GB");
    assert_eq!(answer.0, 413);
    json_error(&answer.1);
    assert!(started.elapsed() < Duration::from_secs(3));

    // Malformed JSON, wrong types, NUL bytes: 400 with a JSON error, before any sandbox.
    let nested = format!("{}1{}", "[".repeat(20_000), "]".repeat(20_000));
    let bad_bodies: Vec<(&str, String)> = vec![
        (
            "/runcode",
            format!(r#"{{"code": "print(1)", "variables": {{"a": {nested}}}}}"#),
        ),
        (
            "/execute",
            format!(r#"{{"code": "1", "context": {{"a": {nested}}}}}"#),
        ),
        (
            "/runcode",
            r#"{"code": 5, "languageType": "python"}"#.into(),
        ),
        ("/runcode", r#"{"code": ["print(1)"]}"#.into()),
        (
            "/runcode",
            r#"{"code": "print(1)", "languageType": 7}"#.into(),
        ),
        (
            "/runcode",
            r#"{"code": "print(1)", "variables": "x=1"}"#.into(),
        ),
        (
            "/runcode",
            r#"{"code": "print(1)", "variables": [1]}"#.into(),
        ),
        ("/execute", r#"{"code": null}"#.into()),
        ("/execute", r#"{"code": "1", "context": 3}"#.into()),
        ("/execute", r#"{"code": "1", "timeout": {"s": 1}}"#.into()),
        ("/execute", r#"{"code": "1", "timeout": 1e400}"#.into()),
        ("/execute", r#"{"code": "1", "files": "a"}"#.into()),
        ("/runcode", "{\"code\": \"print(1)\u{0}\"}".into()),
        ("/runcode", r#"{"code": "print(1)\u0000"}"#.into()),
        ("/execute", r#"{"code": "1\u0000"}"#.into()),
        (
            "/execute",
            r#"{"code": "echo $A", "language": "bash", "context": {"A\u0000B": 1}}"#.into(),
        ),
        (
            "/execute",
            r#"{"code": "1", "env": {"A": "x\u0000y"}}"#.into(),
        ),
        ("/execute", r#"{"code": "1", "env": {"A=B": "x"}}"#.into()),
        ("/execute", "[1, 2]".into()),
        ("/execute", "\"code\"".into()),
        ("/runcode", "".into()),
        ("/runcode", "\u{feff}{}".into()),
        ("/execute", "{\"code\": \"\\ud800\"}".into()),
    ];
    for (path, body) in bad_bodies {
        let response = server
            .client
            .post(server.url(path))
            .bearer_auth(TOKEN)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("post");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let shown: String = body.chars().take(80).collect();
        assert_eq!(status, 400, "{path} {shown} → {text}");
        json_error(&text);
    }
    let (status, body) = server
        .get(
            "/runcode?languageType=python&code=print(1)&variables=%5B",
            Some(TOKEN),
        )
        .await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "Invalid variables format"}))
    );

    // Headers: a long one reaches runbox and gets its JSON answer; beyond hyper's
    // buffer (about 400 KiB of head) or 100 headers, hyper answers 431 itself, with an
    // empty body, and closes the connection.
    let long_token = "a".repeat(32 * 1024);
    let (status, body) = server.post("/runcode", Some(&long_token), &json!({})).await;
    assert_eq!((status, body), (401, json!({"error": INVALID_TOKEN})));
    let huge = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let (status, body) = raw(&server, huge.as_bytes(), Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!((status, body.as_str()), (431, ""));
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (status, _) = raw(
        &server,
        format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await
    .expect("an answer");
    assert_eq!(status, 431);
    // A control byte in a header value: hyper's 400.
    let (status, _) = raw(
        &server,
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n",
        Duration::from_secs(5),
    )
    .await
    .expect("an answer");
    assert_eq!(status, 400);
    // An Authorization header that is not UTF-8 is a missing one.
    let (status, body) = raw(
        &server,
        b"POST /runcode HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        Duration::from_secs(5),
    )
    .await
    .expect("an answer");
    assert_eq!(status, 401, "{body}");
    json_error(&body);

    // Path traversal and odd names on /image: 404 JSON, nothing outside the store.
    for path in [
        "/image/..%2F..%2Fetc%2Fpasswd",
        "/image/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/image/x%00.png",
        "/image/%2Fetc%2Fpasswd",
        "/image/..%5C..%5Cwindows",
        "/image/data.db",
        "/image/runbox.db",
        "/image/jwt-secret",
    ] {
        let response = server
            .client
            .get(server.url(path))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 404, "{path}");
        json_error(&response.text().await.expect("body"));
    }
    let long_name = format!("/image/{}.png", "a".repeat(4096));
    let (status, body) = server.get(&long_name, None).await;
    assert_eq!((status, body), (404, json!({"error": "Image not found"})));
    for raw_path in [
        "/image/../../etc/passwd",
        "/image/../runbox.db",
        "/image/.%2e",
        "/image/%2e%2e",
        "/image//etc/passwd",
        "/image/..\\..\\etc\\passwd",
    ] {
        let (status, body) = raw(
            &server,
            format!("GET {raw_path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(5),
        )
        .await
        .expect("an answer");
        assert_eq!(status, 404, "{raw_path} → {body}");
        json_error(&body);
    }

    assert!(
        server.containers().is_empty(),
        "a refused request started a sandbox"
    );
    let (status, _) = server.get("/health", None).await;
    assert_eq!(status, 200);
    server.stop().await;
}

/// A JWT with any header, claims and signature, for forgeries the library refuses to
/// build.
fn handmade_jwt(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_expired_and_revoked_tokens_are_refused() {
    let server = Server::start().await;
    let claims =
        |jti: &str| json!({"sub": "mallory", "exp": now() + 600, "jti": jti, "scope": "run admin"});
    let good = jwt(JWT_SECRET, &claims("good"));
    let signature_of_good = good.rsplit('.').next().expect("signature").to_string();

    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims("hs512"),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign");
    // HS256 over the same bytes, but the header claims RS256 (the key-confusion trick).
    let rs256_header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims("rs256").to_string());
    let rs256 = {
        let unsigned = format!("{rs256_header}.{payload}");
        let hs = jwt(JWT_SECRET, &claims("rs256"));
        format!("{unsigned}.{}", hs.rsplit('.').next().expect("sig"))
    };
    let good_parts: Vec<&str> = good.split('.').collect();
    let tampered_claims =
        json!({"sub": "root", "exp": now() + 600, "jti": "good", "scope": "run admin"});
    let tampered = format!(
        "{}.{}.{}",
        good_parts[0],
        URL_SAFE_NO_PAD.encode(tampered_claims.to_string()),
        good_parts[2]
    );
    let forged: Vec<(&str, String)> = vec![
        (
            "alg none, no signature",
            handmade_jwt(&json!({"alg": "none", "typ": "JWT"}), &claims("none"), ""),
        ),
        (
            "alg none, a signature",
            handmade_jwt(
                &json!({"alg": "none", "typ": "JWT"}),
                &claims("none2"),
                &signature_of_good,
            ),
        ),
        (
            "alg None",
            handmade_jwt(&json!({"alg": "None"}), &claims("none3"), ""),
        ),
        ("HS512 with the right secret", hs512),
        ("RS256 header", rs256),
        ("tampered payload", tampered),
        (
            "expired",
            jwt(
                JWT_SECRET,
                &json!({"sub": "a", "exp": now() - 60, "jti": "old", "scope": "run"}),
            ),
        ),
        (
            "not yet valid",
            jwt(
                JWT_SECRET,
                &json!({"sub": "a", "exp": now() + 600, "nbf": now() + 300, "jti": "nbf", "scope": "run"}),
            ),
        ),
        (
            "no exp",
            jwt(
                JWT_SECRET,
                &json!({"sub": "a", "jti": "noexp", "scope": "run"}),
            ),
        ),
        (
            "exp as a string",
            jwt(
                JWT_SECRET,
                &json!({"sub": "a", "exp": "9999999999", "jti": "s", "scope": "run"}),
            ),
        ),
        ("two parts", good_parts[..2].join(".")),
        ("four parts", format!("{good}.x")),
        ("not base64", "!!!.???.***".to_string()),
    ];
    let body = json!({"languageType": "python", "variables": {}, "code": "print(1)"});
    for (what, token) in &forged {
        for path in ["/runcode", "/execute"] {
            let (status, answer) = server.post(path, Some(token), &body).await;
            assert_eq!(
                (status, answer),
                (401, json!({"error": INVALID_TOKEN})),
                "{what} on {path}"
            );
        }
    }
    let (status, _) = server.post("/runcode", Some(&good), &body).await;
    assert_eq!(status, 200, "the unforged token works");

    // Revoked by its jti with the CLI: refused from the next request on.
    let config = server.data_dir().join("config.yaml");
    let revoke = std::process::Command::new(crate::harness::binary())
        .args([
            "--config",
            &config.display().to_string(),
            "token",
            "revoke",
            "good",
        ])
        .output()
        .expect("token revoke");
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    let (status, answer) = server.post("/runcode", Some(&good), &body).await;
    assert_eq!((status, answer), (401, json!({"error": INVALID_TOKEN})));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_rate_limited_per_subject() {
    let server = Server::start_with(Options {
        env: vec![
            ("RUNBOX_RATE_LIMIT__PER_MINUTE".into(), "60".into()),
            ("RUNBOX_RATE_LIMIT__BURST".into(), "3".into()),
        ],
        ..Options::default()
    })
    .await;
    // A cheap authenticated route: no sandbox involved.
    let list = |token: &'static str| {
        let request = server
            .client
            .get(server.url("/sessions"))
            .bearer_auth(token);
        async move { request.send().await.expect("get") }
    };
    for _ in 0..3 {
        assert_eq!(list(TOKEN).await.status(), 200);
    }
    let limited = list(TOKEN).await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let body: Value = limited.json().await.expect("json");
    assert_eq!(body["error"], "Rate limit exceeded");
    assert_eq!(body["retry_after"], retry_after);
    // Code runs are limited the same way.
    let (status, _) = server.runcode("python", "print(1)", json!({})).await;
    assert_eq!(status, 429);

    // Another subject has a bucket of its own; requests without a valid token are
    // refused as such and spend nothing.
    assert_eq!(list(OTHER_TOKEN).await.status(), 200);
    for _ in 0..5 {
        let (status, _) = server.get("/sessions", Some("wrong")).await;
        assert_eq!(status, 401);
    }
    // /health, the playground and images are never limited.
    for _ in 0..10 {
        assert_eq!(server.get("/health", None).await.0, 200);
        assert_eq!(server.get("/image/nothing.png", None).await.0, 404);
    }
    assert_eq!(server.get("/", None).await.0, 200);

    // One token a second comes back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(list(TOKEN).await.status(), 200);
    assert_eq!(list(TOKEN).await.status(), 429);
    server.stop().await;
}

/// Reads until the server closes the connection; how long that took, or `None` when it
/// was still open after `within`.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    tokio::time::timeout(within, async {
        let mut buffer = [0u8; 1024];
        while let Ok(n) = stream.read(&mut buffer).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_client_is_cut_off_and_a_long_run_is_not() {
    let server = Server::start_with(Options {
        env: vec![("RUNBOX_SERVER__CLIENT_TIMEOUT".into(), "1s".into())],
        ..Options::default()
    })
    .await;
    let address = server.base.trim_start_matches("http://").to_string();

    // Headers that stop half-way, and a connection that sends nothing at all: both are
    // closed once server.client_timeout has passed, not held open.
    let mut half_headers = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    half_headers
        .write_all(
            format!("POST /runcode HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n")
                .as_bytes(),
        )
        .await
        .expect("write");
    let mut silent = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    for (what, stream) in [
        ("half headers", &mut half_headers),
        ("nothing", &mut silent),
    ] {
        let closed = closed_within(stream, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("a client that sent {what} was still connected after 10 s"));
        assert!(
            closed < Duration::from_secs(5),
            "{what}: closed after {closed:?}"
        );
    }

    // A body that stops arriving is answered with an error, not waited for.
    let started = Instant::now();
    let (status, body) = raw(
        &server,
        format!(
            "POST /execute HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"code\":"
        )
        .as_bytes(),
        Duration::from_secs(10),
    )
    .await
    .expect("an answer to a stalled body");
    assert_eq!(status, 400, "{body}");
    let error = json_error(&body);
    assert!(
        error["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("timeout"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // The limit is on the client's sending, not on runbox's answering: a run longer
    // than it is answered in full.
    let (status, body) = server
        .runcode(
            "python",
            "import time\ntime.sleep(2.5)\nprint('still here')",
            json!({}),
        )
        .await;
    assert_eq!((status, body), (200, json!({"output": "still here\n"})));
    server.stop().await;
}
