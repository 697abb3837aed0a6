"""Container-level tests of the sandbox image: the agent under the limits runbox applies.

Run by scripts/test-agent.sh, which builds the image and sets RUNBOX_TEST_IMAGE (and
RUNBOX_TEST_RUN_ID, the label value that lets it remove exactly the containers made
here). Skipped when RUNBOX_TEST_IMAGE is not set. Prints the measured figures.
"""

import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agentclient import AgentProcess, parse_frames  # noqa: E402

IMAGE = os.environ.get("RUNBOX_TEST_IMAGE", "")
RUN_ID = os.environ.get("RUNBOX_TEST_RUN_ID", "manual")
LABEL = "runbox-agent-test=%s" % RUN_ID

# runbox's seccomp profile, as runbox sends it with every sandbox (the docker CLI reads
# the file and sends it inline the same way).
SECCOMP_PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                               "..", "..", "crates", "sandbox", "seccomp", "runbox.json")

SANDBOX_FLAGS = [
    "--read-only",
    "--tmpfs", "/workspace:rw,nosuid,nodev,size=64m,uid=1000,gid=1000,mode=0755",
    "--tmpfs", "/tmp:rw,nosuid,nodev,size=64m,mode=1777",
    "--user", "1000:1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
    "--security-opt", "seccomp=" + SECCOMP_PROFILE,
    "--pids-limit", "128", "--memory", "512m", "--memory-swap", "512m",
    "--ulimit", "nofile=1024:1024", "--ulimit", "core=0",
]

# What runbox starts in a sandbox (crates/sandbox/src/spec.rs): the agent's entry,
# compiled at image build.
AGENT_COMMAND = ["python3", "-u", "/opt/runbox/agent/__main__.pyc"]

FIGURES = []


def report(line):
    FIGURES.append(line)
    print("\n  " + line, file=sys.stderr)


def container_name():
    return "runbox-agent-test-%s-%s" % (RUN_ID, uuid.uuid4().hex[:8])


def start_stdio(preload=""):
    name = container_name()
    argv = ["docker", "run", "--rm", "-i", "--name", name, "--label", LABEL] + SANDBOX_FLAGS + [
        "--network", "none",
        "-e", "RUNBOX_PRELOAD=" + preload, "-e", "RUNBOX_WORKDIR=/workspace",
        "-e", "RUNBOX_TRANSPORT=stdio",
        IMAGE] + AGENT_COMMAND
    agent = AgentProcess(argv=argv, env={}, startup_timeout=120)
    agent.name = name
    return agent


def stop(agent):
    agent.close(timeout=20)
    subprocess.run(["docker", "rm", "-f", agent.name], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def docker_stats_memory(name):
    out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", name],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    return out.stdout.strip()


def round_trip_ms(agent, count=40):
    agent.exec("print(1)")
    times = []
    for _ in range(count):
        started = time.perf_counter()
        result, _ = agent.exec("print(1)")
        times.append((time.perf_counter() - started) * 1000)
        assert result["stdout"] == "1\n", result
    return statistics.median(times)


PLOT = ("import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [4, 1, 9])\nplt.title('t')\nplt.savefig('plot.png')\nprint('saved')")
# A figure left open: with outputs it is captured at the end of the run, without them
# it is dropped with the run.
FIGURE = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [4, 1, 9])\nplt.title('t')"


def paired_ms(agent, code, count, persistent=False):
    """Median ms of an exec of `code` with outputs off and on, taken in turns so that
    the machine's load weighs on both alike."""
    times = {False: [], True: []}
    for _ in range(count):
        for outputs in (False, True):
            started = time.perf_counter()
            result, _ = agent.exec(code, outputs=outputs, persistent=persistent)
            times[outputs].append((time.perf_counter() - started) * 1000)
            assert result["error"] is None, result
    return statistics.median(times[False]), statistics.median(times[True])


@unittest.skipUnless(IMAGE, "RUNBOX_TEST_IMAGE is not set (scripts/test-agent.sh sets it)")
class ContainerTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.agent = start_stdio("")

    @classmethod
    def tearDownClass(cls):
        stop(cls.agent)

    def exec(self, code, **fields):
        result, _ = self.agent.exec(code, timeout=120, **fields)
        return result

    def test_runs_as_the_sandbox_user_on_a_read_only_root(self):
        result = self.exec("id -u; id -g; echo $HOME; pwd; touch /opt/x 2>&1 || true; touch /tmp/x && echo tmp-ok",
                           language="bash")
        lines = result["stdout"].splitlines()
        self.assertEqual(lines[:4], ["1000", "1000", "/workspace", "/workspace"])
        self.assertIn("Read-only file system", lines[4])
        self.assertEqual(lines[5], "tmp-ok")

    def test_matplotlib_plot_writes_nothing_to_stderr(self):
        result = self.exec(PLOT)
        self.assertIsNone(result["error"], result)
        self.assertEqual(result["stderr"], "")
        self.assertEqual(result["stdout"], "saved\n")
        self.assertEqual([i["name"] for i in result["images"]], ["plot.png"])
        self.assertEqual(result["images"][0]["mime"], "image/png")

    def test_plt_show_is_an_output_and_nothing_on_stderr(self):
        result = self.exec(FIGURE + "\nplt.show()\nprint('shown')", outputs=True, env={"DISPLAY": ":0"})
        self.assertIsNone(result["error"], result)
        self.assertEqual((result["stdout"], result["stderr"], result["images"]), ("shown\n", "", []))
        [item] = result["outputs"]
        self.assertEqual(item["data"]["text/plain"], "<Figure size 640x480 with 1 Axes>")
        self.assertTrue(item["data"]["image/png"].startswith("iVBORw0KGgo"))

    def test_pandas_and_numpy_values(self):
        result = self.exec("import numpy as np, pandas as pd\n"
                           "{'a': np.arange(3), 'f': np.float64(1.5), 'nan': np.nan,\n"
                           " 'df': pd.DataFrame({'x': [1, 2]}), 's': pd.Series([0.5], index=['k'])}",
                           mode="cell")
        self.assertIsNone(result["error"], result)
        self.assertEqual(result["value"], {"a": [0, 1, 2], "f": 1.5, "nan": None,
                                           "df": {"x": {"0": 1, "1": 2}}, "s": {"k": 0.5}})

    def test_fork_bomb_is_contained(self):
        started = time.monotonic()
        result = self.exec(":(){ :|:& };:", language="bash")
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 30)
        self.assertEqual(self.agent.ping(), {"type": "pong"})
        time.sleep(0.5)
        after = self.exec("ps -eo pid=,comm= | grep -vw ps | wc -l", language="bash")
        # docker-init, the agent, the bash running this check (and its pipeline)
        self.assertLessEqual(int(after["stdout"]), 5, after)
        report("fork bomb: result after %.2f s, error %s; the container stayed usable"
               % (elapsed, result["error"] and result["error"]["kind"]))

    def test_python_fork_loop_and_setsid_escapes_are_killed(self):
        code = ("import os, subprocess\n"
                "subprocess.Popen(['setsid', 'sleep', '600'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
                "subprocess.Popen(['sleep', '601'], start_new_session=True, stdout=subprocess.DEVNULL)\n"
                "print('spawned')")
        result = self.exec(code)
        self.assertEqual(result["stdout"], "spawned\n")
        after = self.exec("ps -eo comm= | grep -c '^sleep' || true", language="bash")
        self.assertEqual(after["stdout"].strip(), "0")

    def test_out_of_memory_is_memory(self):
        result = self.exec("x = bytearray(2 * 1024 ** 3)\nprint('survived')")
        self.assertIsNotNone(result["error"], result)
        self.assertEqual(result["error"]["kind"], "memory", result)
        self.assertIn(result["exit_code"], (-9, 1))
        self.assertEqual(self.agent.ping(), {"type": "pong"})
        again = self.exec("print('ok')")
        self.assertEqual(again["stdout"], "ok\n")
        report("OOM: bytearray(2 GiB) -> kind %s, exit_code %s, message %r"
               % (result["error"]["kind"], result["exit_code"], result["error"]["message"]))

    def test_oom_in_a_bash_child_is_memory(self):
        result = self.exec("python3 -c 'bytearray(2 * 1024 ** 3)'", language="bash")
        self.assertEqual(result["error"]["kind"], "memory", result)

    def test_key_cannot_be_read_by_user_code(self):
        result = self.exec("import os\nprint(os.environ.get('RUNBOX_AGENT_KEY'))")
        self.assertEqual(result["stdout"], "None\n")

    def test_pids_limit_threads(self):
        result = self.exec("import threading, time\nts = []\n"
                           "try:\n    for i in range(500):\n        t = threading.Thread(target=time.sleep, args=(2,), daemon=True)\n"
                           "        t.start(); ts.append(t)\nexcept RuntimeError as e:\n    print('limited', len(ts))")
        self.assertIn("limited", result["stdout"])


@unittest.skipUnless(IMAGE, "RUNBOX_TEST_IMAGE is not set (scripts/test-agent.sh sets it)")
class AgentFilesTests(unittest.TestCase):
    def run_in_image(self, argv, flags=()):
        return subprocess.run(
            ["docker", "run", "--rm", "-i", "--name", container_name(), "--label", LABEL]
            + list(flags) + [IMAGE] + argv,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, errors="replace", timeout=120)

    def test_the_agent_starts_from_byte_code_compiled_at_build(self):
        # Compiling at start would cost every container tens of ms of CPU: every module
        # of the package comes from its __pycache__ entry, none from its source.
        argv = AGENT_COMMAND[:1] + ["-v"] + AGENT_COMMAND[1:]
        run = self.run_in_image(argv, SANDBOX_FLAGS + ["--network", "none"])
        self.assertIn('"ready"', run.stdout, run.stderr[-2000:])
        loaded = re.findall(r"^# code object from '?(/opt/runbox/agent/[^'\n]*)'?$", run.stderr, re.M)
        self.assertTrue(loaded, run.stderr[-2000:])
        from_source = [path for path in loaded if not path.endswith(".pyc")]
        self.assertEqual(from_source, [])
        modules = self.run_in_image(["sh", "-c", "cd /opt/runbox/agent && ls *.py"]).stdout.split()
        # Every module but the entry, which runs as the script __main__.pyc.
        self.assertEqual(len(loaded), len(modules) - 1, (loaded, modules))

    def test_the_sandbox_user_can_read_the_agent_s_files_not_write_them(self):
        # Without the read-only root, so that the files' own permissions are what counts.
        run = self.run_in_image(["sh", "-c", "id -u; find /opt/runbox/agent -writable; "
                                 "find /opt/runbox/agent ! -readable; echo end"])
        self.assertEqual(run.stdout.split(), ["1000", "end"], run.stderr)


@unittest.skipUnless(IMAGE, "RUNBOX_TEST_IMAGE is not set (scripts/test-agent.sh sets it)")
class PreloadAndFigures(unittest.TestCase):
    def test_start_to_ready_round_trip_and_idle_memory(self):
        for preload in ("", "numpy,matplotlib"):
            agent = start_stdio(preload)
            try:
                label = "preload=%s" % (preload or "none")
                self.assertEqual(agent.ready["preloaded"], [m for m in preload.split(",") if m])
                self.assertEqual(agent.ready["failed"], [])
                self.assertEqual(agent.ready["python"].split(".")[0], "3")
                report("%s: container start -> ready %.0f ms" % (label, agent.ready_seconds * 1000))
                if preload:
                    result, _ = agent.exec("import sys\nprint('matplotlib.pyplot' in sys.modules, 'numpy' in sys.modules)")
                    self.assertEqual(result["stdout"], "True True\n")
                report("%s: print(1) exec round trip over stdio %.2f ms (median of 40)"
                       % (label, round_trip_ms(agent)))
                started = time.perf_counter()
                result, _ = agent.exec(PLOT)
                plot_ms = (time.perf_counter() - started) * 1000
                self.assertEqual(result["stderr"], "")
                report("%s: matplotlib plot exec %.0f ms" % (label, plot_ms))
                stderr_before = agent.proc.stderr
                time.sleep(2)
                report("%s: idle memory (docker stats --no-stream): %s" % (label, docker_stats_memory(agent.name)))
                self.assertIsNotNone(stderr_before)
            finally:
                stop(agent)

    def test_what_outputs_cost(self):
        agent = start_stdio("numpy,matplotlib")
        try:
            agent.exec("print(1)")  # the child forked ahead; later runs fork on demand
            off, on = paired_ms(agent, "print(1)", 40)
            report("outputs: warm print(1) exec %.2f ms without outputs, %.2f ms with (median of 40 each)"
                   % (off, on))
            off, on = paired_ms(agent, FIGURE, 15)
            result, _ = agent.exec(FIGURE, outputs=True)
            self.assertEqual(result["stderr"], "")
            png = len(result["outputs"][0]["data"]["image/png"]) * 3 // 4
            report("outputs: one figure left open: exec %.1f ms without outputs, %.1f ms captured "
                   "(median of 15 each): capturing it costs %.1f ms, a %d KiB PNG"
                   % (off, on, on - off, png // 1024))
            agent.exec("import matplotlib.pyplot as plt", persistent=True)
            off, on = paired_ms(agent, "print(1)", 40, persistent=True)
            report("outputs: session print(1) exec %.2f ms without outputs, %.2f ms with (median of 40 each)"
                   % (off, on))
        finally:
            stop(agent)

    def test_failed_preload_is_not_fatal(self):
        agent = start_stdio("numpy,not_a_module")
        try:
            self.assertEqual(agent.ready["preloaded"], ["numpy"])
            self.assertEqual(agent.ready["failed"][0]["module"], "not_a_module")
            self.assertEqual(agent.ping(), {"type": "pong"})
        finally:
            stop(agent)


@unittest.skipUnless(IMAGE, "RUNBOX_TEST_IMAGE is not set (scripts/test-agent.sh sets it)")
class HttpContainerTests(unittest.TestCase):
    KEY = uuid.uuid4().hex

    @classmethod
    def setUpClass(cls):
        cls.name = container_name()
        argv = ["docker", "run", "-d", "--rm", "--name", cls.name, "--label", LABEL] + SANDBOX_FLAGS + [
            "--network", "bridge", "-p", "127.0.0.1::8080",
            "-e", "RUNBOX_PRELOAD=numpy", "-e", "RUNBOX_WORKDIR=/workspace",
            "-e", "RUNBOX_TRANSPORT=http", "-e", "RUNBOX_AGENT_PORT=8080",
            "-e", "RUNBOX_AGENT_KEY=" + cls.KEY,
            IMAGE] + AGENT_COMMAND
        cls.started = time.monotonic()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        port = subprocess.run(["docker", "port", cls.name, "8080/tcp"], check=True,
                              stdout=subprocess.PIPE, text=True).stdout.split("\n")[0]
        cls.port = int(port.rsplit(":", 1)[1])
        deadline = time.monotonic() + 60
        while True:
            try:
                status, ready = cls.get("/ready")
                if status == 200:
                    cls.ready = ready
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the http agent did not become ready")
            time.sleep(0.05)
        cls.ready_ms = (time.monotonic() - cls.started) * 1000

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["docker", "rm", "-f", cls.name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    @classmethod
    def get(cls, path, key=None):
        conn = http.client.HTTPConnection("127.0.0.1", cls.port, timeout=10)
        try:
            conn.request("GET", path, headers={"X-Runbox-Key": key or cls.KEY})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            conn.close()

    def test_http_transport(self):
        self.assertEqual(self.ready["transport"], "http")
        self.assertEqual(self.ready["preloaded"], ["numpy"])
        self.assertEqual(self.get("/ready", key="wrong")[0], 403)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            times = []
            for _ in range(20):
                body = json.dumps({"type": "exec", "language": "python", "code": "print(1)"})
                started = time.perf_counter()
                conn.request("POST", "/exec", body=body, headers={"X-Runbox-Key": self.KEY})
                frames = parse_frames(conn.getresponse().read())
                times.append((time.perf_counter() - started) * 1000)
                self.assertEqual(frames[-1]["stdout"], "1\n")
            body = json.dumps({"type": "exec", "language": "python",
                               "code": "import os\nprint(os.environ.get('RUNBOX_AGENT_KEY'))\n"
                                       "try:\n    print(open('/proc/%d/environ' % os.getppid(), 'rb').read().count(KEY.encode()))\n"
                                       "except OSError as e:\n    print('unreadable')\n"
                                       "try:\n    print(open('/proc/1/environ', 'rb').read().count(KEY.encode()))\n"
                                       "except OSError as e:\n    print('unreadable')",
                               "variables": {"KEY": self.KEY}})
            conn.request("POST", "/exec", body=body, headers={"X-Runbox-Key": self.KEY})
            result = parse_frames(conn.getresponse().read())[-1]
        finally:
            conn.close()
        lines = result["stdout"].splitlines()
        # The agent is not dumpable: its environ (and fds, and memory) are closed to the code.
        self.assertEqual(lines[:2], ["None", "unreadable"], result)
        report("http (preload=numpy): container start -> /ready %.0f ms; print(1) exec round trip %.2f ms; "
               "key in /proc/1/environ (pid 1) visible to user code: %s"
               % (self.ready_ms, statistics.median(times), "no" if lines[2] in ("0", "unreadable") else "yes"))


def tearDownModule():
    if FIGURES:
        print("\nMeasured figures:", file=sys.stderr)
        for line in FIGURES:
            print("  " + line, file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
