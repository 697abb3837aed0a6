//! Stored functions: registration (checked in a sandbox), dependency environments built
//! once per set, versions, argument validation and scopes.
//!
//! Over 500 lines: the registration, call and version cases share one server per test
//! and most of their fixtures; tasks have their own file (`tasks.rs`).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{binary, jwt, now, Options, Server, JWT_SECRET, TOKEN};

/// The example of the original function server.
const MY_FUNCTION: &str = "\
import numpy as np
import pandas as pd

def my_function(count, min_value, max_value):
    data = np.random.uniform(min_value, max_value, count)
    df = pd.DataFrame(data, columns=['value'])
    return df['value'].mean()
";

fn tabulate_version(name: &str) -> String {
    format!("import tabulate\n\ndef {name}():\n    return tabulate.__version__\n")
}

async fn register(server: &Server, body: Value) -> (u16, Value) {
    server.post("/functions", Some(TOKEN), &body).await
}

async fn call(server: &Server, name: &str, args: Value) -> (u16, Value) {
    server
        .post(
            &format!("/functions/{name}/call"),
            Some(TOKEN),
            &json!({"args": args}),
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_original_example_runs_with_numpy_and_pandas() {
    let server = Server::start().await;
    let (status, body) = register(
        &server,
        json!({
            "name": "my_function",
            "description": "mean of uniform random numbers",
            "code": MY_FUNCTION,
            "dependencies": ["numpy", "pandas"],
            "args": {"count": "int", "min_value": "float", "max_value": "float"},
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 1);
    assert_eq!(body["name"], "my_function");
    assert_eq!(body["dependencies"], json!(["numpy", "pandas"]));
    assert_eq!(body["env"]["status"], "ready", "{body}");

    let (status, result) = call(
        &server,
        "my_function",
        json!({"count": 10, "min_value": 0.0, "max_value": 100.0}),
    )
    .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["success"], true, "{result}");
    let value = result["value"].as_f64().expect("a float");
    assert!((0.0..=100.0).contains(&value), "{value}");
    assert_eq!(result["error"], Value::Null);

    // The same call through /execute's stored-function shape.
    let (status, result) = server
        .post(
            "/execute",
            Some(TOKEN),
            &json!({"name": "my_function", "args": {"count": 5, "min_value": 1.0, "max_value": 2.0}}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    let value = result["value"].as_f64().expect("a float");
    assert!((1.0..=2.0).contains(&value), "{value}");
    let (status, result) = server
        .post(
            "/execute",
            Some(TOKEN),
            &json!({"name": "my_function", "args": {"count": "x"}}),
        )
        .await;
    assert_eq!(status, 422, "{result}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dependency_environment_is_built_once_and_reused() {
    let server = Server::start().await;
    // Two registrations of the same set at once (spelled differently): one build.
    let started = Instant::now();
    let (first, second) = tokio::join!(
        register(
            &server,
            json!({"name": "tab_a", "code": tabulate_version("tab_a"), "dependencies": ["tabulate==0.9.0"]}),
        ),
        register(
            &server,
            json!({"name": "tab_b", "code": tabulate_version("tab_b"), "dependencies": ["Tabulate == 0.9.0"]}),
        ),
    );
    let first_time = started.elapsed();
    assert_eq!(first.0, 201, "{}", first.1);
    assert_eq!(second.0, 201, "{}", second.1);
    assert_eq!(first.1["env"]["status"], "ready");
    assert_eq!(first.1["env"]["image"], second.1["env"]["image"]);
    assert_eq!(second.1["dependencies"], json!(["tabulate==0.9.0"]));
    let image = first.1["env"]["image"].as_str().expect("image").to_string();
    assert!(image.starts_with("runbox-env:"), "{image}");
    assert!(first.1["env"]["log"]
        .as_str()
        .expect("log")
        .contains("tabulate"));

    // A later registration of the same set reuses the image.
    let started = Instant::now();
    let (status, third) = register(
        &server,
        json!({"name": "tab_c", "code": tabulate_version("tab_c"), "dependencies": ["tabulate==0.9.0"]}),
    )
    .await;
    let second_time = started.elapsed();
    assert_eq!(status, 201, "{third}");
    assert_eq!(third["env"]["image"], image.as_str());
    let builds = server
        .log_text()
        .lines()
        .filter(|l| l.contains("building a dependency environment") && l.contains(&image))
        .count();
    assert_eq!(builds, 1, "the set was built {builds} times");
    eprintln!(
        "environment tabulate==0.9.0: first registration (build) {:.2} s, reuse {:.2} s",
        first_time.as_secs_f64(),
        second_time.as_secs_f64()
    );
    assert!(second_time < first_time, "the reuse was not faster");

    for name in ["tab_a", "tab_b", "tab_c"] {
        let (status, result) = call(&server, name, json!({})).await;
        assert_eq!(status, 200, "{result}");
        assert_eq!(result["value"], "0.9.0", "{result}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_pinned_versions_of_one_package_live_side_by_side() {
    let server = Server::start().await;
    let (old, new) = tokio::join!(
        register(
            &server,
            json!({"name": "old_tab", "code": tabulate_version("old_tab"), "dependencies": ["tabulate==0.8.10"]}),
        ),
        register(
            &server,
            json!({"name": "new_tab", "code": tabulate_version("new_tab"), "dependencies": ["tabulate==0.9.0"]}),
        ),
    );
    assert_eq!(old.0, 201, "{}", old.1);
    assert_eq!(new.0, 201, "{}", new.1);
    assert_ne!(old.1["env"]["image"], new.1["env"]["image"]);
    let (_, old_result) = call(&server, "old_tab", json!({})).await;
    let (_, new_result) = call(&server, "new_tab", json!({})).await;
    assert_eq!(old_result["value"], "0.8.10", "{old_result}");
    assert_eq!(new_result["value"], "0.9.0", "{new_result}");

    // Once no function needs the old pin, `runbox image prune` would remove its image.
    let (status, _) = server.delete("/functions/old_tab", Some(TOKEN)).await;
    assert_eq!(status, 200);
    let output = std::process::Command::new(crate::harness::binary())
        .args(["--config"])
        .arg(server.dir.join("config.yaml"))
        .args(["image", "prune", "--dry-run"])
        .output()
        .expect("run runbox image prune");
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{listed}");
    let old_image = old.1["env"]["image"].as_str().expect("image");
    let new_image = new.1["env"]["image"].as_str().expect("image");
    assert!(
        listed.contains(&format!("would remove {old_image}")),
        "{listed}"
    );
    assert!(!listed.contains(new_image), "{listed}");
    // Without a dependency the package is not there at all.
    let (status, body) = register(
        &server,
        json!({"name": "no_tab", "code": tabulate_version("no_tab")}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["kind"], "runtime");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("No module named 'tabulate'"),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_are_validated_before_any_sandbox_starts() {
    let server = Server::start().await;
    let (status, body) = register(
        &server,
        json!({
            "name": "scale",
            "code": "def scale(count, factor=2.0, label='x'):\n    return [label, count * factor]\n",
            "args": [
                {"name": "count", "type": "int", "required": true, "description": "how many"},
                {"name": "factor", "type": "float", "default": 3.0},
                {"name": "label", "type": "str", "required": false},
            ],
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["args"][1]["default"], 3.0);

    let (status, result) = call(&server, "scale", json!({"count": 2})).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(
        result["value"],
        json!(["x", 6.0]),
        "the declared default is used"
    );

    server
        .wait_containers_at_most(0, Duration::from_secs(5))
        .await;
    let cases = [
        (
            json!({"factor": 1.0}),
            "count",
            "missing required argument `count` (int)",
        ),
        (
            json!({"count": "ten"}),
            "count",
            "argument `count` must be int, got str \"ten\"",
        ),
        (
            json!({"count": 1.5}),
            "count",
            "argument `count` must be int, got float 1.5",
        ),
        (
            json!({"count": 1, "label": 7}),
            "label",
            "argument `label` must be str, got int 7",
        ),
        (
            json!({"count": 1, "colour": "red"}),
            "colour",
            "unexpected argument `colour`: scale takes count (int), factor (float), label (str)",
        ),
    ];
    for (args, argument, message) in cases {
        let started = Instant::now();
        let (status, body) = call(&server, "scale", args.clone()).await;
        assert_eq!(status, 422, "{args}: {body}");
        assert_eq!(
            body,
            json!({"success": false, "error": {"kind": "invalid_args", "message": message, "argument": argument}}),
            "{args}"
        );
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    assert!(
        server.containers().is_empty(),
        "an invalid call started a sandbox"
    );

    let (status, body) = server
        .post(
            "/functions/scale/call",
            Some(TOKEN),
            &json!({"args": [1, 2]}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["kind"], "invalid_args");

    let (status, body) = call(&server, "no_such_function", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": "no function named `no_such_function`"})
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_checks_the_code_and_the_definition() {
    let server = Server::start().await;
    let cases = [
        (
            json!({"name": "broken", "code": "def broken(:\n    pass\n"}),
            "syntax",
        ),
        (json!({"name": "missing", "code": "x = 1\n"}), "runtime"),
        (
            json!({"name": "crashes", "code": "raise ValueError('at import')\ndef crashes(): pass\n"}),
            "runtime",
        ),
        (
            json!({"name": "f", "code": "def f(a): return a", "args": {"b": "int"}}),
            "invalid_definition",
        ),
        (
            json!({"name": "f", "code": "def f(a): return a", "args": {"a": "integer-ish"}}),
            "invalid_definition",
        ),
        (
            json!({"name": "f", "code": "def f(): pass", "dependencies": ["--index-url=http://x"]}),
            "invalid_definition",
        ),
        (
            json!({"name": "f", "code": "def f(): pass", "max_concurrency": 0}),
            "invalid_definition",
        ),
        (
            json!({"name": "f", "code": "def f(): pass", "timeout": -1}),
            "invalid_definition",
        ),
        (
            json!({"name": "not-an-identifier", "code": "def f(): pass"}),
            "invalid_definition",
        ),
        (
            json!({"name": "f", "code": "def f(): pass", "timout": 3}),
            "invalid_definition",
        ),
        (json!({"code": "def f(): pass"}), "invalid_definition"),
    ];
    for (definition, kind) in cases {
        let (status, body) = register(&server, definition.clone()).await;
        assert_eq!(status, 422, "{definition}: {body}");
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["kind"], kind, "{definition}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (_, body) = register(&server, json!({"name": "missing", "code": "x = 1\n"})).await;
    assert_eq!(
        body["error"]["message"],
        "the code defines no callable named `missing`"
    );

    // pip's own failure: 422 `dependency` with pip's log.
    let (status, body) = register(
        &server,
        json!({"name": "f", "code": "def f(): pass", "dependencies": ["tabulate==0.0.999"]}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["kind"], "dependency");
    let log = body["error"]["log"].as_str().expect("log");
    assert!(log.contains("No matching distribution"), "{log}");

    let (status, _) = register(&server, json!({"name": "f", "code": "def f(): return 1"})).await;
    assert_eq!(status, 201);
    let (status, body) = register(&server, json!({"name": "f", "code": "def f(): return 2"})).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = server
        .post(
            "/submit",
            Some(TOKEN),
            &json!({"name": "g", "code": "def g(): return 'via submit'"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, result) = call(&server, "g", json!({})).await;
    assert_eq!(result["value"], "via submit");
    let (status, _) = server.get("/functions/nothing", Some(TOKEN)).await;
    assert_eq!(status, 404);
    let (status, body) = server
        .post("/functions", Some(TOKEN), &json!("not an object"))
        .await;
    assert_eq!(status, 422, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn put_makes_a_new_version_and_calls_use_it() {
    let server = Server::start().await;
    let (status, body) = register(
        &server,
        json!({"name": "greet", "code": "def greet(who):\n    return 'hello ' + who\n", "args": {"who": "str"}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .put(
            "/functions/greet",
            Some(TOKEN),
            &json!({"code": "def greet(who, punctuation='!'):\n    return 'hi ' + who + punctuation\n",
                    "args": {"who": "str", "punctuation": {"type": "str", "default": "!"}},
                    "description": "v2"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 2);

    let (_, result) = call(&server, "greet", json!({"who": "ada"})).await;
    assert_eq!(result["value"], "hi ada!", "{result}");
    let (_, result) = server
        .post(
            "/functions/greet/call",
            Some(TOKEN),
            &json!({"args": {"who": "ada"}, "version": 1}),
        )
        .await;
    assert_eq!(
        result["value"], "hello ada",
        "an old version stays callable"
    );

    let (status, body) = server.get("/functions/greet", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(body["version"], 2);
    assert_eq!(body["description"], "v2");
    assert_eq!(body["running"], 0);
    assert_eq!(body["env"]["status"], "ready");
    let versions: Vec<i64> = body["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["version"].as_i64().expect("number"))
        .collect();
    assert_eq!(versions, vec![1, 2]);
    let (status, old) = server.get("/functions/greet/versions/1", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(old["code"].as_str().expect("code").contains("hello"));
    let (status, _) = server.get("/functions/greet/versions/3", Some(TOKEN)).await;
    assert_eq!(status, 404);

    // PUT of a new name creates version 1; a name in the body must match the path.
    let (status, body) = server
        .put(
            "/functions/fresh",
            Some(TOKEN),
            &json!({"code": "def fresh(): return 1"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 1);
    let (status, _) = server
        .put(
            "/functions/fresh",
            Some(TOKEN),
            &json!({"name": "other", "code": "def other(): return 1"}),
        )
        .await;
    assert_eq!(status, 422);

    let (status, listed) = server.get("/functions", Some(TOKEN)).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = listed["functions"]
        .as_array()
        .expect("list")
        .iter()
        .map(|f| f["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, vec!["fresh", "greet"]);

    let (status, body) = server.delete("/functions/greet", Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["versions"], 2);
    let (status, _) = call(&server, "greet", json!({"who": "ada"})).await;
    assert_eq!(status, 404);
    let (status, _) = server.delete("/functions/greet", Some(TOKEN)).await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_route_needs_its_scope() {
    let server = Server::start_with(Options::default()).await;
    let token = |scope: &str| {
        jwt(
            JWT_SECRET,
            &json!({"sub": "carol", "exp": now() + 600, "jti": format!("j-{scope}"), "scope": scope}),
        )
    };
    let reader = token("functions:read");
    let writer = token("functions:write");
    let runner = token("run");

    let definition = json!({"name": "one", "code": "def one(): return 1"});
    let (status, body) = server.post("/functions", Some(&reader), &definition).await;
    assert_eq!(status, 403);
    assert_eq!(body["required"], "functions:write");
    let (status, _) = server.post("/functions", Some(&writer), &definition).await;
    assert_eq!(status, 201);
    let (status, _) = server.get("/functions/one", Some(&reader)).await;
    assert_eq!(status, 200);
    let (status, body) = server.get("/functions", Some(&runner)).await;
    assert_eq!(status, 403);
    assert_eq!(body["required"], "functions:read");
    let (status, body) = server
        .post("/functions/one/call", Some(&writer), &json!({}))
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["required"], "run");
    let (status, result) = server
        .post("/functions/one/call", Some(&runner), &json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(result["value"], 1);
    let (status, body) = server
        .post(
            "/functions/one/call",
            Some(&runner),
            &json!({"async": true}),
        )
        .await;
    assert_eq!(status, 403, "an async call makes a task");
    assert_eq!(body["required"], "tasks");
    let (status, _) = server.delete("/functions/one", Some(&runner)).await;
    assert_eq!(status, 403);
    let (status, _) = server.get("/functions", None).await;
    assert_eq!(status, 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_environment_makes_calls_answer_dependency() {
    let mut server = Server::start().await;
    let (status, body) = register(
        &server,
        json!({"name": "tab_dep", "code": tabulate_version("tab_dep"), "dependencies": ["tabulate==0.9.0"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Another package index changes every environment; this one has nothing.
    server.kill9();
    let config = server.dir.join("config.yaml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replacen(
            "pip:\n",
            "pip:\n  index_url: file:///nonexistent/simple\n",
            1,
        ),
    )
    .expect("config");
    // The pip index is part of the sandbox image's tag (the image may pip-install from
    // it), so this configuration runs an image of its own. It is built here, within a
    // bound of its own: built by the restarted server, it would count against the
    // server's start-up timeout, which a build on a slow machine can exceed.
    let build = tokio::process::Command::new(binary())
        .args(["--config", &config.display().to_string(), "image", "build"])
        .kill_on_drop(true)
        .output();
    let built = tokio::time::timeout(Duration::from_secs(600), build)
        .await
        .expect("the sandbox image for the new index was built within 10 minutes")
        .expect("run runbox image build");
    assert!(
        built.status.success(),
        "runbox image build failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    server.spawn();

    let (status, result) = call(&server, "tab_dep", json!({})).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["success"], false);
    assert_eq!(result["error"]["kind"], "dependency", "{result}");
    let message = result["error"]["message"].as_str().expect("message");
    assert!(message.contains("tabulate==0.9.0"), "{message}");
    let log = result["error"]["traceback"].as_str().expect("pip's log");
    assert!(log.contains("No matching distribution"), "{log}");

    let (_, definition) = server.get("/functions/tab_dep", Some(TOKEN)).await;
    assert_eq!(definition["env"]["status"], "failed", "{definition}");
    assert!(definition["env"]["log"]
        .as_str()
        .expect("log")
        .contains("No matching distribution"));
    // A second call right away answers from the recorded failure, without pip.
    let (_, again) = call(&server, "tab_dep", json!({})).await;
    assert_eq!(again["error"]["kind"], "dependency");
    let builds = server
        .log_text()
        .lines()
        .filter(|l| l.contains("building a dependency environment"))
        .count();
    assert_eq!(
        builds, 2,
        "one build at registration, one for the new index"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn loading_at_registration_obeys_the_function_s_own_timeout() {
    let server = Server::start().await;
    let started = Instant::now();
    let (status, body) = register(
        &server,
        json!({"name": "never", "code": "while True:\n    pass\n\ndef never(): pass\n", "timeout": 2}),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["kind"], "timeout", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("the function's `timeout` of 2 s"),
        "the message names the limit: {message}"
    );
    assert!(
        took < Duration::from_secs(15),
        "loading stopped at the function's 2 s, not at limits.timeout: {took:?}"
    );
    let (status, _) = server.get("/functions/never", Some(TOKEN)).await;
    assert_eq!(status, 404, "nothing was stored");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_failure_while_building_is_runbox_s_503_not_the_user_s_422() {
    let proxy = crate::docker_proxy::DockerProxy::start().await;
    let server = Server::start_with(Options {
        env: vec![("DOCKER_HOST".into(), proxy.docker_host())],
        ..Options::default()
    })
    .await;
    proxy.fail_creates(true);
    let (status, body) = register(
        &server,
        json!({"name": "tab", "code": tabulate_version("tab"), "dependencies": ["tabulate==0.9.0"]}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("could not be built") && message.contains("injected failure"),
        "{body}"
    );
    assert!(
        body.get("success").is_none(),
        "not a dependency result: {body}"
    );
    let health = server.health().await;
    let cause = health["builds"]["engine_failure"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(cause.contains("injected failure"), "{health}");
    let (status, _) = server.get("/functions/tab", Some(TOKEN)).await;
    assert_eq!(status, 404, "nothing was stored");
    proxy.fail_creates(false);
    server.stop().await;
}

/// pip installs a wheel with a compiled extension in a build container under the
/// sandboxes' seccomp profile (SECURITY.md), and the function runs under it too. Named
/// apart from tests/api/seccomp.rs, which also runs on engines that reach no index.
#[tokio::test(flavor = "multi_thread")]
async fn a_compiled_wheel_builds_and_runs_under_the_syscall_filter() {
    let server = Server::start().await;
    let code = r#"import msgpack

def roundtrip(value):
    seccomp = [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')][0]
    return {'value': msgpack.unpackb(msgpack.packb(value)), 'seccomp': seccomp, 'packer': msgpack.Packer.__module__}
"#;
    let (status, body) = register(
        &server,
        json!({"name": "roundtrip", "code": code, "dependencies": ["msgpack==1.0.8"], "args": {"value": "list"}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["env"]["status"], "ready", "{body}");
    let (status, body) = call(
        &server,
        "roundtrip",
        json!({"value": [1, "two", {"3": 4.5}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The packer of the compiled extension, not msgpack's pure-Python fallback.
    assert_eq!(
        body["value"],
        json!({"value": [1, "two", {"3": 4.5}], "seccomp": "2", "packer": "msgpack._cmsgpack"}),
        "{body}"
    );
    server.stop().await;
}
