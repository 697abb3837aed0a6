#!/bin/sh
# Runs once while the sandbox image is built (as root, from the Dockerfile):
# installs what is missing, creates the sandbox user and pre-builds matplotlib's font
# cache. Needs no network when the base image already has everything.
set -eu
set -f  # requirement specifiers such as "pandas==2.2.*" are not file patterns

log() { printf '[runbox-build] %s\n' "$*"; }

# pip settings for the install steps only (nothing of this reaches the final image).
if [ -s /tmp/runbox-build/pip-ca.crt ]; then
    export PIP_CERT=/tmp/runbox-build/pip-ca.crt
    export REQUESTS_CA_BUNDLE=/tmp/runbox-build/pip-ca.crt
fi
if [ -z "${PIP_INDEX_URL:-}" ]; then unset PIP_INDEX_URL; fi
# Debian's python refuses pip installs into the system without this (PEP 668).
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore

pip_install() {
    if ! python3 -m pip --version >/dev/null 2>&1; then
        log "error: pip is needed to install $* but the base image has no pip"
        exit 1
    fi
    log "pip install $*"
    python3 -m pip install --progress-bar off "$@"
}

if ! python3 -c 'import numpy, pandas, matplotlib, PIL' 2>/dev/null; then
    pip_install numpy pandas matplotlib pillow
fi
if [ -n "${EXTRA_PACKAGES:-}" ]; then
    # shellcheck disable=SC2086  # word splitting intended: one argument per requirement
    pip_install ${EXTRA_PACKAGES}
fi

# The sandbox user: uid/gid 1000, home = the work dir.
if ! grep -q '^[^:]*:[^:]*:1000:' /etc/group; then
    if command -v groupadd >/dev/null; then groupadd -g 1000 runbox
    else echo 'runbox:x:1000:' >> /etc/group; fi
fi
if ! grep -q '^[^:]*:[^:]*:1000:' /etc/passwd; then
    if command -v useradd >/dev/null; then useradd -u 1000 -g 1000 -d /workspace -M -s /bin/bash runbox
    else echo 'runbox:x:1000:1000:runbox:/workspace:/bin/bash' >> /etc/passwd; fi
fi
mkdir -p /workspace /opt/runbox
chown 1000:1000 /workspace
chmod 0755 /workspace /opt/runbox

# matplotlib's font cache, copied by the agent into MPLCONFIGDIR (on /tmp) at start-up:
# the root file system is read-only, and an unwritable cache dir means a warning on
# stderr and a font scan on every import.
MPLCONFIGDIR=/opt/runbox/matplotlib MPLBACKEND=Agg python3 -c 'import matplotlib.pyplot' 
rm -f /opt/runbox/matplotlib/*.lock
chmod -R a+rX /opt/runbox

rm -rf /root/.cache /tmp/runbox-build
