#!/usr/bin/env python3
"""Checks runbox's OpenAPI description against a running server.

1. Validates /openapi.json with openapi-spec-validator.
2. Runs schemathesis against every operation (the compatibility surface, /execute,
   /sessions, /functions, /tasks, /health, /image and the pages), with a bearer token, a
   bounded number of examples per operation and a bounded total time, and fails on any
   5xx answer or dropped connection (`not_a_server_error`; a panic in a handler shows as
   a connection closed without a response), and on any answer the description does not
   describe (status, content type, headers, body) — so the description cannot drift
   from what the server does.
3. Fails when the server logged a panic, or left a container behind.

    scripts/check-openapi.py                      # starts a debug server of its own
    scripts/check-openapi.py --url http://127.0.0.1:8000 --token 114514

Without --url it starts ./target/debug/runbox (built when missing) on port 0 with a
temporary configuration: a warm pool of one, short timeouts, and a pip index at an
address where nothing listens. The tools live in a virtualenv under
${RUNBOX_CACHE_DIR:-~/.cache/runbox}/venv, created and pinned here.

What schemathesis may not do, and why:
- Function definitions (POST /functions, POST /submit, PUT /functions/{name}) are sent
  without `dependencies`: every new dependency set starts an environment build (pip, with
  network, ~seconds each), and generated requirement names would make it try hundreds.
  The environment builds have their own tests (tests/api/functions.rs); the unreachable
  pip index is the backstop should a dependency slip through.
- The examples of function definitions and sessions are fewer (each one starts a sandbox,
  and sessions stop at the per-subject cap anyway).
- Function operations that take a `{name}` use a function this script stores first
  (`echo`), so that calls, versions and termination reach past the 404; DELETE does not,
  or it would delete it. `GET /image/{name}` uses an image a run of this script drew.

Exits 0 when everything passed; prints a short summary either way.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ElementTree
from pathlib import Path

SCHEMATHESIS = "schemathesis==4.32.5"
SPEC_VALIDATOR = "openapi-spec-validator==0.9.0"
ROOT = Path(__file__).resolve().parent.parent
# No 5xx and no dropped connection; every status, content type, header and body as the
# description says; no operation that claims to need a token answers without one.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "ignored_auth",
)
START_TIMEOUT = 120
STOP_TIMEOUT = 60

# A 1x1 PNG, written without matplotlib so that the run is quick.
SEED_IMAGE_CODE = (
    "import base64\n"
    "open('dot.png', 'wb').write(base64.b64decode("
    "'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=='))\n"
)

SEED_FUNCTION = {
    "name": "echo",
    "description": "Repeats a text (stored by scripts/check-openapi.py)",
    "code": "def echo(text: str = 'hi', times: int = 1):\n    return text * max(0, min(times, 100))\n",
    "max_concurrency": 2,
    "timeout": 5,
}

CONFIG = """\
server:
  host: 127.0.0.1
  port: 0
  shutdown_grace: 10s
auth:
  tokens:
    - "{token}"
  jwt_secret: "openapi-check-secret"
database:
  url: "{database_url}"
data_dir: "{data_dir}"
sandbox:
  instance: "{instance}"
  pool:
    size: 1
  preload: []
limits:
  timeout: 5s
  max_timeout: 10s
admission:
  max_concurrent_runs: 2
  max_wait: 30s
sessions:
  idle_timeout: 15s
  max_lifetime: 2m
  max_per_subject: 6
pip:
  index_url: "http://127.0.0.1:9/simple"
functions:
  build_timeout: 60s
"""

# Per-operation settings: fewer examples where each one starts a sandbox of its own, and
# the stored function's name where one is needed.
SCHEMATHESIS_CONFIG = """\
[[operations]]
include-operation-id-regex = "^(create_function|submit_function|put_function)$"
generation.max-examples = {few}

[[operations]]
include-operation-id-regex = "^(create_session)$"
generation.max-examples = {few}

[[operations]]
include-operation-id-regex = "^(get_function|put_function|call_function|terminate_function)$"
parameters = {{ name = "echo" }}

[[operations]]
include-operation-id-regex = "^(get_function_version)$"
parameters = {{ name = "echo", version = 1 }}

[[operations]]
include-operation-id-regex = "^(get_image)$"
parameters = {{ name = "{image}" }}
"""


def main():
    args = parse_args()
    started = time.monotonic()
    venv = ensure_venv()
    work = Path(tempfile.mkdtemp(prefix="runbox-openapi-"))
    server = None
    report = None
    failures = []
    try:
        if args.url:
            url = args.url.rstrip("/")
        else:
            server = Server(work, args.token, args.database_url)
            url = server.start()
        failures += validate_spec(venv, url, work)
        store_seed_function(url, args.token)
        image = store_seed_image(url, args.token)
        report = run_schemathesis(venv, url, args, work, image)
        failures += report["failures"]
        if server is not None:
            failures += server.problems()
    finally:
        if server is not None:
            failures += server.stop()
    summarize(report, failures, time.monotonic() - started)
    if failures:
        print(f"kept for a look: {work} (server.log, openapi.json, schemathesis-report/)")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running runbox server (default: start one)")
    parser.add_argument("--token", default=os.environ.get("RUNBOX_TOKEN", "114514"),
                        help="bearer token with every scope but admin (default: 114514)")
    parser.add_argument("--max-examples", type=int, default=20,
                        help="test cases per operation and phase (default: 20)")
    parser.add_argument("--max-time", type=int, default=270,
                        help="seconds for the whole schemathesis run (default: 270)")
    parser.add_argument("--seed", type=int, help="schemathesis seed, to reproduce a run")
    parser.add_argument("--database-url", default="",
                        help="database of the server this script starts (default: SQLite in "
                             "its temporary data dir)")
    parser.add_argument("--checks", default=",".join(CHECKS),
                        help="schemathesis checks (default: %(default)s)")
    return parser.parse_args()


def log(message):
    print(f"==> {message}", file=sys.stderr, flush=True)


def ensure_venv():
    cache = Path(os.environ.get("RUNBOX_CACHE_DIR") or Path.home() / ".cache" / "runbox")
    venv = cache / "venv"
    python = venv / "bin" / "python"
    pins = venv / ".runbox-openapi-pins"
    wanted = f"{SCHEMATHESIS}\n{SPEC_VALIDATOR}\n"
    if not python.exists():
        log(f"creating the virtualenv {venv}")
        if subprocess.run([sys.executable, "-m", "venv", str(venv)]).returncode != 0:
            raise SystemExit("python3 -m venv failed (Debian: apt-get install python3-venv)")
    if not pins.exists() or pins.read_text() != wanted:
        log(f"installing {SCHEMATHESIS} and {SPEC_VALIDATOR}")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        SCHEMATHESIS, SPEC_VALIDATOR], check=True)
        pins.write_text(wanted)
    return venv


class Server:
    """A runbox of this run: its own data dir, instance label and configuration."""

    def __init__(self, work, token, database_url):
        self.work = work
        self.instance = f"openapi-check-{os.getpid()}-{int(time.time())}"
        self.log_path = work / "server.log"
        (work / "data").mkdir()
        (work / "config.yaml").write_text(CONFIG.format(
            token=token, data_dir=work / "data", instance=self.instance,
            database_url=database_url))
        self.process = None

    def start(self):
        binary = ROOT / "target" / "debug" / "runbox"
        if not binary.exists():
            log("building the debug binary")
            subprocess.run(["cargo", "build", "--locked", "--bin", "runbox"], cwd=ROOT, check=True)
        log(f"starting runbox (instance {self.instance})")
        env = dict(os.environ, RUST_LOG="info")
        env.pop("RUNBOX_CONFIG", None)
        self.process = subprocess.Popen(
            [str(binary), "--config", str(self.work / "config.yaml"), "serve", "--stop-on-stdin-eof"],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log_path.open("wb"), text=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit(f"runbox exited during start-up:\n{self.log_tail()}")
            match = re.match(r"runbox listening on (\S+)", line)
            if match:
                return match.group(1)
        raise SystemExit(f"runbox did not start within {START_TIMEOUT} s:\n{self.log_tail()}")

    def problems(self):
        text = self.log_path.read_text(errors="replace")
        panics = [line for line in text.splitlines() if "panicked" in line]
        return [f"the server panicked: {line.strip()}" for line in panics[:5]]

    def stop(self):
        """Stops the server (closing stdin is its signal) and checks what it left."""
        problems = []
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"runbox did not stop within {STOP_TIMEOUT} s")
                self.process.kill()
                self.process.wait()
        left = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=runbox.instance={self.instance}"],
            capture_output=True, text=True).stdout.split()
        if left:
            problems.append(f"containers left after stop: {' '.join(left)}")
            subprocess.run(["docker", "rm", "-f", *left], capture_output=True)
        return problems

    def log_tail(self, lines=40):
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def request(method, url, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def validate_spec(venv, url, work):
    log("validating /openapi.json")
    status, body = request("GET", f"{url}/openapi.json")
    if status != 200:
        return [f"GET /openapi.json answered {status}"]
    spec_path = work / "openapi.json"
    spec_path.write_bytes(body)
    result = subprocess.run([str(venv / "bin" / "openapi-spec-validator"), str(spec_path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return [f"openapi-spec-validator: {result.stdout.strip()} {result.stderr.strip()}"]
    spec = json.loads(body)
    operations = sum(len([m for m in item if m in ("get", "put", "post", "delete", "patch")])
                     for item in spec["paths"].values())
    log(f"the description is valid OpenAPI {spec['openapi']}: "
        f"{len(spec['paths'])} paths, {operations} operations")
    return []


def store_seed_function(url, token):
    status, body = request("POST", f"{url}/functions", token, SEED_FUNCTION)
    if status not in (201, 409):
        raise SystemExit(f"cannot store the function `echo` ({status}): {body[:500]!r}")


def store_seed_image(url, token):
    """Runs code that writes a PNG; returns the image's stored name."""
    status, body = request("POST", f"{url}/execute", token, {"code": SEED_IMAGE_CODE})
    images = json.loads(body).get("images") if status == 200 else None
    if not images:
        raise SystemExit(f"cannot store an image ({status}): {body[:500]!r}")
    return images[0]["url"].rsplit("/", 1)[-1]


def run_schemathesis(venv, url, args, work, image):
    log(f"schemathesis: at most {args.max_examples} examples per operation and phase, "
        f"at most {args.max_time} s")
    config = work / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG.format(few=max(1, args.max_examples // 4), image=image))
    reports = work / "schemathesis-report"
    command = [
        str(venv / "bin" / "schemathesis"), "--config-file", str(config), "run",
        f"{url}/openapi.json",
        "--checks", args.checks,
        "--max-examples", str(args.max_examples),
        "--max-time", str(args.max_time),
        "--workers", "1",
        "--request-timeout", "90",
        "--header", f"Authorization: Bearer {args.token}",
        "--report", "junit",
        "--report-dir", str(reports),
        "--no-color",
    ]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    env = dict(os.environ, SCHEMATHESIS_HOOKS="openapi_check_hooks",
               PYTHONPATH=str(ROOT / "scripts"))
    started = time.monotonic()
    # Shown as it runs, and kept for the summary.
    output = []
    with subprocess.Popen(command, env=env, cwd=work, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            sys.stdout.write(line)
            output.append(line)
    result = process
    elapsed = time.monotonic() - started
    report = {"failures": [], "seconds": elapsed, "junit": None, "cases": None}
    for junit in sorted(reports.glob("junit*.xml"))[-1:]:
        report["junit"] = ElementTree.parse(junit).getroot()
    counts = re.search(r"^\s*(\d+) generated", "".join(output), re.MULTILINE)
    if counts:
        report["cases"] = int(counts.group(1))
    if result.returncode != 0:
        report["failures"].append(f"schemathesis found failures (exit code {result.returncode})")
    return report


def summarize(report, failures, seconds):
    print("\n--- OpenAPI check ---")
    if report and report["junit"] is not None:
        cases = report["junit"].iter("testcase")
        operations = sum(1 for _ in cases)
        bad = sum(1 for case in report["junit"].iter("testcase")
                  if case.find("failure") is not None or case.find("error") is not None)
        print(f"operations tested: {operations}, with failures or errors: {bad}")
    if report and report["cases"] is not None:
        print(f"test cases: {report['cases']}")
    if report:
        print(f"schemathesis: {report['seconds']:.0f} s; whole check: {seconds:.0f} s")
    for failure in failures:
        print(f"FAILED: {failure}")
    print("OpenAPI check passed" if not failures else "OpenAPI check FAILED")


if __name__ == "__main__":
    sys.exit(main())
