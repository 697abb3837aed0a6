#!/usr/bin/env bash
# Starts and stops extra, private Docker engines on this one machine, each standing in
# for another host: its own network namespace (reached from the host over a veth pair
# with a /30), mount namespace, data root, exec root, socket, pid file, managed
# containerd, bridge and cgroup parent, sharing nothing with the machine's own engine,
# which is left running and untouched (its docker0 and its iptables rules too). Each
# also has a host name of its own (a UTS namespace).
#
#   scripts/start-test-engines.sh start            start (or keep) the engines, write the env file
#   scripts/start-test-engines.sh stop             stop them all and remove what start made
#   scripts/start-test-engines.sh status           what runs
#   scripts/start-test-engines.sh check [N...]     run the image under every runtime of each
#                                                  engine; test mTLS and the uid mapping
#   scripts/start-test-engines.sh churn N [COUNT] [RUNTIME...]
#                                                  time COUNT (20) `docker run --rm` per runtime
#   scripts/start-test-engines.sh freeze N | thaw N   SIGSTOP / SIGCONT engine N's dockerd
#   scripts/start-test-engines.sh env              print the env file's path
#   scripts/start-test-engines.sh purge            stop, then delete the state dir and its caches
#
# start prints the env file's path as the last line of stdout (its log goes to stderr):
#
#   set -a; . "$(scripts/start-test-engines.sh start)"; set +a
#   docker -H "$RUNBOX_TEST_ENGINE_1_HOST" run --rm --runtime crun --network none runbox-base:bookworm true
#   DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH="$RUNBOX_TEST_ENGINE_2_TLS_CERT_PATH" \
#       docker -H "$RUNBOX_TEST_ENGINE_2_TLS_HOST" info
#
# The env file has plain KEY=value lines (no value holds a blank; lists are comma
# separated): RUNBOX_TEST_ENGINES_DIR, RUNBOX_TEST_ENGINES_COUNT, RUNBOX_TEST_ENGINES_IMAGES,
# and for each engine N (1..COUNT) RUNBOX_TEST_ENGINE_<N>_ followed by
#   HOST            unix:// URL of its socket (for docker -H / DOCKER_HOST)
#   SOCKET          the socket's path
#   NETNS           its network namespace (ip netns exec NETNS ..., or nsenter --net=/run/netns/NETNS)
#   NAME            its host name, the Name in `docker info` (same as NETNS)
#   ADDR, HOST_ADDR its address in the namespace, and the host's end of the veth
#   BRIDGE_CIDR     its docker bridge (inside the namespace)
#   PID, CONTAINERD_PID   its dockerd and its containerd
#   RUNTIMES        e.g. crun,runc,runsc
#   STORAGE_DRIVER  e.g. overlay2
#   USERNS_REMAP, USERNS_UID_BASE   the remap user and the host uid of uid 0 inside (empty
#                   without userns-remap)
#   LOG             dockerd's log
#   TLS_HOST        tcp://ADDR:PORT (empty for an engine without TLS), TLS_CERT_PATH (a
#                   DOCKER_CERT_PATH dir: ca.pem, cert.pem, key.pem), TLS_CA, TLS_CERT, TLS_KEY
#
# Each engine:
#   - runs in network namespace PREFIX<N> (default rbte1, rbte2...): veth PREFIX<N>h on the
#     host (NET.N.1/30) to PREFIX<N>n inside (NET.N.2/30), default NET 10.213; its docker
#     bridge, its iptables rules and its containers' networks live inside that namespace.
#     The host reaches every engine; engines reach neither each other nor anything beyond
#     the host (the host forwards nothing for them).
#   - runs dockerd with nsenter --net (not `ip netns exec`, which remounts /sys and so
#     breaks dockerd's devices cgroup) in a mount namespace of its own, a slave of the
#     host's: no container mount of it shows on the host, all go with its last process.
#     Where the cgroup2 mount of a hybrid cgroup host lists controllers (crun then refuses
#     to run anything), that namespace sees an empty /sys/fs/cgroup/unified/cgroup.controllers.
#   - registers crun and runsc (gVisor with --platform=ptrace --network=none, so its
#     containers must run with --network none, and --oci-seccomp, so that a container's
#     seccomp profile is applied inside the sandbox too) when installed; start installs the Debian
#     packages crun and runsc when missing.
#   - gets the images (default runbox-base:bookworm) from the host engine by
#     `docker save | docker load`, only when missing or different there. Data roots are
#     kept across stop and start, so a later start reuses the loaded images.
#
# Environment (all optional):
#   RUNBOX_TEST_ENGINES=2                  how many engines (1..50)
#   RUNBOX_TEST_ENGINES_DIR=${TMPDIR:-/tmp}/runbox-test-engines   state dir; keep it short
#                                          (unix sockets inside it must stay under 108 bytes)
#   RUNBOX_TEST_ENGINES_PREFIX=rbte        names of the netns, veths and cgroups
#   RUNBOX_TEST_ENGINES_NET=10.213         engine N: NET.N.0/30 on its veth pair
#   RUNBOX_TEST_ENGINES_BIP_NET=10.214     engine N's docker bridge: BIP_NET.N.1/24
#   RUNBOX_TEST_ENGINE_TLS=2               engines that also listen with mutual TLS on
#                                          ADDR:PORT (list; empty: none)
#   RUNBOX_TEST_ENGINE_TLS_PORT=2376
#   RUNBOX_TEST_ENGINE_USERNS=             engines started with userns-remap (list, e.g. 1)
#   RUNBOX_TEST_ENGINE_USERNS_USER=runbox-remap   the remap user; made when missing, with
#                                          one 65536-id range in /etc/subuid and /etc/subgid
#   RUNBOX_TEST_ENGINES_IMAGES=runbox-base:bookworm   images to copy in (list; may be empty)
#   RUNBOX_TEST_ENGINES_STORAGE_DRIVER=auto   overlay2 where the kernel mounts overlayfs on
#                                          the state dir, else fuse-overlayfs; vfs works too
#                                          but copies the whole image for every container
#   RUNBOX_TEST_ENGINES_TIMEOUT=90         seconds to wait for an engine to answer
#   RUNBOX_TEST_ENGINES_IMAGE_WAIT=0       seconds to wait for a missing image on the host
#   RUNBOX_TEST_ENGINES_INSTALL=1          0: never run apt-get
#   RUNBOX_TEST_ENGINES_KEEP_ON_FAILURE=0  1: a failed start leaves its engines running
#
# start is idempotent: an engine that runs with the same settings and answers is kept;
# whatever else an earlier run left is torn down first, and a failed start tears down
# what it started. stop ends only processes recorded or found for this state dir, by
# pid: dockerd, its containerd, shims and container processes in the engine's cgroup,
# anything left in its network namespace. It unmounts what is mounted under the state
# dir, deletes the veths and namespaces (the engine bridges inside go with them) and the
# cgroups, and is idempotent and safe after a failed start.
# Needs root, iproute2, util-linux, openssl and curl (installed when missing), and
# Docker's dockerd, containerd and runc. Runs unattended, without a terminal.
set -Eeuo pipefail

PROG="start-test-engines"
STEP="setting up"
log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }
step() { STEP="$*"; log "$*"; }
# shellcheck disable=SC2154 # rc is set inside the trap
trap 'rc=$?; log "error: step \"$STEP\" failed at line $LINENO: $BASH_COMMAND (exit $rc)"; exit $rc' ERR

# ---------------------------------------------------------------- configuration
COUNT="${RUNBOX_TEST_ENGINES:-2}"
STATE_DIR="${RUNBOX_TEST_ENGINES_DIR:-${TMPDIR:-/tmp}/runbox-test-engines}"
PREFIX="${RUNBOX_TEST_ENGINES_PREFIX:-rbte}"
NET="${RUNBOX_TEST_ENGINES_NET:-10.213}"
BIP_NET="${RUNBOX_TEST_ENGINES_BIP_NET:-10.214}"
TLS_ENGINES="${RUNBOX_TEST_ENGINE_TLS-2}"
TLS_PORT="${RUNBOX_TEST_ENGINE_TLS_PORT:-2376}"
USERNS_ENGINES="${RUNBOX_TEST_ENGINE_USERNS:-}"
USERNS_USER="${RUNBOX_TEST_ENGINE_USERNS_USER:-runbox-remap}"
IMAGES="${RUNBOX_TEST_ENGINES_IMAGES-runbox-base:bookworm}"
STORAGE_DRIVER="${RUNBOX_TEST_ENGINES_STORAGE_DRIVER:-auto}"
TIMEOUT="${RUNBOX_TEST_ENGINES_TIMEOUT:-90}"
IMAGE_WAIT="${RUNBOX_TEST_ENGINES_IMAGE_WAIT:-0}"
INSTALL="${RUNBOX_TEST_ENGINES_INSTALL:-1}"
KEEP_ON_FAILURE="${RUNBOX_TEST_ENGINES_KEEP_ON_FAILURE:-0}"

SYS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH="$SYS_PATH:$PATH"

# Runs a command with its output kept back, and shown (its tail) only when it fails.
quiet() {
    local out rc=0
    out="$("$@" 2>&1)" || rc=$?
    if ((rc != 0)); then
        printf '%s\n' "$out" | tail -n 20 >&2
        log "'$*' failed (exit $rc)"
    fi
    return "$rc"
}
# Space/comma list -> space separated words.
words() { printf '%s' "$1" | tr ',' ' ' | xargs; }
in_list() { local x; for x in $(words "$2"); do [[ "$x" == "$1" ]] && return 0; done; return 1; }
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
# Two octets, like 10.213.
is_net16() { [[ "$1" =~ ^([0-9]{1,3})\.([0-9]{1,3})$ ]] && ((BASH_REMATCH[1] <= 255 && BASH_REMATCH[2] <= 255)); }

validate_config() {
    is_uint "$COUNT" && ((COUNT >= 1 && COUNT <= 50)) || die "RUNBOX_TEST_ENGINES must be 1..50, got '$COUNT'"
    [[ "$PREFIX" =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "RUNBOX_TEST_ENGINES_PREFIX must be 1-8 of a-z0-9 starting with a letter, got '$PREFIX'"
    is_net16 "$NET" || die "RUNBOX_TEST_ENGINES_NET must look like 10.213, got '$NET'"
    is_net16 "$BIP_NET" || die "RUNBOX_TEST_ENGINES_BIP_NET must look like 10.214, got '$BIP_NET'"
    [[ "$NET" != "$BIP_NET" ]] || die "RUNBOX_TEST_ENGINES_NET and RUNBOX_TEST_ENGINES_BIP_NET must differ"
    is_uint "$TLS_PORT" && ((TLS_PORT >= 1 && TLS_PORT <= 65535)) || die "RUNBOX_TEST_ENGINE_TLS_PORT must be a port, got '$TLS_PORT'"
    is_uint "$TIMEOUT" || die "RUNBOX_TEST_ENGINES_TIMEOUT must be a number of seconds, got '$TIMEOUT'"
    is_uint "$IMAGE_WAIT" || die "RUNBOX_TEST_ENGINES_IMAGE_WAIT must be a number of seconds, got '$IMAGE_WAIT'"
    local n
    for n in $(words "$TLS_ENGINES") $(words "$USERNS_ENGINES"); do
        is_uint "$n" || die "engine numbers in RUNBOX_TEST_ENGINE_TLS / RUNBOX_TEST_ENGINE_USERNS must be numbers, got '$n'"
    done
    [[ "$USERNS_USER" =~ ^[a-z_][a-z0-9_-]{0,30}$ ]] || die "RUNBOX_TEST_ENGINE_USERNS_USER is not a valid user name: '$USERNS_USER'"
    case "$STORAGE_DRIVER" in auto | overlay2 | fuse-overlayfs | vfs) ;; *) die "RUNBOX_TEST_ENGINES_STORAGE_DRIVER must be auto, overlay2, fuse-overlayfs or vfs" ;; esac
}

# The state dir holds unix sockets (containerd's is the deepest) and goes unquoted
# into the env file and daemon.json: keep it short and plain.
validate_state_dir() {
    [[ "$STATE_DIR" == /* ]] || die "RUNBOX_TEST_ENGINES_DIR must be an absolute path, got '$STATE_DIR'"
    [[ "$STATE_DIR" =~ ^[A-Za-z0-9_./+@:-]+$ ]] || die "RUNBOX_TEST_ENGINES_DIR may hold only letters, digits and _./+@:- , got '$STATE_DIR'"
    local deepest="$STATE_DIR/engine-50/exec/containerd/containerd.sock.ttrpc"
    ((${#deepest} < 100)) || die "RUNBOX_TEST_ENGINES_DIR is too long for unix sockets (${#deepest} bytes in $deepest); pick a shorter one"
}

# ---------------------------------------------------------------- per-engine names
# Sets the E_* variables for engine $1.
engine_vars() {
    local n="$1"
    E_N="$n"
    E_DIR="$STATE_DIR/engine-$n"
    E_NS="$PREFIX$n"
    E_VETH_HOST="${PREFIX}${n}h"
    E_VETH_NS="${PREFIX}${n}n"
    E_HOST_ADDR="$NET.$n.1"
    E_ADDR="$NET.$n.2"
    E_BIP="$BIP_NET.$n.1/24"
    E_CGROUP="$PREFIX$n"
    E_SOCK="$E_DIR/docker.sock"
    E_LOG="$E_DIR/dockerd.log"
    E_CONFIG="$E_DIR/daemon.json"
    E_PIDFILE="$E_DIR/dockerd.pid"
    E_DATA="$E_DIR/data"
    E_EXEC="$E_DIR/exec"
    E_TLS=false
    in_list "$n" "$TLS_ENGINES" && E_TLS=true
    E_USERNS=false
    in_list "$n" "$USERNS_ENGINES" && E_USERNS=true
    return 0
}

# Docker CLI against engine $E_*, whatever DOCKER_HOST/DOCKER_CONTEXT the caller has.
edocker() { env -u DOCKER_HOST -u DOCKER_CONTEXT -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH docker -H "unix://$E_SOCK" "$@"; }

# ---------------------------------------------------------------- processes
# Alive and not a zombie (a dockerd this very run launched and killed is one until reaped).
pid_alive() {
    [[ -n "${1:-}" ]] && is_uint "$1" && [[ -r "/proc/$1/stat" ]] || return 1
    local st
    st="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}
# True when process $1's command line contains $2 (guards against a recycled pid).
pid_matches() {
    pid_alive "$1" || return 1
    local cmd
    cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline")" || return 1
    [[ "$cmd" == *"$2"* ]]
}
read_pid() { [[ -s "$1" ]] && head -c 32 "$1" | tr -dc 0-9 || true; }
# Sends SIGTERM to the pids, waits up to $1 seconds, then SIGKILLs the survivors.
terminate() {
    local grace="$1" pid deadline
    shift
    [[ $# -gt 0 ]] || return 0
    for pid in "$@"; do kill -CONT "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true; done
    deadline=$((SECONDS + grace))
    while ((SECONDS < deadline)); do
        local alive=0
        for pid in "$@"; do pid_alive "$pid" && alive=1; done
        ((alive)) || return 0
        sleep 0.2
    done
    for pid in "$@"; do
        if pid_alive "$pid"; then
            log "pid $pid did not stop within ${grace}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    sleep 0.2
}
# Pids whose command line contains $1 (excluding this script and its children).
pids_with_arg() {
    local p cmd
    for p in /proc/[0-9]*; do
        p="${p#/proc/}"
        [[ "$p" == "$$" || "$p" == "$BASHPID" ]] && continue
        cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")" || continue
        [[ "$cmd" == *"$1"* ]] || continue
        [[ "$cmd" == *"$PROG"* ]] && continue
        printf '%s\n' "$p"
    done
}
# Pids in the engine's cgroup subtree (any v1 hierarchy, or the v2 one).
cgroup_pids() {
    local f
    for f in /sys/fs/cgroup/pids/"$E_CGROUP" /sys/fs/cgroup/memory/"$E_CGROUP" /sys/fs/cgroup/"$E_CGROUP"; do
        [[ -d "$f" ]] || continue
        find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null || true
    done | sort -un
}

# ---------------------------------------------------------------- packages
apt_install() {
    [[ "$INSTALL" == 1 ]] || return 1
    command -v apt-get >/dev/null || return 1
    log "installing Debian packages: $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
        || { quiet apt-get update -qq && quiet apt-get install -y -qq --no-install-recommends "$@"; }
}
need_cmd() { # need_cmd COMMAND PACKAGE
    command -v "$1" >/dev/null && return 0
    apt_install "$2" || die "$1 is missing and the Debian package $2 could not be installed"
    command -v "$1" >/dev/null || die "$1 is still missing after installing $2"
}
ensure_tools() {
    step "checking the tools"
    [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, dockerd)"
    need_cmd ip iproute2
    need_cmd nsenter util-linux
    need_cmd setsid util-linux
    need_cmd flock util-linux
    need_cmd findmnt util-linux
    need_cmd openssl openssl
    need_cmd curl curl
    command -v dockerd >/dev/null || die "dockerd is not installed (Debian package docker.io)"
    command -v docker >/dev/null || die "the docker CLI is not installed"
    command -v containerd >/dev/null || die "containerd is not installed (Debian package containerd)"
    command -v runc >/dev/null || die "runc is not installed (Debian package runc)"
    [[ "$STORAGE_DRIVER" != fuse-overlayfs ]] || need_cmd fuse-overlayfs fuse-overlayfs
    command -v unshare >/dev/null || die "unshare (util-linux) is missing"
    if ! command -v crun >/dev/null; then apt_install crun || log "warning: crun is not installed and could not be installed; engines offer no crun"; fi
    if ! command -v runsc >/dev/null; then apt_install runsc || log "warning: runsc is not installed and could not be installed; engines offer no runsc"; fi
    return 0
}

# ---------------------------------------------------------------- state
lock_state() {
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/.lock"
    flock -w 120 9 || die "another $PROG holds $STATE_DIR/.lock"
}
# Names are derived from the prefix and nets, so stop must use the ones start used.
save_config() {
    printf 'PREFIX=%s\nNET=%s\nBIP_NET=%s\n' "$PREFIX" "$NET" "$BIP_NET" >"$STATE_DIR/config"
}
load_config() {
    [[ -f "$STATE_DIR/config" ]] || return 0
    local k v
    while IFS='=' read -r k v; do
        case "$k" in
        PREFIX) PREFIX="$v" ;; NET) NET="$v" ;; BIP_NET) BIP_NET="$v" ;;
        esac
    done <"$STATE_DIR/config"
}
# Engine numbers that have a state dir.
known_engines() {
    local d
    for d in "$STATE_DIR"/engine-*; do
        [[ -d "$d" ]] || continue
        d="${d##*/engine-}"
        is_uint "$d" && printf '%s\n' "$d"
    done | sort -n
}

# ---------------------------------------------------------------- TLS
tls_dir() { printf '%s' "$STATE_DIR/tls"; }
make_ca() {
    local d
    d="$(tls_dir)"
    mkdir -p "$d" "$d/client"
    chmod 700 "$d"
    if [[ -s "$d/ca.pem" && -s "$d/ca-key.pem" ]] && openssl x509 -in "$d/ca.pem" -noout -checkend 86400 >/dev/null 2>&1; then
        :
    else
        log "making the test CA in $d"
        quiet openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 3650 \
            -subj "/CN=runbox test engines CA" -keyout "$d/ca-key.pem" -out "$d/ca.pem"
        chmod 600 "$d/ca-key.pem"
        rm -f "$d/client/cert.pem" "$d"/engine-*-cert.pem
    fi
    cp "$d/ca.pem" "$d/client/ca.pem"
    if ! { [[ -s "$d/client/cert.pem" && -s "$d/client/key.pem" ]] && cert_ok "$d/client/cert.pem" "$d/client/key.pem"; }; then
        log "making the client certificate"
        sign_cert "$d/client/key.pem" "$d/client/cert.pem" "runbox test client" "extendedKeyUsage=clientAuth"
    fi
}
# True when cert $1 was signed by our CA, lasts at least one more day and goes with key $2.
cert_ok() {
    openssl verify -CAfile "$(tls_dir)/ca.pem" "$1" >/dev/null 2>&1 \
        && openssl x509 -in "$1" -noout -checkend 86400 >/dev/null 2>&1 \
        && [[ "$(openssl x509 -in "$1" -noout -pubkey 2>/dev/null)" == "$(openssl pkey -in "$2" -pubout 2>/dev/null)" ]]
}
sign_cert() { # KEY CERT CN EXTENSIONS
    local d csr ext
    d="$(tls_dir)"
    csr="$(mktemp "$d/csr.XXXXXX")"
    ext="$(mktemp "$d/ext.XXXXXX")"
    printf '%s\n' "$4" | tr ';' '\n' >"$ext"
    quiet openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -subj "/CN=$3" \
        -keyout "$1" -out "$csr"
    quiet openssl x509 -req -in "$csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" -CAcreateserial -sha256 -days 825 \
        -extfile "$ext" -out "$2"
    rm -f "$csr" "$ext"
    chmod 600 "$1"
}
make_server_cert() {
    local d key cert
    d="$(tls_dir)"
    key="$d/engine-$E_N-key.pem"
    cert="$d/engine-$E_N-cert.pem"
    if [[ -s "$key" && -s "$cert" ]] && cert_ok "$cert" "$key" \
        && openssl x509 -in "$cert" -noout -ext subjectAltName 2>/dev/null | grep -q "IP Address:$E_ADDR\$\|IP Address:$E_ADDR,"; then
        return 0
    fi
    log "making the server certificate of engine $E_N ($E_ADDR)"
    sign_cert "$key" "$cert" "$E_NS" "subjectAltName=IP:$E_ADDR,IP:127.0.0.1,DNS:localhost;extendedKeyUsage=serverAuth"
}

# ---------------------------------------------------------------- userns-remap
range_start() { awk -F: -v u="$USERNS_USER" '$1 == u { print $2; exit }' "$1"; }
# Echoes the first host uid of the remap user's subordinate range, making the user and
# the ranges when missing.
ensure_remap_user() {
    if ! id -u "$USERNS_USER" >/dev/null 2>&1; then
        log "adding system user $USERNS_USER for userns-remap"
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$USERNS_USER" >&2
    fi
    touch /etc/subuid /etc/subgid
    local uid_start gid_start free
    uid_start="$(range_start /etc/subuid)"
    gid_start="$(range_start /etc/subgid)"
    # The first 65536-aligned start at or above 300000 past every existing range.
    free="$(awk -F: 'BEGIN { m = 300000 } NF >= 3 { e = $2 + $3; if (e > m) m = e } END { print int((m + 65535) / 65536) * 65536 }' /etc/subuid /etc/subgid)"
    if [[ -z "$uid_start" ]]; then
        log "giving $USERNS_USER the uids $free..$((free + 65535)) in /etc/subuid"
        printf '%s:%s:65536\n' "$USERNS_USER" "$free" >>/etc/subuid
    fi
    if [[ -z "$gid_start" ]]; then
        log "giving $USERNS_USER the gids $free..$((free + 65535)) in /etc/subgid"
        printf '%s:%s:65536\n' "$USERNS_USER" "$free" >>/etc/subgid
    fi
    awk -F: -v u="$USERNS_USER" '$1 == u { print $2; exit }' /etc/subuid
}

# ---------------------------------------------------------------- daemon.json
write_daemon_json() {
    local runtimes="" hosts="\"unix://$E_SOCK\"" extra=""
    if command -v crun >/dev/null; then
        runtimes+="\"crun\": {\"path\": \"$(command -v crun)\"}"
    fi
    if command -v runsc >/dev/null; then
        [[ -n "$runtimes" ]] && runtimes+=", "
        runtimes+="\"runsc\": {\"path\": \"$(command -v runsc)\", \"runtimeArgs\": [\"--platform=ptrace\", \"--network=none\", \"--oci-seccomp\"]}"
    fi
    if $E_TLS; then
        local d
        d="$(tls_dir)"
        hosts+=", \"tcp://$E_ADDR:$TLS_PORT\""
        extra+="  \"tls\": true,
  \"tlsverify\": true,
  \"tlscacert\": \"$d/ca.pem\",
  \"tlscert\": \"$d/engine-$E_N-cert.pem\",
  \"tlskey\": \"$d/engine-$E_N-key.pem\",
"
    fi
    if $E_USERNS; then
        extra+="  \"userns-remap\": \"$USERNS_USER\",
"
    fi
    cat >"$E_CONFIG.new" <<EOF
{
  "data-root": "$E_DATA",
  "exec-root": "$E_EXEC",
  "pidfile": "$E_PIDFILE",
  "hosts": [$hosts],
  "deprecated-key-path": "$E_DIR/key.json",
  "containerd-namespace": "$E_NS",
  "containerd-plugins-namespace": "$E_NS-plugins",
  "storage-driver": "$STORAGE_DRIVER",
  "bip": "$E_BIP",
  "cgroup-parent": "/$E_CGROUP",
  "default-runtime": "runc",
  "runtimes": {$runtimes},
  "live-restore": false,
  "shutdown-timeout": 5,
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "2"},
  "labels": ["runbox.test-engine=$E_N"],
$extra  "debug": false
}
EOF
    # How dockerd is launched, beyond daemon.json.
    printf 'hostname=%s\nhide-cgroup2-controllers=%s\n' "$E_NS" "$(crun_needs_hidden_controllers && echo true || echo false)" >"$E_DIR/launch.new"
}

# ---------------------------------------------------------------- storage
# True when the kernel mounts overlayfs with its upper dir on the state dir's file
# system (probed in a throw-away mount namespace, so the host sees no mount).
overlay_works() {
    local d ok=1
    d="$(mktemp -d "$STATE_DIR/.overlay-probe.XXXXXX")"
    mkdir "$d/lower" "$d/upper" "$d/work" "$d/merged"
    if unshare --mount --propagation private -- \
        mount -t overlay overlay -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" "$d/merged" 2>/dev/null; then
        ok=0
    fi
    rm -rf --one-file-system "$d"
    return "$ok"
}
# auto: overlay2 where the kernel allows it on the state dir (fastest: no FUSE daemon
# per container), else fuse-overlayfs; vfs copies the whole image for every container
# (tens of seconds for a 1 GB image), so it is used only when asked for.
resolve_storage_driver() {
    [[ "$STORAGE_DRIVER" == auto ]] || return 0
    if overlay_works; then
        STORAGE_DRIVER=overlay2
    else
        need_cmd fuse-overlayfs fuse-overlayfs
        STORAGE_DRIVER=fuse-overlayfs
    fi
    log "storage driver: $STORAGE_DRIVER"
}

# ---------------------------------------------------------------- stop
# Tears down engine $E_* and whatever a previous, possibly half-done, start left.
# Echoes the pid of a dockerd of another state dir running in netns $E_NS, if any:
# that namespace, its veth and its cgroup are then not ours to touch.
foreign_dockerd() {
    [[ -e "/run/netns/$E_NS" ]] || return 0
    local pid
    for pid in $(ip netns pids "$E_NS" 2>/dev/null || true); do
        if pid_matches "$pid" "dockerd --config-file " && ! pid_matches "$pid" "$E_CONFIG"; then
            echo "$pid"
            return 0
        fi
    done
}
foreign_message() {
    printf 'netns %s holds dockerd pid %s of another state dir (%s); give each state dir its own RUNBOX_TEST_ENGINES_PREFIX and RUNBOX_TEST_ENGINES_NET' \
        "$E_NS" "$1" "$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | sed 's/ $//')"
}

stop_engine() {
    local pid pids=() foreign
    foreign="$(foreign_dockerd)"
    if [[ -n "$foreign" ]]; then
        log "engine $E_N: left alone: $(foreign_message "$foreign")"
        return 0
    fi
    # dockerd: its pid file and the pid recorded at launch.
    for pid in $(printf '%s\n' "$(read_pid "$E_PIDFILE")" "$(read_pid "$E_DIR/launched.pid")" | sort -u); do
        pid_matches "$pid" "$E_CONFIG" && pids+=("$pid")
    done
    if ((${#pids[@]})); then
        log "engine $E_N: stopping dockerd (pid ${pids[*]})"
        terminate 40 "${pids[@]}"
    fi
    # Its containerd: dockerd stops it on a clean exit; not after a SIGKILL.
    pids=()
    for pid in $({ read_pid "$E_EXEC/containerd/containerd.pid"; echo; read_pid "$E_DIR/containerd.pid"; echo; pids_with_arg "$E_EXEC/containerd/containerd.toml"; } | sort -u); do
        pid_matches "$pid" "$E_EXEC/containerd" && pids+=("$pid")
    done
    if ((${#pids[@]})); then
        log "engine $E_N: stopping containerd (pid ${pids[*]})"
        terminate 15 "${pids[@]}"
    fi
    # Shims and container processes outlive a killed containerd.
    mapfile -t pids < <({ pids_with_arg "$E_EXEC/containerd/containerd.sock"; cgroup_pids; } | sort -un)
    if ((${#pids[@]})); then
        log "engine $E_N: ending leftover shims and container processes (pid ${pids[*]})"
        terminate 5 "${pids[@]}"
    fi
    # Anything still in the namespace (docker-proxy...) was started by the engine.
    if [[ -e "/run/netns/$E_NS" ]]; then
        mapfile -t pids < <(ip netns pids "$E_NS" 2>/dev/null || true)
        if ((${#pids[@]})); then
            log "engine $E_N: ending processes left in netns $E_NS (pid ${pids[*]})"
            terminate 5 "${pids[@]}"
        fi
    fi
    unmount_under "$E_DIR"
    mapfile -t pids < <(pids_with_arg "$E_DATA/")
    if ((${#pids[@]})); then
        log "engine $E_N: ending leftover storage helpers (pid ${pids[*]})"
        terminate 5 "${pids[@]}"
        unmount_under "$E_DIR"
    fi
    if ip link show "$E_VETH_HOST" >/dev/null 2>&1; then
        log "engine $E_N: deleting veth $E_VETH_HOST"
        ip link del "$E_VETH_HOST"
    fi
    if [[ -e "/run/netns/$E_NS" ]] || ip netns list 2>/dev/null | grep -qw "^$E_NS"; then
        log "engine $E_N: deleting netns $E_NS (and the engine's bridge in it)"
        ip netns del "$E_NS"
    fi
    remove_cgroups
    # Runtime state only: data root (the image cache), logs and certs stay.
    if [[ -d "$E_EXEC" ]]; then
        findmnt -rn -o TARGET | grep -q "^$E_EXEC/" && die "engine $E_N: mounts are left under $E_EXEC"
        rm -rf --one-file-system "$E_EXEC"
    fi
    rm -f "$E_SOCK" "$E_PIDFILE" "$E_DIR/launched.pid" "$E_DIR/containerd.pid"
}

# Unmounts every mount point under $1, deepest first; lazily when busy.
unmount_under() {
    local m mounts
    mounts="$(findmnt -rn -o TARGET | awk -v p="$1/" 'index($0, p) == 1' | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-)"
    [[ -n "$mounts" ]] || return 0
    while IFS= read -r m; do
        # findmnt escapes blanks as \x20; our paths have none.
        log "unmounting $m"
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "warning: could not unmount $m"
    done <<<"$mounts"
}

remove_cgroups() {
    local d
    for d in /sys/fs/cgroup/*/"$E_CGROUP" /sys/fs/cgroup/"$E_CGROUP"; do
        [[ -d "$d" ]] || continue
        find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
        [[ -d "$d" ]] && log "warning: cgroup $d is still there (busy?)"
    done
    return 0
}

# Undoes the host-wide bits that only exist because of us, when nothing else uses them.
cleanup_host() {
    if [[ -f "$STATE_DIR/made-run-netns" ]]; then
        if [[ -d /run/netns && -z "$(ls -A /run/netns 2>/dev/null)" ]]; then
            while findmnt -rn -o TARGET | grep -qx /run/netns; do umount /run/netns 2>/dev/null || break; done
            rmdir /run/netns 2>/dev/null || true
        fi
        rm -f "$STATE_DIR/made-run-netns"
    fi
    # The shims' socket dir (/run/containerd/s), when no engine of the host's had made it.
    if [[ -f "$STATE_DIR/made-run-containerd" ]]; then
        rmdir /run/containerd/s 2>/dev/null && rmdir /run/containerd 2>/dev/null || true
        rm -f "$STATE_DIR/made-run-containerd"
    fi
    return 0
}

cmd_stop() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    [[ -d "$STATE_DIR" ]] || { log "nothing to stop ($STATE_DIR does not exist)"; return 0; }
    lock_state
    load_config
    step "stopping the test engines in $STATE_DIR"
    local n
    for n in $(known_engines); do
        engine_vars "$n"
        stop_engine
    done
    # Namespaces of ours whose state dir is gone.
    for n in $(ip netns list 2>/dev/null | awk '{ print $1 }' | sed -n "s/^$PREFIX\([0-9]\{1,2\}\)\$/\1/p"); do
        engine_vars "$n"
        stop_engine
    done
    cleanup_host
    rm -f "$STATE_DIR/engines.env"
    log "stopped"
}

# ---------------------------------------------------------------- start
# The last lines dockerd logged in this run (the log keeps earlier runs too).
tail_log() {
    awk '/^===== / { n = 0; delete buf } { buf[n++] = $0 } END { for (i = (n > 25 ? n - 25 : 0); i < n; i++) print buf[i] }' "$E_LOG" >&2 2>/dev/null || true
}
setup_netns() {
    [[ -d /run/containerd ]] || touch "$STATE_DIR/made-run-containerd"
    [[ -d /run/netns ]] || touch "$STATE_DIR/made-run-netns"
    findmnt -rn -o TARGET | grep -qx /run/netns || touch "$STATE_DIR/made-run-netns"
    if ip -o -4 addr show | awk '{ print $4 }' | grep -q "^$E_HOST_ADDR/\|^$NET\.$E_N\."; then
        die "engine $E_N: $NET.$E_N.0/30 is already in use on the host (set RUNBOX_TEST_ENGINES_NET)"
    fi
    ip netns add "$E_NS"
    ip link add "$E_VETH_HOST" type veth peer name "$E_VETH_NS"
    ip link set "$E_VETH_NS" netns "$E_NS"
    ip addr add "$E_HOST_ADDR/30" dev "$E_VETH_HOST"
    ip link set "$E_VETH_HOST" up
    ip -n "$E_NS" addr add "$E_ADDR/30" dev "$E_VETH_NS"
    ip -n "$E_NS" link set "$E_VETH_NS" up
    ip -n "$E_NS" link set lo up
}

# crun refuses hybrid cgroups (v1 controllers plus a cgroup2 mount at
# /sys/fs/cgroup/unified) whenever that cgroup2 root offers any controller (here:
# hugetlb, which no v1 hierarchy mounts). True when that is the case.
crun_needs_hidden_controllers() {
    command -v crun >/dev/null || return 1
    [[ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)" == tmpfs ]] || return 1
    [[ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" == cgroup2fs ]] || return 1
    [[ -n "$(tr -d " \n" 2>/dev/null </sys/fs/cgroup/unified/cgroup.controllers)" ]]
}

launch_engine() {
    mkdir -p "$E_DIR" "$E_DATA" "$E_EXEC"
    chmod 755 "$STATE_DIR" "$E_DIR"
    local hide=""
    if grep -qx 'hide-cgroup2-controllers=true' "$E_DIR/launch"; then
        hide="$E_DIR/cgroup.controllers.empty"
        : >"$hide"
        log "engine $E_N: hiding the cgroup2 controllers ($(xargs </sys/fs/cgroup/unified/cgroup.controllers)) from crun in the engine's mount namespace"
    fi
    printf '\n===== %s: starting engine %s\n' "$(date -Is)" "$E_N" >>"$E_LOG"
    # nsenter, not `ip netns exec`: the latter remounts /sys, and dockerd then fails on
    # the devices cgroup. The engine gets a host name (its netns name, which `docker info`
    # shows as Name) and a mount namespace of its own (a slave of the
    # host's, so host mounts and unmounts reach it and none of its mounts leak out);
    # everything it mounts goes away with its last process. setsid detaches it from our
    # session; nsenter, unshare, env and sh all exec, so $! is dockerd's pid.
    # shellcheck disable=SC2016 # expanded by the inner sh
    setsid nsenter --net="/run/netns/$E_NS" -- unshare --mount --uts --propagation slave -- \
        env -i PATH="$SYS_PATH" HOME=/root HIDE="$hide" CONFIG="$E_CONFIG" NAME="$E_NS" \
        sh -c 'hostname "$NAME" || exit 96
               if [ -n "$HIDE" ]; then mount --bind "$HIDE" /sys/fs/cgroup/unified/cgroup.controllers || exit 97; fi
               exec dockerd --config-file "$CONFIG"' </dev/null >>"$E_LOG" 2>&1 9>&- &
    echo "$!" >"$E_DIR/launched.pid"
}

wait_engine() {
    local pid deadline
    pid="$(read_pid "$E_DIR/launched.pid")"
    deadline=$((SECONDS + TIMEOUT))
    while :; do
        if ! pid_alive "$pid"; then
            tail_log
            die "engine $E_N: dockerd (pid $pid) exited during start; its log is $E_LOG (tail above)"
        fi
        if timeout 10 env -u DOCKER_CONTEXT docker -H "unix://$E_SOCK" version --format '{{.Server.Version}}' >/dev/null 2>&1; then
            break
        fi
        if ((SECONDS >= deadline)); then
            tail_log
            die "engine $E_N: dockerd (pid $pid) did not answer on $E_SOCK within ${TIMEOUT}s; its log is $E_LOG (tail above)"
        fi
        sleep 0.5
    done
    [[ "$(read_pid "$E_PIDFILE")" == "$pid" ]] || die "engine $E_N: pid file $E_PIDFILE says '$(read_pid "$E_PIDFILE")', launched pid $pid"
    local cpid
    cpid="$(read_pid "$E_EXEC/containerd/containerd.pid")"
    pid_matches "$cpid" "$E_EXEC/containerd" || die "engine $E_N: no containerd of its own running (pid file $E_EXEC/containerd/containerd.pid)"
    echo "$cpid" >"$E_DIR/containerd.pid"
}

# True when engine $E_* runs with the daemon.json we would write now, and answers.
engine_healthy() {
    cmp -s "$E_CONFIG" "$E_CONFIG.new" 2>/dev/null && cmp -s "$E_DIR/launch" "$E_DIR/launch.new" 2>/dev/null || return 1
    local pid
    pid="$(read_pid "$E_PIDFILE")"
    pid_matches "$pid" "$E_CONFIG" || return 1
    grep -q '^State:.*T' "/proc/$pid/status" 2>/dev/null && return 1
    [[ -e "/run/netns/$E_NS" ]] && ip link show "$E_VETH_HOST" >/dev/null 2>&1 || return 1
    if $E_TLS; then
        local d
        d="$(tls_dir)"
        [[ "$d/engine-$E_N-cert.pem" -nt "$E_PIDFILE" || "$d/ca.pem" -nt "$E_PIDFILE" ]] && return 1
    fi
    timeout 10 env -u DOCKER_CONTEXT docker -H "unix://$E_SOCK" version >/dev/null 2>&1
}

wait_for_host_images() {
    local img deadline=$((SECONDS + IMAGE_WAIT))
    for img in $(words "$IMAGES"); do
        until docker image inspect "$img" >/dev/null 2>&1; do
            ((SECONDS < deadline)) || die "image $img is not in the host's Docker engine; build or load it there first"
            sleep 5
        done
    done
}

load_images() {
    local img want have
    for img in $(words "$IMAGES"); do
        want="$(docker image inspect -f '{{.Id}}' "$img")"
        have="$(edocker image inspect -f '{{.Id}}' "$img" 2>/dev/null || true)"
        if [[ "$have" == "$want" ]]; then
            log "engine $E_N: $img already loaded"
            continue
        fi
        step "engine $E_N: loading $img (docker save | docker load)"
        docker save "$img" | edocker load -q >/dev/null
        have="$(edocker image inspect -f '{{.Id}}' "$img")"
        [[ "$have" == "$want" ]] || die "engine $E_N: $img loaded as $have, the host has $want"
    done
}

engine_runtimes() {
    edocker info --format '{{range $k, $v := .Runtimes}}{{$k}} {{end}}' | tr ' ' '\n' \
        | grep -v '^io\.containerd\.' | grep -v '^$' | sort | paste -sd, -
}

write_env_file() {
    local f="$STATE_DIR/engines.env" n d
    d="$(tls_dir)"
    {
        printf '# Written by %s start at %s; removed by stop.\n' "$PROG" "$(date -Is)"
        printf 'RUNBOX_TEST_ENGINES_DIR=%s\n' "$STATE_DIR"
        printf 'RUNBOX_TEST_ENGINES_COUNT=%s\n' "$COUNT"
        printf 'RUNBOX_TEST_ENGINES_IMAGES=%s\n' "$(words "$IMAGES" | tr ' ' ',')"
        for n in $(seq 1 "$COUNT"); do
            engine_vars "$n"
            local p="RUNBOX_TEST_ENGINE_${n}_" base=""
            $E_USERNS && base="$(awk -F: -v u="$USERNS_USER" '$1 == u { print $2; exit }' /etc/subuid)"
            printf '%sHOST=unix://%s\n' "$p" "$E_SOCK"
            printf '%sSOCKET=%s\n' "$p" "$E_SOCK"
            printf '%sNETNS=%s\n' "$p" "$E_NS"
            printf '%sNAME=%s\n' "$p" "$E_NS"
            printf '%sADDR=%s\n' "$p" "$E_ADDR"
            printf '%sHOST_ADDR=%s\n' "$p" "$E_HOST_ADDR"
            printf '%sBRIDGE_CIDR=%s\n' "$p" "$E_BIP"
            printf '%sPID=%s\n' "$p" "$(read_pid "$E_PIDFILE")"
            printf '%sCONTAINERD_PID=%s\n' "$p" "$(read_pid "$E_DIR/containerd.pid")"
            printf '%sRUNTIMES=%s\n' "$p" "$(engine_runtimes)"
            printf '%sSTORAGE_DRIVER=%s\n' "$p" "$(edocker info --format '{{.Driver}}')"
            printf '%sUSERNS_REMAP=%s\n' "$p" "$($E_USERNS && echo "$USERNS_USER" || true)"
            printf '%sUSERNS_UID_BASE=%s\n' "$p" "$base"
            printf '%sLOG=%s\n' "$p" "$E_LOG"
            if $E_TLS; then
                printf '%sTLS_HOST=tcp://%s:%s\n' "$p" "$E_ADDR" "$TLS_PORT"
                printf '%sTLS_CERT_PATH=%s\n' "$p" "$d/client"
                printf '%sTLS_CA=%s\n' "$p" "$d/client/ca.pem"
                printf '%sTLS_CERT=%s\n' "$p" "$d/client/cert.pem"
                printf '%sTLS_KEY=%s\n' "$p" "$d/client/key.pem"
            else
                printf '%s=\n' "${p}TLS_HOST" "${p}TLS_CERT_PATH" "${p}TLS_CA" "${p}TLS_CERT" "${p}TLS_KEY"
            fi
        done
    } >"$f.new"
    mv "$f.new" "$f"
}

STARTED=()
on_start_failure() {
    ((${#STARTED[@]})) || return 0
    if [[ "$KEEP_ON_FAILURE" == 1 ]]; then
        log "start failed; engines ${STARTED[*]} are left running (RUNBOX_TEST_ENGINES_KEEP_ON_FAILURE=1); '$0 stop' removes them"
        return 0
    fi
    log "start failed; tearing down engines ${STARTED[*]} (logs stay in $STATE_DIR/engine-N/dockerd.log)"
    local n
    for n in "${STARTED[@]}"; do
        engine_vars "$n"
        stop_engine || true
    done
    cleanup_host || true
}

cmd_start() {
    validate_config
    validate_state_dir
    ensure_tools
    if [[ -n "$(words "$IMAGES")" ]]; then
        step "checking the images on the host engine"
        docker info >/dev/null 2>&1 || die "cannot reach the host's Docker engine (needed to copy images in)"
        wait_for_host_images
    fi
    lock_state
    # A state dir of an earlier run with other names: stop that run first.
    if [[ -f "$STATE_DIR/config" ]] && ! cmp -s "$STATE_DIR/config" <(printf 'PREFIX=%s\nNET=%s\nBIP_NET=%s\n' "$PREFIX" "$NET" "$BIP_NET"); then
        log "the state dir was used with other names or nets; stopping that run first"
        (
            load_config
            for n in $(known_engines); do engine_vars "$n"; stop_engine; done
        )
    fi
    save_config
    resolve_storage_driver
    trap 'rc=$?; ((rc == 0)) || on_start_failure' EXIT
    local n remap_base="" foreign
    if [[ -n "$(words "$TLS_ENGINES")" ]]; then
        step "making TLS certificates"
        make_ca
    fi
    for n in $(seq 1 "$COUNT"); do
        engine_vars "$n"
        mkdir -p "$E_DIR"
        if $E_USERNS && [[ -z "$remap_base" ]]; then
            step "preparing the userns-remap user"
            remap_base="$(ensure_remap_user)"
        fi
        $E_TLS && make_server_cert
        write_daemon_json
        if engine_healthy; then
            log "engine $E_N: already running (pid $(read_pid "$E_PIDFILE")), kept"
            rm -f "$E_CONFIG.new" "$E_DIR/launch.new"
            continue
        fi
        step "engine $E_N: cleaning up what an earlier run left"
        foreign="$(foreign_dockerd)"
        [[ -z "$foreign" ]] || die "engine $E_N: $(foreign_message "$foreign")"
        stop_engine
        mv "$E_CONFIG.new" "$E_CONFIG"
        mv "$E_DIR/launch.new" "$E_DIR/launch"
        STARTED+=("$n")
        step "engine $E_N: network namespace $E_NS, $E_HOST_ADDR <-> $E_ADDR"
        setup_netns
        step "engine $E_N: starting dockerd ($STORAGE_DRIVER$($E_USERNS && echo ", userns-remap $USERNS_USER")$($E_TLS && echo ", mTLS on $E_ADDR:$TLS_PORT"))"
        launch_engine
    done
    for n in "${STARTED[@]}"; do
        engine_vars "$n"
        step "engine $E_N: waiting for it to answer on $E_SOCK"
        wait_engine
        # The data root caches images; a (re)started engine is a fresh host otherwise.
        if [[ -n "$(edocker ps -aq | head -n 1)" ]]; then
            log "engine $E_N: removing the containers an earlier run left"
            quiet edocker container prune -f
        fi
        quiet edocker network prune -f
        quiet edocker volume prune -f
    done
    for n in $(seq 1 "$COUNT"); do
        engine_vars "$n"
        load_images
        local rt
        rt="$(engine_runtimes)"
        if command -v crun >/dev/null && [[ ",$rt," != *,crun,* ]]; then die "engine $E_N does not offer crun ($rt)"; fi
        if command -v runsc >/dev/null && [[ ",$rt," != *,runsc,* ]]; then die "engine $E_N does not offer runsc ($rt)"; fi
    done
    # Engines of an earlier run with a larger count.
    for n in $(known_engines); do
        ((n > COUNT)) || continue
        engine_vars "$n"
        step "engine $n: beyond RUNBOX_TEST_ENGINES=$COUNT, stopping it"
        stop_engine
    done
    step "writing the env file"
    write_env_file
    trap - EXIT
    for n in $(seq 1 "$COUNT"); do
        engine_vars "$n"
        log "engine $n: unix://$E_SOCK, netns $E_NS ($E_ADDR), pid $(read_pid "$E_PIDFILE"), runtimes $(engine_runtimes)$($E_TLS && echo ", tls tcp://$E_ADDR:$TLS_PORT")$($E_USERNS && echo ", userns-remap $USERNS_USER")"
    done
    log "env file: $STATE_DIR/engines.env"
    printf '%s\n' "$STATE_DIR/engines.env"
}

# ---------------------------------------------------------------- status, freeze
cmd_status() {
    [[ -d "$STATE_DIR" ]] || { echo "no test engines ($STATE_DIR does not exist)"; return 0; }
    load_config
    local n pid state answer
    for n in $(known_engines); do
        engine_vars "$n"
        pid="$(read_pid "$E_PIDFILE")"
        [[ -n "$pid" ]] || pid="$(read_pid "$E_DIR/launched.pid")"
        if pid_matches "$pid" "$E_CONFIG"; then
            state=running
            grep -q '^State:.*T' "/proc/$pid/status" 2>/dev/null && state=frozen
        else
            state=stopped
            pid=-
        fi
        answer=-
        if [[ "$state" == running ]]; then
            answer="$(timeout 5 env -u DOCKER_CONTEXT docker -H "unix://$E_SOCK" info --format '{{.ServerVersion}} {{.Driver}} containers={{.Containers}} images={{.Images}}' 2>/dev/null || echo 'not answering')"
        fi
        printf 'engine %s: %s pid=%s containerd=%s netns=%s%s addr=%s socket=unix://%s %s\n' \
            "$n" "$state" "$pid" "$(read_pid "$E_DIR/containerd.pid")" "$E_NS" \
            "$([[ -e /run/netns/$E_NS ]] || echo '(absent)')" "$E_ADDR" "$E_SOCK" "$answer"
    done
    [[ -f "$STATE_DIR/engines.env" ]] && echo "env file: $STATE_DIR/engines.env"
    return 0
}

signal_engine() { # SIGNAL N
    [[ -n "${2:-}" ]] && is_uint "$2" || die "usage: $0 freeze|thaw N"
    load_config
    engine_vars "$2"
    local pid
    pid="$(read_pid "$E_PIDFILE")"
    pid_matches "$pid" "$E_CONFIG" || die "engine $2 is not running"
    kill "-$1" "$pid"
    log "engine $2: sent SIG$1 to dockerd pid $pid"
}

# ---------------------------------------------------------------- check, churn
require_running() {
    pid_matches "$(read_pid "$E_PIDFILE")" "$E_CONFIG" || die "engine $E_N is not running (start it first)"
}

cmd_check() {
    [[ -f "$STATE_DIR/engines.env" ]] || die "no env file in $STATE_DIR: run start first"
    load_config
    local engines="${*:-$(seq 1 "$(sed -n 's/^RUNBOX_TEST_ENGINES_COUNT=//p' "$STATE_DIR/engines.env")")}"
    local img n rt out failed=0
    img="$(words "$IMAGES" | awk '{ print $1 }')"
    [[ -n "$img" ]] || die "no image to check with (RUNBOX_TEST_ENGINES_IMAGES is empty)"
    for n in $engines; do
        engine_vars "$n"
        require_running
        for rt in $(engine_runtimes | tr ',' ' '); do
            if out="$(edocker run --rm --network none --runtime "$rt" "$img" python3 -c 'print(1)' 2>&1)" && [[ "$out" == 1 ]]; then
                echo "ok   engine $n: $rt runs $img (python3 printed 1)"
            else
                echo "FAIL engine $n: $rt: $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')"
                failed=1
            fi
        done
        if grep -q '"userns-remap"' "$E_CONFIG"; then
            local user base cid cpid uid
            user="$(sed -n 's/.*"userns-remap": "\([^"]*\)".*/\1/p' "$E_CONFIG")"
            base="$(awk -F: -v u="$user" '$1 == u { print $2; exit }' /etc/subuid)"
            cid="$(edocker run -d --network none --user 1000:1000 "$img" sleep 30)"
            cpid="$(edocker inspect -f '{{.State.Pid}}' "$cid")"
            uid="$(awk '/^Uid:/ { print $2 }' "/proc/$cpid/status")"
            edocker rm -f "$cid" >/dev/null
            if [[ -n "$base" && "$uid" == "$((base + 1000))" ]]; then
                echo "ok   engine $n: uid 1000 inside is host uid $uid (userns-remap $user, base $base)"
            else
                echo "FAIL engine $n: uid 1000 inside is host uid $uid, expected $((base + 1000)) (userns-remap $user)"
                failed=1
            fi
        fi
        if grep -q '"tlsverify": true' "$E_CONFIG"; then
            local d url
            d="$(tls_dir)/client"
            url="https://$E_ADDR:$TLS_PORT"
            if curl -sS --max-time 10 --cacert "$d/ca.pem" "$url/_ping" >/dev/null 2>&1; then
                echo "FAIL engine $n: $url answered a client without a certificate"
                failed=1
            else
                echo "ok   engine $n: $url refuses a client without a certificate"
            fi
            if curl -fsS --max-time 10 "http://$E_ADDR:$TLS_PORT/_ping" >/dev/null 2>&1; then
                echo "FAIL engine $n: http://$E_ADDR:$TLS_PORT answered plain HTTP"
                failed=1
            else
                echo "ok   engine $n: http://$E_ADDR:$TLS_PORT refuses plain HTTP"
            fi
            if out="$(env -u DOCKER_CONTEXT DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH="$d" docker -H "tcp://$E_ADDR:$TLS_PORT" version --format '{{.Server.Version}}' 2>&1)"; then
                echo "ok   engine $n: $url accepts the client certificate (server $out)"
            else
                echo "FAIL engine $n: $url with the client certificate: $out"
                failed=1
            fi
        fi
    done
    ((failed == 0)) || die "some checks failed"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

cmd_churn() {
    [[ -n "${1:-}" ]] && is_uint "$1" || die "usage: $0 churn N [COUNT] [RUNTIME...]"
    load_config
    engine_vars "$1"
    require_running
    local count="${2:-20}" img rt i t0 ms runtimes
    shift $(($# >= 2 ? 2 : 1))
    runtimes="${*:-$(engine_runtimes | tr ',' ' ')}"
    img="$(words "$IMAGES" | awk '{ print $1 }')"
    for rt in $runtimes; do
        edocker run --rm --network none --runtime "$rt" "$img" true >/dev/null # warm-up
        t0="$(now_ms)"
        for ((i = 0; i < count; i++)); do
            edocker run --rm --network none --runtime "$rt" "$img" true >/dev/null
        done
        ms=$(($(now_ms) - t0))
        printf 'engine %s %-6s %3d x docker run --rm: %s s total, %4d ms per container\n' \
            "$E_N" "$rt" "$count" "$(awk -v ms="$ms" 'BEGIN { printf "%6.2f", ms / 1000 }')" $((ms / count))
    done
}

cmd_purge() {
    cmd_stop
    [[ -d "$STATE_DIR" ]] || return 0
    findmnt -rn -o TARGET | grep -q "^$STATE_DIR/" && die "mounts are left under $STATE_DIR; not deleting it"
    step "deleting $STATE_DIR (cached images, certificates, logs)"
    rm -rf --one-file-system "$STATE_DIR"
}

usage() { sed -n '2,/^set -Eeuo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; }

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
freeze) signal_engine STOP "${2:-}" ;;
thaw) signal_engine CONT "${2:-}" ;;
check) shift; cmd_check "$@" ;;
churn) shift; cmd_churn "$@" ;;
env) [[ -f "$STATE_DIR/engines.env" ]] || die "no env file: run start first"; printf '%s\n' "$STATE_DIR/engines.env" ;;
purge) cmd_purge ;;
-h | --help | help) usage ;;
*) usage; exit 2 ;;
esac
