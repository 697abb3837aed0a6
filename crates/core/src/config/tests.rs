use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_norway::Value;

use super::*;
use crate::units::{ByteSize, HumanDuration};

fn load(yaml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_yaml_str(
        yaml,
        Path::new("test.yaml"),
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

#[test]
fn empty_file_gives_defaults() {
    let config = load("", &[]).expect("defaults are valid");
    assert_eq!(config.server.port, 8000);
    assert_eq!(config.limits.memory, ByteSize::mib(512));
    assert_eq!(config.sandbox.transport, Transport::Stdio);
    assert!(config.database_url().starts_with("sqlite://"));
}

#[test]
fn the_shipped_config_yaml_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config.yaml");
    let config = Config::load(&path, Vec::new()).expect("config.yaml is valid");
    assert!(!config.auth.tokens.is_empty());
}

#[test]
fn unknown_keys_are_named() {
    let err = load("sandbox:\n  pool:\n    sise: 3\n", &[]).expect_err("typo rejected");
    let text = err.to_string();
    assert!(text.contains("sandbox.pool"), "{text}");
    assert!(text.contains("sise"), "{text}");
}

#[test]
fn invalid_values_are_named() {
    let err = load("limits:\n  memory: lots\n", &[]).expect_err("bad size rejected");
    assert!(err.to_string().contains("limits.memory"), "{err}");
    let err = load("sandbox:\n  transport: carrier-pigeon\n", &[]).expect_err("bad enum");
    assert!(err.to_string().contains("sandbox.transport"), "{err}");
    let err = load("sandbox:\n  port_range: {start: 9000, end: 8000}\n", &[]).expect_err("range");
    assert!(err.to_string().contains("sandbox.port_range"), "{err}");
    let err = load("server:\n  client_timeout: 0s\n", &[]).expect_err("no client timeout");
    assert!(err.to_string().contains("server.client_timeout"), "{err}");
    for unfiltered in ["\"\"", "unconfined"] {
        let err = load(&format!("sandbox:\n  seccomp: {unfiltered}\n"), &[])
            .expect_err("sandboxes always run under a filter");
        assert!(err.to_string().contains("sandbox.seccomp"), "{err}");
    }
}

#[test]
fn the_original_projects_config_is_accepted() {
    let yaml = r#"
domain: "" # comment
interpreter_image: "my/interpreter"
scheduler_port: 5000
host: "0.0.0.0"
interpreter_port_range:
  start: 8001
  end: 8003
dependencies:
  - numpy
resource_limits:
  memory: "2g"
  cpus: "1.5"
timeout_seconds: 60
postgres:
  user: "user"
  password: "p@ss"
  db: "code_interpreter_db"
  host: "localhost"
  port: "5432"
mode: "docker"
kubeconfig_path: "/path/to/kubeconfig.yaml"
k8s_interpreter_yaml: "/path/to/code-interpreter.yaml"
"#;
    let config = load(yaml, &[]).expect("original config accepted");
    assert_eq!(config.server.port, 5000);
    assert_eq!(config.server.host, "0.0.0.0");
    assert_eq!(config.sandbox.base_image, "my/interpreter");
    assert_eq!(
        config.sandbox.port_range,
        PortRange {
            start: 8001,
            end: 8003
        }
    );
    assert_eq!(config.limits.memory, ByteSize(2 << 30));
    assert!((config.limits.cpus - 1.5).abs() < f64::EPSILON);
    assert_eq!(config.limits.timeout.get(), Duration::from_secs(60));
    assert_eq!(
        config.database_url(),
        "postgres://user:p%40ss@localhost:5432/code_interpreter_db"
    );
    assert_eq!(config.public_base_url(), "http://127.0.0.1:5000");
}

#[test]
fn k8s_mode_is_refused_by_name() {
    let err = load("mode: k8s\n", &[]).expect_err("k8s refused");
    assert!(err.to_string().contains("`mode`"), "{err}");
}

#[test]
fn environment_overrides_nested_keys() {
    let config = load(
        "sandbox:\n  transport: stdio\n",
        &[
            ("RUNBOX_SANDBOX__TRANSPORT", "http"),
            ("RUNBOX_SANDBOX__POOL__SIZE", "0"),
            ("RUNBOX_LIMITS__MEMORY", "256m"),
            ("RUNBOX_JWT_SECRET", "s3cret"),
            ("RUNBOX_CONFIG", "elsewhere.yaml"),
            ("RUNBOX_CACHE_DIR", "/somewhere"),
        ],
    )
    .expect("overrides apply");
    assert_eq!(config.sandbox.transport, Transport::Http);
    assert_eq!(config.sandbox.pool.size, 0);
    assert_eq!(config.limits.memory, ByteSize::mib(256));
    assert_eq!(config.auth.jwt_secret, "s3cret");
}

#[test]
fn a_wrong_override_fails_naming_the_key() {
    let err = load("", &[("RUNBOX_SANDBOX__POOL__SIZ", "3")]).expect_err("typo rejected");
    assert!(err.to_string().contains("sandbox.pool"), "{err}");
    let err = load("", &[("RUNBOX_SANDBOX__POOL__SIZE", "many")]).expect_err("bad value");
    assert!(err.to_string().contains("sandbox.pool.size"), "{err}");
}

#[test]
fn static_tokens_take_both_shapes() {
    let config = load(
        "auth:\n  tokens:\n    - \"114514\"\n    - {token: abc, subject: ci, scopes: [run]}\n",
        &[],
    )
    .expect("tokens");
    assert_eq!(config.auth.tokens[0].token(), "114514");
    assert_eq!(config.auth.tokens[0].scopes().len(), 4);
    assert_eq!(config.auth.tokens[1].subject(), "ci");
    assert_eq!(config.auth.tokens[1].scopes(), vec!["run".to_string()]);
    let err = load(
        "auth:\n  tokens:\n    - {token: abc, scopes: [root]}\n",
        &[],
    )
    .expect_err("unknown scope");
    assert!(err.to_string().contains("auth.tokens[0].scopes"), "{err}");
}

#[test]
fn requested_timeouts_are_capped() {
    let config = load("limits:\n  timeout: 5s\n  max_timeout: 60s\n", &[]).expect("valid");
    assert_eq!(config.clamp_timeout(None), Duration::from_secs(5));
    assert_eq!(
        config.clamp_timeout(Some(Duration::from_secs(2))),
        Duration::from_secs(2)
    );
    assert_eq!(
        config.clamp_timeout(Some(Duration::from_secs(900))),
        Duration::from_secs(60)
    );
}

#[test]
fn functions_section_has_defaults_and_overrides() {
    let config = load("", &[]).expect("defaults");
    assert_eq!(
        config.functions.build_timeout.get(),
        Duration::from_secs(600)
    );
    assert_eq!(config.functions.build_memory, ByteSize::mib(2048));
    assert_eq!(config.functions.max_parallel_builds, 2);
    let config = load("", &[("RUNBOX_FUNCTIONS__BUILD_TIMEOUT", "90s")]).expect("override");
    assert_eq!(
        config.functions.build_timeout.get(),
        Duration::from_secs(90)
    );
    let err = load("functions:\n  build_timeout: 0s\n", &[]).expect_err("zero rejected");
    assert!(err.to_string().contains("functions.build_timeout"), "{err}");
}

/// Each section as `Config::defaults()` holds it, and the same section's own `Default`,
/// both serialized.
fn sections_of_the_defaults() -> Vec<(&'static str, Value, Value)> {
    fn value(of: impl serde::Serialize) -> Value {
        serde_norway::to_value(of).expect("a config serializes")
    }
    let defaults = Config::defaults();
    vec![
        (
            "server",
            value(&defaults.server),
            value(ServerConfig::default()),
        ),
        ("auth", value(&defaults.auth), value(AuthConfig::default())),
        (
            "database",
            value(&defaults.database),
            value(DatabaseConfig::default()),
        ),
        (
            "sandbox",
            value(&defaults.sandbox),
            value(SandboxConfig::default()),
        ),
        (
            "limits",
            value(&defaults.limits),
            value(LimitsConfig::default()),
        ),
        (
            "admission",
            value(&defaults.admission),
            value(AdmissionConfig::default()),
        ),
        (
            "images",
            value(&defaults.images),
            value(ImagesConfig::default()),
        ),
        ("pip", value(&defaults.pip), value(PipConfig::default())),
        (
            "logging",
            value(&defaults.logging),
            value(LoggingConfig::default()),
        ),
        (
            "sessions",
            value(&defaults.sessions),
            value(SessionsConfig::default()),
        ),
        (
            "tasks",
            value(&defaults.tasks),
            value(TasksConfig::default()),
        ),
        (
            "functions",
            value(&defaults.functions),
            value(FunctionsConfig::default()),
        ),
        (
            "rate_limit",
            value(&defaults.rate_limit),
            value(RateLimitConfig::default()),
        ),
        ("mcp", value(&defaults.mcp), value(McpConfig::default())),
        (
            "cluster",
            value(&defaults.cluster),
            value(ClusterConfig::default()),
        ),
    ]
}

fn serialized(config: &Config) -> Value {
    serde_norway::to_value(config).expect("a config serializes")
}

#[test]
fn the_defaults_are_each_sections_default() {
    for (name, in_defaults, own_default) in sections_of_the_defaults() {
        assert_eq!(in_defaults, own_default, "section `{name}`");
    }
    assert_eq!(
        serialized(&Config::defaults())["sandbox"]["pool"],
        serde_norway::to_value(PoolConfig::default()).expect("serializes"),
    );
    // No section is left out above: the defaults hold these sections and `data_dir`.
    let Value::Mapping(keys) = serialized(&Config::defaults()) else {
        panic!("the defaults serialize to a mapping");
    };
    let keys: BTreeSet<&str> = keys.keys().filter_map(Value::as_str).collect();
    let compared: BTreeSet<&str> = sections_of_the_defaults()
        .into_iter()
        .map(|(name, _, _)| name)
        .chain(["data_dir"])
        .collect();
    assert_eq!(keys, compared);
}

#[test]
fn an_empty_section_is_an_absent_one() {
    let defaults = serialized(&load("", &[]).expect("defaults"));
    for (name, _, _) in sections_of_the_defaults() {
        let config = load(&format!("{name}: {{}}\n"), &[]).expect("an empty section");
        assert_eq!(serialized(&config), defaults, "`{name}: {{}}`");
    }
    let config = load("sandbox:\n  pool: {}\n", &[]).expect("an empty pool");
    assert_eq!(serialized(&config), defaults, "`sandbox.pool: {{}}`");
}

#[test]
fn a_partial_section_keeps_its_other_defaults() {
    let config = load(
        "server:\n  port: 9000\nsandbox:\n  pool:\n    size: 5\n",
        &[],
    )
    .expect("partial sections");
    let mut expected = serialized(&Config::defaults());
    expected["server"]["port"] = Value::from(9000_u16);
    expected["sandbox"]["pool"]["size"] = Value::from(5_usize);
    assert_eq!(serialized(&config), expected);
}

#[test]
fn every_section_refuses_unknown_keys() {
    for (name, _, _) in sections_of_the_defaults() {
        let err = load(&format!("{name}:\n  no_such_key: 1\n"), &[]).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains(&format!("config key `{name}")), "{text}");
        assert!(text.contains("no_such_key"), "{text}");
    }
}

#[test]
fn the_override_keys_are_the_keys_of_config() {
    // Every field is named (no `..`), so a new key does not compile until it is added
    // here; set, it then shows in the serialized keys compared below.
    let defaults = Config::defaults();
    let every_key_set = Config {
        server: defaults.server,
        auth: defaults.auth,
        database: defaults.database,
        data_dir: defaults.data_dir,
        sandbox: defaults.sandbox,
        limits: defaults.limits,
        admission: defaults.admission,
        images: defaults.images,
        pip: defaults.pip,
        logging: defaults.logging,
        sessions: defaults.sessions,
        tasks: defaults.tasks,
        functions: defaults.functions,
        rate_limit: defaults.rate_limit,
        mcp: defaults.mcp,
        cluster: defaults.cluster,
        domain: Some(String::new()),
        interpreter_image: Some(String::new()),
        scheduler_port: Some(5000),
        host: Some(String::new()),
        interpreter_port_range: Some(PortRange { start: 1, end: 2 }),
        dependencies: Some(Vec::new()),
        resource_limits: Some(super::compat::ResourceLimits::default()),
        timeout_seconds: Some(HumanDuration::secs(1)),
        postgres: Some(super::compat::PostgresBlock {
            user: String::new(),
            password: String::new(),
            db: String::new(),
            host: String::new(),
            port: None,
        }),
        mode: Some(String::new()),
        kubeconfig_path: Some(String::new()),
        k8s_interpreter_yaml: Some(String::new()),
    };
    let Value::Mapping(keys) = serialized(&every_key_set) else {
        panic!("a config serializes to a mapping");
    };
    let keys: BTreeSet<&str> = keys.keys().filter_map(Value::as_str).collect();
    assert_eq!(keys, TOP_LEVEL_KEYS.into_iter().collect::<BTreeSet<_>>());
}

/// A PEM-looking file for the tls keys (validation checks that the files exist; the
/// engine connection reads them).
fn tls_files() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::write(dir.path().join(name), "-----BEGIN-----\n").expect("write");
    }
    let base = dir.path().display().to_string();
    (dir, base)
}

fn engines_yaml(entries: &str) -> String {
    format!("sandbox:\n  engines:\n{entries}")
}

#[test]
fn no_engines_key_means_the_one_local_engine() {
    let config = load("", &[]).expect("defaults");
    assert!(config.sandbox.engines.is_empty());
}

#[test]
fn engines_are_parsed() {
    let (_dir, base) = tls_files();
    let yaml = engines_yaml(&format!(
        "    - {{name: local, host: \"unix:///var/run/docker.sock\", capacity: 4}}\n    \
         - name: remote\n      host: tcp://10.0.0.2:2376\n      capacity: 16\n      \
         pool_size: 1\n      labels: {{runtime: runsc}}\n      tls: {{ca: {base}/ca.pem, \
         cert: {base}/cert.pem, key: {base}/key.pem}}\n"
    ));
    let config = load(&yaml, &[]).expect("two engines");
    let engines = &config.sandbox.engines;
    assert_eq!(engines.len(), 2);
    assert_eq!(engines[0].name, "local");
    assert_eq!(engines[0].capacity, 4);
    assert!(engines[0].tls.is_none());
    assert_eq!(
        EngineAddress::parse(&engines[0].host),
        Ok(EngineAddress::Unix("/var/run/docker.sock".into()))
    );
    assert_eq!(engines[1].pool_size, Some(1));
    assert_eq!(
        engines[1].labels.get("runtime").map(String::as_str),
        Some("runsc")
    );
    assert_eq!(
        EngineAddress::parse(&engines[1].host),
        Ok(EngineAddress::Tcp {
            host: "10.0.0.2".into(),
            port: 2376
        })
    );
    let capacity = load(&engines_yaml("    - {name: a, host: \"unix:///s\"}\n"), &[])
        .expect("capacity has a default");
    assert_eq!(capacity.sandbox.engines[0].capacity, 8);
}

/// Each mistake is named by the field that holds it.
#[test]
fn engine_mistakes_name_their_field() {
    let (_dir, base) = tls_files();
    let tls = format!("{{ca: {base}/ca.pem, cert: {base}/cert.pem, key: {base}/key.pem}}");
    let ok = "    - {name: one, host: \"unix:///s\"}\n";
    let cases = [
        (
            format!("{ok}    - {{name: two, host: \"http://10.0.0.2:2375\"}}\n"),
            "sandbox.engines[1].host",
            "scheme",
        ),
        (
            format!("{ok}    - {{name: two, host: \"unix:///t\", tls: {tls}}}\n"),
            "sandbox.engines[1].tls",
            "unix socket takes no tls",
        ),
        (
            format!("{ok}    - {{name: two, host: \"tcp://10.0.0.2:2376\"}}\n"),
            "sandbox.engines[1].tls",
            "needs tls",
        ),
        (
            format!(
                "{ok}    - {{name: two, host: \"tcp://10.0.0.2:2376\", tls: {{ca: {base}/ca.pem, \
                 cert: {base}/missing.pem, key: {base}/key.pem}}}}\n"
            ),
            "sandbox.engines[1].tls.cert",
            "missing.pem",
        ),
        (
            format!("{ok}    - {{name: two, host: \"unix:///t\", capacity: 0}}\n"),
            "sandbox.engines[1].capacity",
            "at least 1",
        ),
        (
            format!("{ok}    - {{name: one, host: \"unix:///t\"}}\n"),
            "sandbox.engines[1].name",
            "another engine",
        ),
        (
            format!("{ok}    - {{name: two, host: \"tcp://10.0.0.2\", tls: {tls}}}\n"),
            "sandbox.engines[1].host",
            "HOST:PORT",
        ),
        (
            format!("{ok}    - {{name: two, host: \"unix://relative\"}}\n"),
            "sandbox.engines[1].host",
            "absolute",
        ),
    ];
    for (entries, key, says) in cases {
        let err = load(&engines_yaml(&entries), &[]).expect_err(key);
        let text = err.to_string();
        assert!(text.contains(&format!("`{key}`")), "{key}: {text}");
        assert!(text.contains(says), "{key}: {text}");
    }
    let http = format!(
        "sandbox:\n  transport: http\n  engines:\n    - {{name: two, host: \"tcp://10.0.0.2:2376\", tls: {tls}}}\n"
    );
    let err = load(&http, &[]).expect_err("http with a tcp engine");
    assert!(err.to_string().contains("sandbox.engines[0].host"), "{err}");
    assert!(err.to_string().contains("stdio"), "{err}");
}
