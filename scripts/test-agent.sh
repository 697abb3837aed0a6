#!/usr/bin/env bash
# Tests the sandbox agent (the package docker/agent/) and image (docker/Dockerfile):
#   1. builds the image from docker/ on BASE_IMAGE as runbox-sandbox:agent-test;
#   2. docker/tests/test_agent.py and test_outputs.py against agent processes started
#      inside one container of that image (the tests run user code, which must never run
#      on the host itself);
#   3. docker/tests/test_container.py against containers under runbox's limits and
#      seccomp profile (matplotlib without stderr, fork bomb, OOM, preload, http,
#      measured figures).
# Removes every container it started and the image it built. Exits non-zero on any
# failure.
#
#   scripts/test-agent.sh            BASE_IMAGE (default runbox-base:bookworm)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_IMAGE="${BASE_IMAGE:-runbox-base:bookworm}"
TAG="runbox-sandbox:agent-test"
RUN_ID="$$-$(date +%s)"
export PYTHONDONTWRITEBYTECODE=1

log() { printf '[test-agent] %s\n' "$*" >&2; }

built_id=""
cleanup() {
    local ids
    ids="$(docker ps -aq --filter "label=runbox-agent-test=$RUN_ID" 2>/dev/null || true)"
    if [[ -n "$ids" ]]; then
        # shellcheck disable=SC2086
        docker rm -f $ids >/dev/null 2>&1 || true
    fi
    # Only the image this run built, and only while the tag still names it.
    if [[ -n "$built_id" && "$(docker image inspect -f '{{.Id}}' "$TAG" 2>/dev/null)" == "$built_id" ]]; then
        docker rmi "$TAG" >/dev/null || log "warning: could not remove $TAG"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

status=0

command -v docker >/dev/null || { log "error: docker not found"; exit 1; }
docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 \
    || { log "error: base image $BASE_IMAGE missing (scripts/bootstrap-base-image.sh builds it)"; exit 1; }

log "building $TAG on $BASE_IMAGE"
started=$(date +%s)
if ! docker build -q --force-rm --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$TAG" "$ROOT/docker" \
        > "${TMPDIR:-/tmp}/test-agent-build-$RUN_ID.log" 2>&1; then
    cat "${TMPDIR:-/tmp}/test-agent-build-$RUN_ID.log" >&2
    rm -f "${TMPDIR:-/tmp}/test-agent-build-$RUN_ID.log"
    log "error: the image did not build"
    exit 1
fi
rm -f "${TMPDIR:-/tmp}/test-agent-build-$RUN_ID.log"
built_id="$(docker image inspect -f '{{.Id}}' "$TAG")"
log "built in $(( $(date +%s) - started )) s; label runbox.agent=$(docker image inspect -f '{{index .Config.Labels "runbox.agent"}}' "$TAG")"
[[ "$(docker image inspect -f '{{index .Config.Labels "runbox.agent"}}' "$TAG")" == "1" ]] \
    || { log "error: the image lacks the runbox.agent label"; status=1; }

log "agent process tests (inside a container, under a pids and memory limit and runbox's seccomp profile)"
docker run --rm -i --label "runbox-agent-test=$RUN_ID" --pids-limit 256 --memory 2g \
    --cap-drop ALL --security-opt no-new-privileges --network none \
    --security-opt "seccomp=$ROOT/crates/sandbox/seccomp/runbox.json" \
    -v "$ROOT/docker:/src:ro" -w /src/tests -e PYTHONDONTWRITEBYTECODE=1 \
    "$TAG" python3 -m unittest test_agent test_outputs || status=1

log "container tests"
(cd "$ROOT/docker/tests" && RUNBOX_TEST_IMAGE="$TAG" RUNBOX_TEST_RUN_ID="$RUN_ID" \
    python3 -m unittest -v test_container) || status=1

if [[ $status -ne 0 ]]; then
    log "FAILED"
else
    log "all passed"
fi
exit "$status"
