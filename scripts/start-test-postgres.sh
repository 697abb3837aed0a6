#!/usr/bin/env bash
# Starts a private, throw-away PostgreSQL cluster for runbox's store tests and prints
# its URL as the last line of stdout (everything else goes to stderr), so callers can do
#
#   export RUNBOX_TEST_POSTGRES_URL="$(scripts/start-test-postgres.sh)"
#
#   scripts/start-test-postgres.sh [DIR]     (default DIR: ${RUNBOX_PG_DIR:-/tmp/runbox-pg})
#
# Environment: RUNBOX_PG_PORT (default 55432). Idempotent: installs the Debian
# `postgresql` package only if no server binaries are present, runs initdb only once,
# starts the server only if it is not already running, creates `runbox_test` only if
# missing. The cluster uses trust authentication and listens on 127.0.0.1 only, so it is
# for tests, never for data anyone cares about. Stop it with
#   runuser -u postgres -- /usr/lib/postgresql/*/bin/pg_ctl -D DIR/data stop
set -euo pipefail

DIR="${1:-${RUNBOX_PG_DIR:-/tmp/runbox-pg}}"
PORT="${RUNBOX_PG_PORT:-55432}"
DB=runbox_test
DATA="$DIR/data"
LOG="$DIR/log"

log() { printf '[start-test-postgres] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# Any command failing that is not handled below still names itself instead of exiting
# silently under `set -e`.
trap 'die "command failed (line $LINENO): $BASH_COMMAND"' ERR

[[ "$PORT" =~ ^[0-9]+$ ]] || die "RUNBOX_PG_PORT must be a number, got '$PORT'"
[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and runs the server as user postgres)"

# Runs a command as the postgres OS user; the server refuses to run as root.
as_postgres() {
    if command -v runuser >/dev/null; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
}

find_bindir() {
    # Newest installed major version wins when several are present.
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

BIN="$(find_bindir || true)"
if [[ -z "$BIN" || ! -x "$BIN/initdb" ]]; then
    command -v apt-get >/dev/null || die "PostgreSQL is not installed and there is no apt-get to install it"
    log "installing the postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq postgresql >/dev/null \
        || { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; } \
        || die "could not install the postgresql package"
    BIN="$(find_bindir || true)"
    [[ -n "$BIN" && -x "$BIN/initdb" ]] || die "postgresql installed but no initdb under /usr/lib/postgresql/*/bin"
fi
id postgres >/dev/null 2>&1 || die "the postgres OS user does not exist (broken postgresql install?)"
command -v psql >/dev/null || die "psql not found (install postgresql-client)"
MAJOR="$(basename "$(dirname "$BIN")")"

mkdir -p "$DIR"
chown postgres "$DIR"
as_postgres test -w "$DIR" -a -x "$DIR" \
    || die "user postgres cannot write $DIR (are its parent directories traversable?)"

if [[ -f "$DATA/PG_VERSION" ]]; then
    have="$(cat "$DATA/PG_VERSION")"
    [[ "$have" == "$MAJOR" ]] \
        || die "$DATA holds a PostgreSQL $have cluster but the binaries are version $MAJOR; remove $DIR or pick another directory"
elif [[ -d "$DATA" && -n "$(ls -A "$DATA")" ]]; then
    die "$DATA exists, is not empty and is not a cluster (a failed initdb?); remove it"
else
    log "initialising a PostgreSQL $MAJOR cluster in $DATA"
    as_postgres "$BIN/initdb" -D "$DATA" -A trust -U postgres -E UTF8 --no-locale >/dev/null \
        || die "initdb failed"
fi

if as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    # Line 4 of postmaster.pid is the port the running server listens on.
    running_port="$(sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || true)"
    [[ "$running_port" == "$PORT" ]] \
        || die "the cluster in $DATA is already running on port ${running_port:-?}, not $PORT"
    log "already running on 127.0.0.1:$PORT"
else
    # Something else answering on the port would make us test against a foreign server.
    if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 2; then
        die "another server already listens on 127.0.0.1:$PORT; set RUNBOX_PG_PORT to a free port"
    fi
    log "starting on 127.0.0.1:$PORT (log: $LOG)"
    if ! as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
        -o "-p $PORT -k '$DIR' -c listen_addresses=127.0.0.1" start >/dev/null; then
        tail -n 20 "$LOG" >&2 || true
        die "the server did not start (see $LOG)"
    fi
fi

"$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 30 || die "the server on 127.0.0.1:$PORT does not accept connections"

exists="$(psql -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$DB'")" || die "cannot query the server on 127.0.0.1:$PORT"
if [[ "$exists" != 1 ]]; then
    log "creating database $DB"
    psql -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qc "CREATE DATABASE $DB" >/dev/null \
        || die "could not create database $DB"
fi

echo "postgres://postgres@127.0.0.1:$PORT/$DB"
