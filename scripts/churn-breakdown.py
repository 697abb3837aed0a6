#!/usr/bin/env python3
"""Where a fresh sandbox's CPU goes, beyond a bare container: machine-wide busy CPU
time per container (from /proc/stat, so run it on an otherwise quiet machine) and wall
time, sequentially, for containers of the sandbox spec (limits, read-only root, tmpfs,
user, no network, no engine log):

  baseline              python3 -c 'print(1)': create, start, wait, remove
  print+attach+forcerm  a trivial python waiting on stdin: create, attach, start, read
                        its first line, remove with force (the attach and the kill)
  agent+attach+forcerm  runbox's agent: create, attach, start, wait for `ready`,
                        remove with force (what the pool's refill pays, no run)
  print+attach+eof      as print+attach+forcerm, but stdin is closed instead (the
                        container is created with StdinOnce) so that it exits by
                        itself; wait, then remove: the cost of the kill alone
  agent+run+forcerm     the agent runs print(1) after `ready`, then remove with force
  agent+run+eof         the agent runs print(1), stdin is closed, it exits by itself;
                        wait, then remove (a one-shot sandbox ending without a kill)

    scripts/churn-breakdown.py [N] [VARIANT ...]

The container spec is runbox's own, from `runbox image spec` (the binary in $RUNBOX,
default target/release/runbox, with the configuration in $RUNBOX_CONFIG, default
config.yaml), so that it cannot drift from what runbox creates; only the command (the
agent variants run runbox's own), the stdin flags and the labels differ. Containers
carry the label runbox.churn-breakdown and are removed as it goes.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse

N = int(sys.argv[1]) if len(sys.argv) > 1 else 30
RUNBOX = os.environ.get("RUNBOX", "target/release/runbox")
CONFIG = os.environ.get("RUNBOX_CONFIG", "config.yaml")
SPEC = json.loads(subprocess.run([RUNBOX, "--config", CONFIG, "image", "spec"],
                                 check=True, capture_output=True, text=True).stdout)
AGENT_CMD = SPEC["Cmd"]  # the agent, started as runbox starts it

class UConn(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("localhost")
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect("/var/run/docker.sock")

def api(method, path, body=None):
    c = UConn(); c.request(method, path, body=json.dumps(body) if body is not None else None, headers={"Content-Type": "application/json"})
    r = c.getresponse(); data = r.read(); c.close()
    if r.status >= 300: raise RuntimeError(f"{method} {path}: {r.status} {data[:200]}")
    return json.loads(data) if data else None

def cpu():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:8]]
    return (f[0] + f[1] + f[2] + f[5] + f[6]) / 100.0  # busy seconds (USER_HZ 100)

def create(cmd, stdin, stdin_once=False):
    # Not runbox's labels: a runbox server of the same instance would sweep these.
    body = dict(SPEC, Cmd=cmd, OpenStdin=stdin, StdinOnce=stdin_once, AttachStdin=stdin,
                AttachStdout=stdin, AttachStderr=stdin, Labels={"runbox.churn-breakdown": "1"})
    return api("POST", "/containers/create", body)["Id"]

def attach(cid):
    s = socket.socket(socket.AF_UNIX); s.connect("/var/run/docker.sock")
    s.sendall(f"POST /containers/{cid}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf: buf += s.recv(4096)
    return s, buf.split(b"\r\n\r\n", 1)[1]

def wait_ready(s, buf):
    while b'"ready"' not in buf:
        d = s.recv(65536)
        if not d: raise RuntimeError("eof")
        buf += d

def baseline():
    cid = create(["python3", "-c", "print(1)"], False)
    api("POST", f"/containers/{cid}/start"); api("POST", f"/containers/{cid}/wait"); api("DELETE", f"/containers/{cid}?force=1&v=1")

def agent_attached():
    cid = create(AGENT_CMD, True)
    s, buf = attach(cid)
    api("POST", f"/containers/{cid}/start"); wait_ready(s, buf)
    api("DELETE", f"/containers/{cid}?force=1&v=1"); s.close()

def print1_attached():
    cid = create(["python3", "-c", "print('\"ready\"'); import sys; sys.stdin.read()"], True)
    s, buf = attach(cid)
    api("POST", f"/containers/{cid}/start"); wait_ready(s, buf)
    api("DELETE", f"/containers/{cid}?force=1&v=1"); s.close()

def print1_attached_eof():
    cid = create(["python3", "-c", "print('\"ready\"'); import sys; sys.stdin.read()"], True, stdin_once=True)
    s, buf = attach(cid)
    api("POST", f"/containers/{cid}/start"); wait_ready(s, buf)
    s.shutdown(socket.SHUT_WR)
    api("POST", f"/containers/{cid}/wait"); api("DELETE", f"/containers/{cid}?v=1"); s.close()

EXEC = json.dumps({"type": "exec", "language": "python", "code": "print(1)"}).encode()

def run_print1(s):
    s.sendall(len(EXEC).to_bytes(4, "big") + EXEC)
    buf = b""
    while b'"result"' not in buf:
        d = s.recv(65536)
        if not d: raise RuntimeError("eof before the result")
        buf += d

def agent_run(eof):
    cid = create(AGENT_CMD, True, stdin_once=eof)
    s, buf = attach(cid)
    api("POST", f"/containers/{cid}/start"); wait_ready(s, buf)
    run_print1(s)
    if eof:
        s.shutdown(socket.SHUT_WR)
        api("POST", f"/containers/{cid}/wait"); api("DELETE", f"/containers/{cid}?v=1")
    else:
        api("DELETE", f"/containers/{cid}?force=1&v=1")
    s.close()

variants = {"baseline": baseline, "print+attach+forcerm": print1_attached,
            "agent+attach+forcerm": agent_attached, "print+attach+eof": print1_attached_eof,
            "agent+run+forcerm": lambda: agent_run(False), "agent+run+eof": lambda: agent_run(True)}


def remove_leftovers():
    filters = urllib.parse.quote(json.dumps({"label": ["runbox.churn-breakdown"]}))
    for c in api("GET", f"/containers/json?all=1&filters={filters}"):
        api("DELETE", f"/containers/{c['Id']}?force=1&v=1")

try:
    for name in sys.argv[2:] or list(variants):
        f = variants[name]
        f()
        c0, t0 = cpu(), time.time()
        for _ in range(N):
            f()
        c1, t1 = cpu(), time.time()
        print(f"{name:22s} cpu/container {1000*(c1-c0)/N:6.1f} ms  wall {1000*(t1-t0)/N:6.1f} ms", flush=True)
finally:
    remove_leftovers()
