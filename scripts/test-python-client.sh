#!/usr/bin/env bash
# Checks the Python client (clients/python) against a real runbox server:
#   1. a cached virtualenv with the pinned tools of clients/python/requirements-dev.txt
#      (rebuilt when the pins or the interpreter change);
#   2. `pip install ./clients/python` into it, as a user installs it;
#   3. a fresh virtualenv holding nothing but `pip install ./clients/python` (its
#      declared dependencies, resolved as a user's pip resolves them), in which the
#      README's example runs;
#   4. mypy --strict on the package and its tests;
#   5. pytest: the tests start one server from RUNBOX_BIN and stop it with SIGTERM.
#
#   RUNBOX_BIN=target/debug/runbox scripts/test-python-client.sh
#
# Builds no Rust: the binary must exist (CI builds it first). Needs Docker, Python 3.9+
# (PYTHON, default python3) and the package index. Fails loudly, naming the step.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }
trap 'die "line $LINENO: $BASH_COMMAND"' ERR

BIN="${RUNBOX_BIN:-target/debug/runbox}"
[[ "$BIN" == /* ]] || BIN="$ROOT/$BIN"
[[ -x "$BIN" ]] || die "no runbox binary at $BIN: build it first (cargo build) or set RUNBOX_BIN"
export RUNBOX_BIN="$BIN"

command -v docker >/dev/null || die "the docker CLI is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine: $(docker info 2>&1 | tail -n 1)"

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || die "$PYTHON is not installed"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
    || die "the client needs Python 3.9 or newer; $PYTHON is $("$PYTHON" -V 2>&1)"

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/runbox"
VENV="$CACHE/python-client-venv"
REQUIREMENTS=clients/python/requirements-dev.txt
PIP=(-m pip --disable-pip-version-check -q)
export MYPY_CACHE_DIR="$CACHE/python-client-mypy"

wanted="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1) $("$PYTHON" -c 'import sys; print(sys.version.split()[0], sys.executable)')"
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.runbox-pins" 2>/dev/null)" != "$wanted" ]]; then
    step "virtualenv with the pinned tools: $VENV"
    rm -rf "$VENV"
    mkdir -p "$CACHE"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" "${PIP[@]}" install -r "$REQUIREMENTS"
    printf '%s' "$wanted" >"$VENV/.runbox-pins"
fi

step "pip install ./clients/python (into the tools' virtualenv)"
"$VENV/bin/python" "${PIP[@]}" uninstall -y runbox-client >/dev/null 2>&1 || true
# The pinned build backend builds it, so that a new backend cannot change a CI run.
"$VENV/bin/python" "${PIP[@]}" install --no-build-isolation ./clients/python
"$VENV/bin/python" "${PIP[@]}" check

step "a fresh virtualenv: pip install ./clients/python and nothing else"
FRESH="$(mktemp -d "${TMPDIR:-/tmp}/runbox-client-fresh.XXXXXX")"
trap 'rm -rf "$FRESH"' EXIT
"$PYTHON" -m venv "$FRESH"
"$FRESH/bin/python" "${PIP[@]}" install ./clients/python
(cd "$FRESH" && "$FRESH/bin/python" -c 'import runbox_client, sys; sys.exit("site-packages" not in runbox_client.__file__)') \
    || die "runbox_client was not imported from the installed package"
export RUNBOX_README_PYTHON="$FRESH/bin/python"

step "mypy --strict (the package and its tests)"
(cd clients/python && "$VENV/bin/mypy" --strict src/runbox_client tests)

step "pytest against a runbox server started from $RUNBOX_BIN"
(cd clients/python && "$VENV/bin/python" -m pytest -q -ra)

step "the Python client passed"
