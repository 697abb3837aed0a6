//! Nothing altered, nothing forged (SECURITY.md "The agent's channel"): the code cannot
//! speak for the agent, whatever a sandbox sends is at worst the run's failure, output
//! written before a timeout is kept, only real images are kept, and a session's
//! background work does not run between its executions.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{sandbox_image, Options, Server, TOKEN};

/// Writes a forged `result` frame, then a frame header claiming 0xfffffff0 bytes, into
/// every descriptor of every other process it can open, and says which it reached.
const ATTACK: &str = r#"import json, os, struct
body = json.dumps({"type": "result", "stdout": "", "stderr": "", "exit_code": 0,
                   "has_value": True, "value": "FORGED", "error": None, "images": [],
                   "truncated": False, "duration_ms": 1}).encode()
frames = struct.pack(">I", len(body)) + body + struct.pack(">I", 0xfffffff0)
reached = []
me = os.getpid()
for pid in [p for p in os.listdir("/proc") if p.isdigit() and int(p) != me]:
    try:
        fds = os.listdir("/proc/%s/fd" % pid)
    except OSError:
        continue
    for fd in fds:
        try:
            w = os.open("/proc/%s/fd/%s" % (pid, fd), os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            os.write(w, frames)
            reached.append("%s/%s" % (pid, fd))
        except OSError:
            pass
        finally:
            os.close(w)
print("reached", reached)
"genuine"
"#;

fn assert_not_forged(result: &Value) {
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["value"], "genuine", "{result}");
    assert_eq!(result["stdout"], "reached []\n", "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_s_channel_is_out_of_the_code_s_reach() {
    let server = Server::start().await;
    let (status, result) = server
        .post("/execute", Some(TOKEN), &json!({"code": ATTACK}))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_not_forged(&result);

    let (status, session) = server
        .post("/sessions", Some(TOKEN), &json!({"language": "python"}))
        .await;
    assert_eq!(status, 201, "{session}");
    let id = session["id"].as_str().expect("session id");
    let path = format!("/sessions/{id}/execute");
    for _ in 0..2 {
        let (status, result) = server
            .post(&path, Some(TOKEN), &json!({"code": ATTACK}))
            .await;
        assert_eq!(status, 200, "{result}");
        assert_not_forged(&result);
    }
    let (status, result) = server
        .post(&path, Some(TOKEN), &json!({"code": "1 + 1"}))
        .await;
    assert_eq!((status, &result["value"]), (200, &json!(2)), "{result}");
    server.delete(&format!("/sessions/{id}"), Some(TOKEN)).await;
    server.stop().await;
}

/// A stand-in agent that says it is ready and then breaks the protocol: a header that
/// claims 0xfffffff0 bytes, or a frame that is not JSON.
const LIAR: &str = r#"import json, os, struct, time
def send(raw):
    os.write(1, raw)
def frame(message):
    body = json.dumps(message).encode()
    return struct.pack(">I", len(body)) + body
def read_exact(n):
    data = b""
    while len(data) < n:
        chunk = os.read(0, n - len(data))
        if not chunk:
            raise SystemExit(0)
        data += chunk
    return data
send(frame({"type": "ready", "protocol": 1, "preloaded": [], "failed": []}))
while True:
    message = json.loads(read_exact(struct.unpack(">I", read_exact(4))[0]))
    if message.get("type") == "ping":
        send(frame({"type": "pong"}))
        continue
    if "huge" in message.get("code", ""):
        send(struct.pack(">I", 0xfffffff0) + b"x" * 64)
    else:
        send(struct.pack(">I", 9) + b"not json!")
    time.sleep(3600)
"#;

/// The sandbox image with [`LIAR`] in place of its agent: compiled to the agent's entry,
/// the file sandboxes start (see docker/Dockerfile); removed on drop.
struct LiarImage(String);

impl LiarImage {
    fn build() -> LiarImage {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("liar.py"), LIAR).expect("write liar.py");
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "FROM {}\nUSER root\nCOPY liar.py /opt/liar.py\n\
                 RUN python3 -c \"import py_compile; py_compile.compile('/opt/liar.py', \
                 cfile='/opt/runbox/agent/__main__.pyc', doraise=True)\"\nUSER 1000:1000\n",
                sandbox_image()
            ),
        )
        .expect("write Dockerfile");
        let tag = format!("runbox-test-liar:{}", std::process::id());
        let output = Command::new("docker")
            .args(["build", "-q", "-t", &tag])
            .arg(dir.path())
            .output()
            .expect("docker build");
        assert!(
            output.status.success(),
            "building the liar image failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        LiarImage(tag)
    }
}

impl Drop for LiarImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sandbox_that_breaks_the_protocol_fails_its_run_not_the_server() {
    let liar = LiarImage::build();
    // The stand-in speaks stdio only; the http transport meets the same check.
    let server = Server::start_with(Options {
        transport: Some("stdio"),
        sandbox_yaml: format!("image: {:?}", liar.0),
        ..Options::default()
    })
    .await;
    for code in ["huge", "garbage"] {
        let started = Instant::now();
        let (status, result) = server
            .post("/execute", Some(TOKEN), &json!({"code": code}))
            .await;
        assert_eq!(status, 200, "{code}: {result}");
        assert_eq!(result["success"], false, "{result}");
        assert_eq!(result["error"]["kind"], "sandbox", "{result}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "answered at once, not at a timeout"
        );
    }
    let (status, body) = server.runcode("python", "huge", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("protocol"), "{body}");
    let left = server
        .wait_containers_at_most(0, Duration::from_secs(20))
        .await;
    assert!(
        left.is_empty(),
        "the lying sandboxes are destroyed: {left:?}"
    );
    let health = server.health().await;
    assert_eq!(health["status"], "ok", "{health}");
    server.stop().await;
    drop(liar);
}

const BEFORE_SLEEP: &str = "import time\nprint('before', flush=True)\ntime.sleep(10)";

#[tokio::test(flavor = "multi_thread")]
async fn output_written_before_a_timeout_is_kept() {
    let server = Server::start_with(Options {
        timeout: "2s",
        ..Options::default()
    })
    .await;
    let body = json!({"code": BEFORE_SLEEP, "timeout": 1});
    let (status, result) = server.post("/execute", Some(TOKEN), &body).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["error"]["kind"], "timeout", "{result}");
    assert_eq!(result["stdout"], "before\n", "{result}");

    let response = server
        .client
        .post(server.url("/execute"))
        .bearer_auth(TOKEN)
        .json(&json!({"code": BEFORE_SLEEP, "timeout": 1, "stream": true}))
        .send()
        .await
        .expect("stream");
    let events = crate::sse::SseReader::new(response, Instant::now())
        .collect()
        .await;
    let last = events.last().expect("events");
    assert_eq!(last.name, "result", "{events:?}");
    assert_eq!(last.data["error"]["kind"], "timeout", "{events:?}");
    assert_eq!(last.data["stdout"], "before\n", "{events:?}");

    let (status, session) = server
        .post("/sessions", Some(TOKEN), &json!({"language": "python"}))
        .await;
    assert_eq!(status, 201, "{session}");
    let id = session["id"].as_str().expect("session id");
    let (status, result) = server
        .post(&format!("/sessions/{id}/execute"), Some(TOKEN), &body)
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["error"]["kind"], "timeout", "{result}");
    assert_eq!(result["stdout"], "before\n", "{result}");
    let (status, _) = server
        .post(
            &format!("/sessions/{id}/execute"),
            Some(TOKEN),
            &json!({"code": "1"}),
        )
        .await;
    assert_eq!(status, 410, "a timeout still ends the session");

    let code = "import time\n\ndef slow():\n    print('before', flush=True)\n    time.sleep(10)\n";
    let (status, body) = server
        .post(
            "/functions",
            Some(TOKEN),
            &json!({"name": "slow", "code": code, "timeout": 1}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, result) = server
        .post("/functions/slow/call", Some(TOKEN), &json!({}))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["error"]["kind"], "timeout", "{result}");
    assert_eq!(result["stdout"], "before\n", "{result}");
    let (status, started) = server
        .post("/functions/slow/call", Some(TOKEN), &json!({"async": true}))
        .await;
    assert_eq!(status, 202, "{started}");
    let task = started["task_id"].as_str().expect("task id");
    let (status, result) = server
        .get(&format!("/tasks/{task}/result?wait=30"), Some(TOKEN))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["error"]["kind"], "timeout", "{result}");
    assert_eq!(result["stdout"], "before\n", "{result}");

    // The contract of /runcode on a timeout stays as it was.
    let (status, body) = server.runcode("python", BEFORE_SLEEP, json!({})).await;
    assert_eq!(
        (status, body),
        (200, json!({"error": "Code execution timed out"}))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn files_that_are_not_what_their_name_says_are_not_images() {
    let server = Server::start().await;
    let code = "open('page.png', 'w').write('<html><script>alert(1)</script></html>')\n\
                open('real.png', 'wb').write(b'\\x89PNG\\r\\n\\x1a\\n' + bytes(16))\n\
                open('fake.svg', 'w').write('<html><svg></svg></html>')\n\
                open('real.svg', 'w').write('<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>')";
    let (status, result) = server
        .post("/execute", Some(TOKEN), &json!({"code": code}))
        .await;
    assert_eq!(status, 200, "{result}");
    let mut names: Vec<&str> = result["images"]
        .as_array()
        .expect("images")
        .iter()
        .filter_map(|image| image["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["real.png", "real.svg"], "{result}");

    let (status, body) = server.runcode("python", code, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let images = body["images"].as_object().expect("images");
    assert!(images.contains_key("real.png") && !images.contains_key("page.png"));
    let url = images["real.png"].as_str().expect("url");
    let image = server.client.get(url).send().await.expect("image");
    assert_eq!(
        image
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/png")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_s_background_work_does_not_run_between_executions() {
    let server = Server::start().await;
    let (status, session) = server
        .post("/sessions", Some(TOKEN), &json!({"language": "python"}))
        .await;
    assert_eq!(status, 201, "{session}");
    let id = session["id"].as_str().expect("session id");
    let path = format!("/sessions/{id}/execute");
    let start = "import subprocess, threading, time\n\
                 ticks = []\n\
                 def tick():\n    while True:\n        ticks.append(time.time())\n        time.sleep(0.05)\n\
                 threading.Thread(target=tick, daemon=True).start()\n\
                 child = subprocess.Popen(['sh', '-c', 'while :; do date +%s.%N >> /tmp/child-ticks; sleep 0.05; done'])\n\
                 time.sleep(0.5)\n\
                 mark = time.time()\n\
                 len(ticks) > 3";
    let (status, result) = server
        .post(&path, Some(TOKEN), &json!({"code": start}))
        .await;
    assert_eq!((status, &result["value"]), (200, &json!(true)), "{result}");

    tokio::time::sleep(Duration::from_secs(2)).await;

    let check = "now = time.time()\n\
                 child_ticks = [float(t) for t in open('/tmp/child-ticks').read().split()]\n\
                 idle = lambda ts: [t for t in ts if mark + 0.3 < t < now - 0.3]\n\
                 time.sleep(0.5)\n\
                 [len(idle(ticks)), len(idle(child_ticks)), len([t for t in ticks if t > now]) > 3]";
    let (status, result) = server
        .post(&path, Some(TOKEN), &json!({"code": check}))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(
        result["value"],
        json!([0, 0, true]),
        "nothing ran in the 2 s between the executions, and it runs again within one: {result}"
    );
    server.delete(&format!("/sessions/{id}"), Some(TOKEN)).await;
    server.stop().await;
}
