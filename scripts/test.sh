#!/usr/bin/env bash
# Runs every check and test of runbox on a fresh machine: installs what is missing
# (debootstrap, PostgreSQL, Chromium), builds the offline base image and the sandbox
# image, then runs formatting, lints, unit tests, the agent's tests, the store tests on
# SQLite and PostgreSQL, the black-box suite against real Docker for both stores and
# both transports (the MCP scenarios, with the official MCP SDK as the client, among
# them), the OpenAPI check (openapi-spec-validator and schemathesis) and the Python
# client's own tests.
#
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --quick    one black-box pass (SQLite, stdio) after the unit tests
#
# Fails loudly: the first failing step stops the run with its name.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=false
[[ "${1:-}" == "--quick" ]] && QUICK=true
# The OCI runtimes the hostile suite runs under on the test engines.
ISOLATION_RUNTIMES="${RUNBOX_TEST_ISOLATION_RUNTIMES:-runc crun runsc}"

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }
trap 'die "line $LINENO: $BASH_COMMAND"' ERR

# A fresh machine may run this while its Docker engine is still starting, or before
# anything started it: wait for the engine, and start it ourselves when we may (root,
# dockerd installed). Any failure names what docker said and where the engine logged.
docker_reachable_within() {
    local deadline=$((SECONDS + $1))
    while true; do
        docker info >/dev/null 2>&1 && return 0
        ((SECONDS >= deadline)) && return 1
        sleep 1
    done
}
ensure_docker_engine() {
    docker_reachable_within 20 && return 0
    local why
    why="$(docker info 2>&1 | tail -n 3 || true)"
    if [[ "$(id -u)" != 0 ]] || ! command -v dockerd >/dev/null; then
        die "cannot reach the Docker engine (is it running, may this user use it?): $why"
    fi
    step "starting the Docker engine (docker said: $why)"
    local log="${TMPDIR:-/tmp}/runbox-dockerd.log"
    if [[ -x /etc/init.d/docker ]]; then
        /etc/init.d/docker start >>"$log" 2>&1 || true
    fi
    if ! docker_reachable_within 15; then
        rm -f /var/run/docker.pid
        setsid nohup dockerd >>"$log" 2>&1 </dev/null &
    fi
    docker_reachable_within 120 && return 0
    tail -n 30 "$log" >&2 || true
    die "the Docker engine did not come up within two minutes (its log: $log)"
}

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE=1

step "checking the tools"
command -v cargo >/dev/null || die "cargo is not installed (https://rustup.rs)"
command -v docker >/dev/null || die "the docker CLI is not installed"
ensure_docker_engine
command -v python3 >/dev/null || die "python3 is needed by scripts/concurrent_test.py"

step "base image (offline bootstrap when python:3.12-slim is not available)"
if ! docker image inspect python:3.12-slim >/dev/null 2>&1; then
    scripts/bootstrap-base-image.sh
fi

step "headless Chromium for the playground test"
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    command -v apt-get >/dev/null || die "Chromium is missing and there is no apt-get to install it"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq chromium >/dev/null \
        || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
        || die "could not install chromium"
fi

step "the official MCP SDK for the MCP tests (a cached virtualenv)"
MCP_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/runbox/mcp-venv"
if [[ ! -x "$MCP_VENV/bin/python" ]] || ! cmp -s tests/mcp/requirements.txt "$MCP_VENV/.requirements"; then
    rm -rf "$MCP_VENV"
    python3 -m venv "$MCP_VENV"
    "$MCP_VENV/bin/python" -m pip install --disable-pip-version-check -q -r tests/mcp/requirements.txt \
        || die "could not install the MCP SDK (tests/mcp/requirements.txt)"
    cp tests/mcp/requirements.txt "$MCP_VENV/.requirements"
fi
export RUNBOX_TEST_MCP_PYTHON="$MCP_VENV/bin/python"

step "PostgreSQL for the store and black-box tests"
RUNBOX_TEST_POSTGRES_URL="$(scripts/start-test-postgres.sh)"
export RUNBOX_TEST_POSTGRES_URL

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "building"
cargo build --workspace --all-targets --locked

step "sandbox image"
./target/debug/runbox --config config.yaml image build >/dev/null

step "the sandbox agent (its own tests, inside containers)"
scripts/test-agent.sh

step "unit tests and store tests (SQLite and PostgreSQL)"
cargo test --workspace --lib --bins --locked

step "the one-way rules: no import circle, the HTTP surface only through the runtime"
cargo test --locked --test architecture
cargo test -p runbox-store --tests --locked

black_box() {
    local store="$1" transport="$2"
    step "black-box suite: store=$store transport=$transport"
    # The tests of several engines and the cluster on three hosts need the test
    # engines: they run with them, below.
    if [[ "$store" == postgres ]]; then
        RUNBOX_TEST_ENGINE_1_HOST="" RUNBOX_TEST_TRANSPORT="$transport" \
            cargo test --locked --test api -- --test-threads 2 --skip cluster_hosts::
    else
        RUNBOX_TEST_ENGINE_1_HOST="" RUNBOX_TEST_POSTGRES_URL="" RUNBOX_TEST_TRANSPORT="$transport" \
            cargo test --locked --test api -- --test-threads 2 --skip cluster_hosts::
    fi
}

# Two passes cover each store and each transport once: what a store changes is checked
# below the API too (the store tests run on both), and nothing the transport changes
# depends on the store.
black_box sqlite stdio
if ! $QUICK; then
    black_box postgres http
fi

if ! $QUICK; then
    # Engine 3 is the one the cluster suite freezes (SIGSTOP): nobody else uses it.
    step "test engines: three more Docker engines (crun, runsc; one with userns-remap)"
    ENGINES_ENV="$(RUNBOX_TEST_ENGINES=3 RUNBOX_TEST_ENGINE_USERNS=1 scripts/start-test-engines.sh start)" \
        || die "the test engines did not start"
    trap 'scripts/start-test-engines.sh stop >/dev/null 2>&1 || true' EXIT
    # Each command says `|| return 1`: errexit does not hold inside a function (or a
    # subshell) whose status is tested, so a failing suite would otherwise go unseen.
    engine_suites() {
        set -a; . "$ENGINES_ENV" || return 1; set +a
        local runtime
        for runtime in $ISOLATION_RUNTIMES; do
            step "the hostile suite and the isolation tiers under $runtime (test engine 2)"
            DOCKER_HOST="$RUNBOX_TEST_ENGINE_2_HOST" ./target/debug/runbox --config config.yaml image build >/dev/null \
                || return 1
            DOCKER_HOST="$RUNBOX_TEST_ENGINE_2_HOST" RUNBOX_TEST_RUNTIME="$runtime" \
                RUNBOX_TEST_POSTGRES_URL="" RUNBOX_TEST_TRANSPORT=stdio \
                cargo test --locked --test api -- hostile_code isolation seccomp --test-threads 2 \
                || { printf 'the suite under %s failed\n' "$runtime" >&2; return 1; }
        done
        step "the hostile suite and the isolation tiers under userns-remap (test engine 1)"
        DOCKER_HOST="$RUNBOX_TEST_ENGINE_1_HOST" ./target/debug/runbox --config config.yaml image build >/dev/null \
            || return 1
        DOCKER_HOST="$RUNBOX_TEST_ENGINE_1_HOST" RUNBOX_TEST_EXPECT_USERNS="$RUNBOX_TEST_ENGINE_1_USERNS_UID_BASE" \
            RUNBOX_TEST_POSTGRES_URL="" RUNBOX_TEST_TRANSPORT=stdio \
            cargo test --locked --test api -- hostile_code isolation --test-threads 2 \
            || { printf 'the suite under userns-remap failed\n' >&2; return 1; }
        step "several engines per replica: engine 1 on its socket, engine 2 over mutual TLS"
        RUNBOX_TEST_POSTGRES_URL="" RUNBOX_TEST_TRANSPORT=stdio \
            cargo test --locked --test api -- several_engines --test-threads 2 \
            || { printf 'the suite of several engines failed\n' >&2; return 1; }
        step "the cluster on three hosts (the machine's engine, test engines 1 and 2; 3 frozen)"
        local n host
        for n in 1 2 3; do
            host="RUNBOX_TEST_ENGINE_${n}_HOST"
            DOCKER_HOST="${!host}" ./target/debug/runbox --config config.yaml image build >/dev/null \
                || return 1
        done
        RUNBOX_TEST_TRANSPORT=stdio cargo test --locked --test api -- cluster_hosts:: --test-threads 1 \
            || { printf 'the cluster suite on three hosts failed\n' >&2; return 1; }
    }
    ( engine_suites ) || die "a suite on the test engines failed"
    scripts/start-test-engines.sh stop >/dev/null
    trap - EXIT

    step "OpenAPI: the description validates and schemathesis finds no 5xx"
    scripts/check-openapi.py
fi

step "the Python client (clients/python) against target/debug/runbox"
scripts/test-python-client.sh

step "no container left behind"
left="$(docker ps -aq --filter label=runbox.managed)"
[[ -z "$left" ]] || die "containers left after the tests: $left"

step "all tests passed"
