#!/usr/bin/env bash
# Builds the sandbox base image offline-friendly: a minimal Debian bookworm root file
# system with Python and the scientific stack taken from Debian's own packages, imported
# as a Docker image. Used when `python:3.12-slim` is neither present nor pullable.
#
#   scripts/bootstrap-base-image.sh [TAG]        (default TAG: runbox-base:bookworm)
#
# Environment: DEBIAN_MIRROR (default: debootstrap's own default mirror),
# RUNBOX_CACHE_DIR (default: ~/.cache/runbox) keeps the root file system tarball so a
# later run (or a fresh Docker engine) re-imports it in seconds.
set -euo pipefail

TAG="${1:-runbox-base:bookworm}"
SUITE=bookworm
PACKAGES=python3,python3-numpy,python3-pandas,python3-matplotlib,python3-pil,python3-pip,python3-venv,ca-certificates,procps
CACHE_DIR="${RUNBOX_CACHE_DIR:-${HOME:-/root}/.cache/runbox}"
# The package list is part of the cache key so that changing it rebuilds the tarball.
CACHE_KEY="$(printf '%s %s' "$SUITE" "$PACKAGES" | sha256sum | cut -c1-12)"
TARBALL="$CACHE_DIR/base-$SUITE-$CACHE_KEY.tar"

log() { printf '[bootstrap-base-image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v docker >/dev/null || die "docker CLI not found; install Docker first"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is it running, may this user use it?)"

if docker image inspect "$TAG" >/dev/null 2>&1; then
    log "$TAG already present"
    exit 0
fi

if [[ ! -s "$TARBALL" ]]; then
    [[ $(id -u) -eq 0 ]] || die "debootstrap needs root (run with sudo)"
    if ! command -v debootstrap >/dev/null; then
        command -v apt-get >/dev/null || die "debootstrap missing and no apt-get to install it"
        log "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; } \
            || die "could not install debootstrap"
    fi
    ROOTFS="$(mktemp -d)"
    trap 'rm -rf "$ROOTFS"' EXIT
    log "debootstrap $SUITE into $ROOTFS (about two minutes)"
    # shellcheck disable=SC2086
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" ${DEBIAN_MIRROR:-} \
        > "$ROOTFS.log" 2>&1 || { tail -n 30 "$ROOTFS.log" >&2; die "debootstrap failed (log above)"; }
    rm -f "$ROOTFS.log"
    log "trimming caches and docs"
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
        "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/*
    mkdir -p "$CACHE_DIR"
    tar -C "$ROOTFS" --numeric-owner -cf "$TARBALL.partial" .
    mv "$TARBALL.partial" "$TARBALL"
else
    log "re-using cached root file system $TARBALL"
fi

log "docker import as $TAG"
docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$TARBALL" "$TAG" >/dev/null
log "done: $TAG"
