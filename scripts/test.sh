#!/usr/bin/env bash
# Runs every check and test of runbox on a fresh machine: installs what is missing
# (debootstrap, PostgreSQL, Chromium), builds the offline base image and the sandbox
# image, then runs formatting, lints, unit tests, the agent's tests, the store tests on
# SQLite and PostgreSQL, the black-box suite against real Docker for both stores and
# both transports, and the OpenAPI check (openapi-spec-validator and schemathesis).
#
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --quick    one black-box pass (SQLite, stdio) after the unit tests
#
# Fails loudly: the first failing step stops the run with its name.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=false
[[ "${1:-}" == "--quick" ]] && QUICK=true

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }
trap 'die "line $LINENO: $BASH_COMMAND"' ERR

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE=1

step "checking the tools"
command -v cargo >/dev/null || die "cargo is not installed (https://rustup.rs)"
command -v docker >/dev/null || die "the docker CLI is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is it running, may this user use it?)"
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
cargo test -p runbox-store --tests --locked

black_box() {
    local store="$1" transport="$2"
    step "black-box suite: store=$store transport=$transport"
    if [[ "$store" == postgres ]]; then
        RUNBOX_TEST_TRANSPORT="$transport" cargo test --locked --test api -- --test-threads 2
    else
        RUNBOX_TEST_POSTGRES_URL="" RUNBOX_TEST_TRANSPORT="$transport" \
            cargo test --locked --test api -- --test-threads 2
    fi
}

black_box sqlite stdio
if ! $QUICK; then
    black_box postgres http
    black_box postgres stdio
    black_box sqlite http
fi

if ! $QUICK; then
    step "OpenAPI: the description validates and schemathesis finds no 5xx"
    scripts/check-openapi.py
fi

step "no container left behind"
left="$(docker ps -aq --filter label=runbox.managed)"
[[ -z "$left" ]] || die "containers left after the tests: $left"

step "all tests passed"
