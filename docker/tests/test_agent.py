"""Tests of the sandbox agent (the package docker/agent/) run as a local process.

    python3 -m unittest discover -s docker/tests -v

The agent runs with RUNBOX_WORKDIR set to a temporary directory; no Docker needed.
Container-level behaviour (limits, OOM, matplotlib) is in test_container.py.
"""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agentclient import AGENT, AGENT_PACKAGE, AgentProcess, parse_frames, tiny_png  # noqa: E402

BASE_ENV = {"RUNBOX_PRELOAD": "", "RUNBOX_TRANSPORT": "stdio", "RUNBOX_KILL_STRAYS": "0"}


def import_json_codec():
    """The agent's module json_codec, imported into this process as the agent does."""
    sys.path.insert(0, os.path.dirname(AGENT_PACKAGE))
    try:
        from agent import json_codec
    finally:
        sys.path.pop(0)
    return json_codec


def agent_frames(traceback_text):
    """The frames of a traceback that are in a file of the agent's package."""
    package = os.path.realpath(AGENT_PACKAGE) + os.sep
    files = re.findall(r'^  File "([^"\n]*)", line \d+', traceback_text, re.M)
    return [f for f in files if os.path.realpath(f).startswith(package)]


def b64(data):
    return base64.b64encode(data).decode("ascii")


class AgentTestCase(unittest.TestCase):
    """One agent per test class, with a fresh work dir per test."""

    extra_env = {}

    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="runbox-agent-test-")
        env = dict(BASE_ENV, RUNBOX_WORKDIR=cls.workdir, **cls.extra_env)
        cls.agent = AgentProcess(env=env)

    @classmethod
    def tearDownClass(cls):
        cls.agent.close()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def setUp(self):
        for name in os.listdir(self.workdir):
            path = os.path.join(self.workdir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)

    def run_code(self, code, **fields):
        result, events = self.agent.exec(code, **fields)
        self.assertEqual(result["type"], "result")
        return result, events

    def assertOk(self, result):
        self.assertIsNone(result["error"], result)
        self.assertEqual(result["exit_code"], 0, result)

    def assertError(self, result, kind, message=None):
        self.assertIsNotNone(result["error"], result)
        self.assertEqual(result["error"]["kind"], kind, result)
        if message is not None:
            self.assertEqual(result["error"]["message"], message, result)

    def assertNoAgentFrames(self, traceback_text):
        """The user's traceback shows the user's frames only, none of the agent's."""
        self.assertIn('File "', traceback_text)
        self.assertEqual(agent_frames(traceback_text), [], traceback_text)
        self.assertNotIn(AGENT_PACKAGE, traceback_text)


class ProtocolTests(AgentTestCase):
    def test_ready_message(self):
        ready = self.agent.ready
        self.assertEqual(ready["type"], "ready")
        self.assertEqual(ready["protocol"], 1)
        self.assertEqual(ready["pid"], self.agent.proc.pid)
        self.assertEqual(ready["python"], "%d.%d.%d" % sys.version_info[:3])
        self.assertEqual(ready["preloaded"], [])
        self.assertEqual(ready["failed"], [])

    def test_ping(self):
        self.assertEqual(self.agent.ping(), {"type": "pong"})

    def test_result_has_every_field(self):
        result, _ = self.run_code("print(1)")
        self.assertEqual(set(result), {"type", "stdout", "stderr", "exit_code", "has_value", "value",
                                       "error", "images", "outputs", "truncated", "duration_ms",
                                       "session_ended"})
        self.assertEqual(result["stdout"], "1\n")
        self.assertEqual(result["outputs"], [])
        self.assertOk(result)
        self.assertGreater(result["duration_ms"], 0)

    def test_malformed_frames_get_an_error_result(self):
        for raw in (b"not json", b"[1, 2]", b'{"type": "bogus"}', b"\xff\xfe"):
            self.agent.send_raw(struct.pack(">I", len(raw)) + raw)
            result = self.agent.recv()
            self.assertEqual(result["type"], "result")
            self.assertEqual(result["error"]["kind"], "killed")
            self.assertTrue(result["error"]["message"].startswith("agent error: "), result)
        self.assertEqual(self.agent.ping(), {"type": "pong"})

    def test_invalid_fields_are_invalid_args(self):
        cases = [
            {"code": 1},
            {"language": "cobol", "code": ""},
            {"mode": "notebook", "code": ""},
            {"code": "", "variables": []},
            {"code": "", "files": {}},
            {"code": "", "output_bytes": -1},
            {"code": "", "env": {"A=B": "x"}},
            {"code": "", "call": {"function": 3}},
            {"code": "", "language": "bash", "check": "f"},
        ]
        for fields in cases:
            message = {"type": "exec", "language": "python", "code": ""}
            message.update(fields)
            self.agent.send(message)
            result = self.agent.recv()
            self.assertEqual(result["error"]["kind"], "invalid_args", (fields, result))
        self.assertEqual(self.agent.ping(), {"type": "pong"})

    def test_round_trip_is_fast(self):
        self.run_code("print(1)")
        times = []
        for _ in range(30):
            started = time.perf_counter()
            self.run_code("print(1)")
            times.append(time.perf_counter() - started)
        median_ms = statistics.median(times) * 1000
        print("\n  print(1) round trip (local process): %.2f ms median" % median_ms, file=sys.stderr)
        self.assertLess(median_ms, 50)


class PythonTests(AgentTestCase):
    def test_script_mode_is_like_python_c(self):
        result, _ = self.run_code("import sys\nprint(__name__, sys.argv)\nx = 5\nx")
        self.assertOk(result)
        self.assertEqual(result["stdout"], "__main__ ['-c']\n")
        self.assertFalse(result["has_value"])
        self.assertIsNone(result["value"])

    def test_variables_become_globals(self):
        result, _ = self.run_code("print(n + 1, s, l, d['k'], b, z)", variables={
            "n": 3, "s": "a", "l": [1], "d": {"k": 2.5}, "b": True, "z": None})
        self.assertEqual(result["stdout"], "4 a [1] 2.5 True None\n")

    def test_cell_mode_trailing_expression(self):
        result, _ = self.run_code("x = 10\ny = 20\nx + y", mode="cell")
        self.assertOk(result)
        self.assertTrue(result["has_value"])
        self.assertEqual(result["value"], 30)

    def test_cell_mode_result_global(self):
        result, _ = self.run_code("result = x + y", mode="cell", variables={"x": 10, "y": 20})
        self.assertEqual((result["has_value"], result["value"]), (True, 30))
        result, _ = self.run_code("x = 1", mode="cell")
        self.assertEqual((result["has_value"], result["value"]), (False, None))
        # A trailing print() is None: the global result wins.
        result, _ = self.run_code("result = 7\nprint(result)", mode="cell")
        self.assertEqual((result["stdout"], result["value"]), ("7\n", 7))
        result, _ = self.run_code("None", mode="cell")
        self.assertEqual((result["has_value"], result["value"]), (True, None))

    def test_value_encoding(self):
        code = ("import math, datetime, collections\n"
                "class K:\n    def __repr__(self): return 'K()'\n"
                "({'t': (1, 2), 's': {3, 1, 2}, 'nan': math.nan, 'inf': -math.inf, 1: 'int key',\n"
                "  None: 0, 'nested': [{'a': (True,)}], 'when': datetime.date(2024, 1, 2),\n"
                "  'od': collections.OrderedDict(b=1), 'u': 'é😀'})")
        result, _ = self.run_code(code, mode="cell")
        self.assertOk(result)
        self.assertEqual(result["value"], {
            "t": [1, 2], "s": [1, 2, 3], "nan": None, "inf": None, "1": "int key", "null": 0,
            "nested": [{"a": [True]}], "when": "2024-01-02", "od": {"b": 1}, "u": "é😀"})

    def test_unencodable_values_become_repr(self):
        result, _ = self.run_code("class K:\n    def __repr__(self): return 'K()'\n[K(), 1]", mode="cell")
        self.assertEqual(result["value"], "[K(), 1]")
        result, _ = self.run_code("b'ab'", mode="cell")
        self.assertEqual(result["value"], "b'ab'")
        result, _ = self.run_code("class Bad:\n    def __repr__(self): raise RuntimeError('no')\nBad()",
                                  mode="cell")
        self.assertOk(result)
        self.assertIn("Bad", result["value"])
        result, _ = self.run_code("l = [1]\nl.append(l)\nl", mode="cell")
        self.assertEqual(result["value"], "[1, [...]]")
        result, _ = self.run_code("10 ** 5000", mode="cell")  # beyond int->str limits
        self.assertOk(result)
        self.assertIsInstance(result["value"], str)

    def test_large_values_are_truncated(self):
        result, _ = self.run_code("list(range(1000000))", mode="cell", output_bytes=1000)
        self.assertOk(result)
        self.assertTrue(result["truncated"])
        self.assertIsInstance(result["value"], str)
        self.assertLessEqual(len(result["value"].encode()), 1000)
        self.assertTrue(result["value"].startswith("[0, 1, 2"))
        result, _ = self.run_code("'x' * 5000", mode="cell", output_bytes=1000)
        self.assertTrue(result["truncated"])
        self.assertLessEqual(len(result["value"].encode()), 1000)

    def test_syntax_error(self):
        result, _ = self.run_code("x = (1 +")
        self.assertError(result, "syntax")
        self.assertTrue(result["error"]["message"].startswith("SyntaxError: "), result)
        self.assertTrue(result["error"]["message"].endswith("(line 1)"), result)
        self.assertEqual(result["exit_code"], 1)
        self.assertIn("SyntaxError", result["stderr"])
        result, _ = self.run_code("1 +", mode="cell")
        self.assertError(result, "syntax", "SyntaxError: invalid syntax (line 1)")
        self.assertEqual(result["stderr"], "")  # cell mode: the error says it all
        result, _ = self.run_code("if True:\nprint(1)")
        self.assertError(result, "syntax")
        self.assertTrue(result["error"]["message"].startswith("IndentationError: "), result)

    def test_runtime_error_traceback_has_user_frames_only(self):
        code = "def f():\n    raise ValueError('bad')\n\nf()"
        result, _ = self.run_code(code)
        self.assertError(result, "runtime", "ValueError: bad")
        self.assertEqual(result["exit_code"], 1)
        traceback_text = result["error"]["traceback"]
        self.assertTrue(traceback_text.startswith("Traceback (most recent call last):\n"))
        self.assertIn('File "<string>", line 4, in <module>', traceback_text)
        self.assertIn('File "<string>", line 2, in f', traceback_text)
        self.assertNoAgentFrames(traceback_text)
        self.assertTrue(traceback_text.endswith("ValueError: bad\n"))
        self.assertEqual(result["stderr"], traceback_text)  # script mode prints it
        result, _ = self.run_code(code, mode="cell")
        self.assertEqual(result["stderr"], "")
        self.assertEqual(result["error"]["traceback"], traceback_text)

    def test_source_lines_reach_tracebacks_and_warnings_the_code_makes_itself(self):
        # linecache is loaded only when something asks for it; the user's lines must
        # be there all the same.
        result, _ = self.run_code("import traceback\ntry:\n    1 / 0\nexcept ZeroDivisionError:\n"
                                  "    traceback.print_exc()\nimport warnings\nwarnings.warn('careful')")
        self.assertOk(result)
        self.assertIn('File "<string>", line 3, in <module>\n    1 / 0\n', result["stderr"])
        self.assertIn("<string>:7: UserWarning: careful\n  warnings.warn('careful')\n", result["stderr"])
        result, _ = self.run_code("import linecache\nprint(linecache.getline('<string>', 2), end='')\n# two")
        self.assertEqual(result["stdout"], "print(linecache.getline('<string>', 2), end='')\n")

    def test_long_tracebacks_are_cut(self):
        result, _ = self.run_code("raise ValueError('\\x00' * 500000)", mode="cell")
        self.assertError(result, "runtime")
        self.assertLessEqual(len(result["error"]["traceback"]), 64 << 10)
        self.assertLessEqual(len(result["error"]["message"]), 4003)
        self.assertTrue(result["error"]["traceback"].endswith("\x00\x00\n"))  # the end is kept

    def test_memory_error(self):
        result, _ = self.run_code("raise MemoryError()")
        self.assertError(result, "memory")

    def test_sys_exit(self):
        result, _ = self.run_code("import sys\nprint('a')\nsys.exit(3)")
        self.assertError(result, "runtime", "exited with code 3")
        self.assertEqual((result["exit_code"], result["stdout"]), (3, "a\n"))
        for code in ("import sys; sys.exit(0)", "import sys; sys.exit()", "raise SystemExit"):
            result, _ = self.run_code(code)
            self.assertOk(result)
        result, _ = self.run_code("import sys; sys.exit('fatal')")
        self.assertError(result, "runtime", "exited with code 1")
        self.assertEqual(result["stderr"], "fatal\n")
        result, _ = self.run_code("import os; os._exit(4)")
        self.assertError(result, "runtime", "exited with code 4")

    def test_killed_by_signal(self):
        result, _ = self.run_code("import os, signal\nprint('x', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)")
        self.assertError(result, "killed")
        self.assertEqual(result["exit_code"], -9)
        self.assertEqual(result["stdout"], "x\n")

    def test_environment(self):
        result, _ = self.run_code(
            "import os, sys\nprint(os.environ['FOO'], os.environ['HOME'] == os.getcwd(), os.getcwd())\n"
            "print(os.environ.get('RUNBOX_AGENT_KEY'), sys.stdin.read() == '')",
            env={"FOO": "bar"})
        self.assertOk(result)
        self.assertEqual(result["stdout"], "bar True %s\nNone True\n" % os.path.realpath(self.workdir))

    def test_threads_are_joined_and_atexit_runs(self):
        code = ("import threading, time, atexit\n"
                "atexit.register(lambda: print('atexit'))\n"
                "def work():\n    time.sleep(0.1)\n    print('thread')\n"
                "threading.Thread(target=work).start()")
        result, _ = self.run_code(code)
        self.assertEqual(result["stdout"], "thread\natexit\n")

    def test_main_module_is_the_user_code(self):
        code = ("import pickle, __main__\nclass P:\n    pass\n"
                "print(type(pickle.loads(pickle.dumps(P()))).__name__, hasattr(__main__, 'run_forked'))")
        result, _ = self.run_code(code)
        self.assertOk(result)
        self.assertEqual(result["stdout"], "P False\n")

    def test_a_fork_running_off_the_end_is_harmless(self):
        result, _ = self.run_code("import os\npid = os.fork()\nos.write(1, b'pid\\n' if pid else b'child\\n')\n"
                                  "if pid:\n    os.waitpid(pid, 0)\nresult = 5", mode="cell")
        self.assertOk(result)
        self.assertEqual(sorted(result["stdout"].split()), ["child", "pid"])
        self.assertEqual(result["value"], 5)

    def test_files_in_the_work_dir_are_importable(self):
        files = [{"path": "helper.py", "content": b64(b"VALUE = 42\n")}]
        result, _ = self.run_code("import helper\nprint(helper.VALUE)", files=files)
        self.assertEqual(result["stdout"], "42\n")

    def test_a_module_named_as_the_agent_s_package_is_the_code_s_own(self):
        # The code sees no module of the agent, as under `python -c`.
        probe = "import sys\nprint([m for m in sys.modules if m.split('.')[0] == 'agent'])"
        result, _ = self.run_code(probe)
        self.assertEqual(result["stdout"], "[]\n", result)
        result, _ = self.run_code("import agent\nprint(agent.VALUE)",
                                  files=[{"path": "agent.py", "content": b64(b"VALUE = 'mine'\n")}])
        self.assertEqual(result["stdout"], "mine\n", result)


class JsonTests(unittest.TestCase):
    """The agent's json_dumps / json_loads against the json package they stand in for."""

    CASES = [None, True, False, 0, -1, 2 ** 80, 1.5, -0.0, 1e300, 1 / 3, "", "plain",
             "quote \" backslash \\ controls \n\t\x00\x1f del \x7f", "é ü 漢字 🎉",
             "lone \ud800 surrogate", [], {}, [1, [2, [3, {"a": None}]]],
             {"k": "v", "n": [1.25, "x"], "nested": {"deeper": [True, None]}},
             {"unicode ключ": "значение"}]

    @classmethod
    def setUpClass(cls):
        cls.agent = import_json_codec()

    def both_ways(self, check):
        check()
        saved, self.agent._json = self.agent._json, None  # the json package fallback
        try:
            check()
        finally:
            self.agent._json = saved

    def test_the_c_module_is_used(self):
        self.assertIsNotNone(self.agent._json)

    def test_a_frame_of_the_agent_s_package_is_recognised(self):
        # What the tracebacks of user code are checked against finds the agent's frames.
        import traceback
        try:
            self.agent.json_loads("{")
            self.fail("json_loads accepted '{'")
        except ValueError:
            text = traceback.format_exc()
        frames = agent_frames(text)
        self.assertTrue(frames, text)
        self.assertEqual([os.path.basename(f) for f in frames], ["json_codec.py"] * len(frames))
        self.assertEqual(agent_frames('  File "<string>", line 1, in <module>\n'), [])

    def test_dumps_gives_the_text_of_json_dumps(self):
        def check():
            for value in self.CASES:
                for ensure_ascii in (False, True):
                    for separators in ((",", ":"), (", ", ": ")):
                        self.assertEqual(
                            self.agent.json_dumps(value, ensure_ascii=ensure_ascii, separators=separators),
                            json.dumps(value, ensure_ascii=ensure_ascii, separators=separators))
            self.assertEqual(self.agent.json_dumps(float("nan")), "NaN")
            with self.assertRaises(ValueError):
                self.agent.json_dumps([float("inf")], allow_nan=False)
            with self.assertRaises(TypeError):
                self.agent.json_dumps({"x": object()})
            with self.assertRaises(ValueError):
                cycle = []
                cycle.append(cycle)
                self.agent.json_dumps(cycle)
        self.both_ways(check)

    def test_loads_gives_the_values_of_json_loads(self):
        def check():
            for value in self.CASES:
                text = json.dumps(value, ensure_ascii=False)
                for data in (text, " \n%s\t " % text, text.encode("utf-8", "surrogatepass")
                             if "\ud800" not in text else text):
                    self.assertEqual(self.agent.json_loads(data), json.loads(data))
            self.assertEqual(repr(self.agent.json_loads("[NaN, -Infinity, 1e400]")),
                             repr(json.loads("[NaN, -Infinity, 1e400]")))
            self.assertEqual(self.agent.json_loads('"\\ud83c\\udf89"'), "🎉")
            for bad in ("", "  ", "{", "[1,]", "[1] x", "{'a': 1}", "\ufeff{}", b"\xff{}", "01"):
                with self.assertRaises(ValueError, msg=repr(bad)):
                    self.agent.json_loads(bad)
        self.both_ways(check)


class OutputTests(AgentTestCase):
    def test_stdout_and_stderr(self):
        result, _ = self.run_code("import sys\nprint('out')\nprint('err', file=sys.stderr)")
        self.assertEqual((result["stdout"], result["stderr"]), ("out\n", "err\n"))

    def test_output_without_newline_and_invalid_utf8(self):
        result, _ = self.run_code("import os\nos.write(1, b'a\\xffb')\nos.write(2, b'\\xe9t\\xc3\\xa9')")
        self.assertOk(result)
        self.assertEqual(result["stdout"], "a\ufffdb")
        self.assertEqual(result["stderr"], "\ufffdté")

    def test_caps(self):
        result, _ = self.run_code("print('x' * 5000)\nimport sys\nsys.stderr.write('y' * 10)",
                                  output_bytes=100)
        self.assertOk(result)
        self.assertEqual(result["stdout"], "x" * 100)
        self.assertEqual(result["stderr"], "y" * 10)
        self.assertTrue(result["truncated"])

    def test_cap_never_splits_a_character(self):
        result, _ = self.run_code("print('é' * 100)", output_bytes=7)
        self.assertEqual(result["stdout"], "ééé")
        self.assertTrue(result["truncated"])
        result, _ = self.run_code("import os\nos.write(1, b'\\xff' * 50)", output_bytes=10)
        self.assertLessEqual(len(result["stdout"].encode()), 10)

    def test_huge_output_keeps_agent_memory_bounded(self):
        code = ("import os\nchunk = b'z' * (1 << 20)\n"
                "for _ in range(100):\n    os.write(1, chunk)\nprint('done')")
        result, _ = self.run_code(code, output_bytes=1 << 20, stream=True, timeout=120)
        self.assertOk(result)
        self.assertEqual(len(result["stdout"]), 1 << 20)
        self.assertTrue(result["truncated"])
        with open("/proc/%d/status" % self.agent.proc.pid) as f:
            status = dict(line.split(":", 1) for line in f)
        peak_kib = int(status["VmHWM"].split()[0])
        self.assertLess(peak_kib, 80 * 1024, "agent peak RSS %d KiB" % peak_kib)

    def test_output_limit_kills_the_run(self):
        result, _ = self.run_code("while True:\n    print('x' * 1000)", output_bytes=1000,
                                  output_kill_bytes=200000)
        self.assertError(result, "output_limit")
        self.assertEqual(result["exit_code"], -9)
        self.assertEqual(len(result["stdout"]), 1000)
        self.assertTrue(result["truncated"])

    def test_closing_stdout_early(self):
        result, _ = self.run_code("import os, sys\nprint('a', flush=True)\nos.close(1)\n"
                                  "sys.stderr.write('still here')")
        self.assertEqual((result["stdout"], result["stderr"]), ("a\n", "still here"))
        result, _ = self.run_code("import sys\nsys.stdout.close()\nsys.stderr.close()\nresult = 1",
                                  mode="cell")
        self.assertOk(result)
        self.assertEqual(result["value"], 1)

    def test_stream_events(self):
        code = "import sys, time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.05)\nsys.stderr.write('e')"
        result, events = self.run_code(code, stream=True)
        stdout = "".join(e["data"] for e in events if e["type"] == "stdout")
        stderr = "".join(e["data"] for e in events if e["type"] == "stderr")
        self.assertEqual(stdout, result["stdout"])
        self.assertEqual(stdout, "0\n1\n2\n")
        self.assertEqual(stderr, "e")
        self.assertGreaterEqual(len([e for e in events if e["type"] == "stdout"]), 2)
        result, events = self.run_code("print('x' * 5000)", stream=True, output_bytes=100)
        self.assertEqual(sum(len(e["data"]) for e in events), 100)
        result, events = self.run_code("print(1)")
        self.assertEqual(events, [])

    def test_stream_events_end_at_line_ends(self):
        # print() writes its parts one by one; a part written a little later must not
        # become an event of its own, while a prompt without a newline still shows.
        code = ("import sys, time\nfor i in range(3):\n    sys.stdout.write('line')\n"
                "    time.sleep(0.03)\n    sys.stdout.write(' %d\\n' % i)\n    time.sleep(0.15)\n"
                "sys.stdout.write('prompt> ')\ntime.sleep(0.3)\nprint('end')")
        result, events = self.run_code(code, stream=True)
        texts = [e["data"] for e in events if e["type"] == "stdout"]
        self.assertEqual(texts, ["line 0\n", "line 1\n", "line 2\n", "prompt> ", "end\n"])
        self.assertEqual("".join(texts), result["stdout"])

    def test_leftover_processes_are_killed(self):
        started = time.monotonic()
        result, _ = self.run_code("sleep 600 &\necho $!", language="bash")
        self.assertLess(time.monotonic() - started, 5)
        pid = int(result["stdout"])
        self.assertFalse(process_alive(pid), "the background process survived")

    def test_background_process_holding_the_pipe_is_drained_then_killed(self):
        started = time.monotonic()
        result, _ = self.run_code("(for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; sleep 1; done) &\necho started",
                                  language="bash")
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 2)
        self.assertTrue(result["stdout"].startswith("started\n") or result["stdout"].startswith("1\n"))


def process_alive(pid, wait=2.0):
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.05)
    return True


class BashTests(AgentTestCase):
    def test_bash(self):
        result, _ = self.run_code("echo hi; echo oops >&2", language="bash")
        self.assertOk(result)
        self.assertEqual((result["stdout"], result["stderr"]), ("hi\n", "oops\n"))
        self.assertFalse(result["has_value"])

    def test_variables_are_environment_variables(self):
        result, _ = self.run_code('echo "$s|$n|$b|$l|$o|$z"', language="bash", variables={
            "s": "text", "n": 3, "b": True, "l": [1, 2], "o": {"a": 1}, "z": None})
        self.assertEqual(result["stdout"], 'text|3|true|[1, 2]|{"a": 1}|null\n')

    def test_non_zero_exit(self):
        result, _ = self.run_code("exit 3", language="bash")
        self.assertError(result, "runtime", "exited with code 3")
        self.assertEqual(result["exit_code"], 3)

    def test_sigpipe_is_default_in_bash(self):
        result, _ = self.run_code("yes | head -n 2", language="bash")
        self.assertOk(result)
        self.assertEqual(result["stdout"], "y\ny\n")
        self.assertEqual(result["stderr"], "")

    def test_key_and_env(self):
        result, _ = self.run_code('echo "${RUNBOX_AGENT_KEY:-none} $FOO $HOME"', language="bash",
                                  env={"FOO": "bar"})
        self.assertEqual(result["stdout"], "none bar %s\n" % os.path.realpath(self.workdir))


class FileAndImageTests(AgentTestCase):
    def test_input_files(self):
        files = [{"path": "data.csv", "content": b64(b"a,b\n1,2\n")},
                 {"path": "sub/dir/x.bin", "content": b64(b"\x00\x01")},
                 {"path": "./dot.txt", "content": b64(b"")}]
        result, _ = self.run_code("cat data.csv; od -An -tx1 sub/dir/x.bin; ls dot.txt", language="bash",
                                  files=files)
        self.assertOk(result)
        self.assertEqual(result["stdout"], "a,b\n1,2\n 00 01\ndot.txt\n")

    def test_bad_paths_are_invalid_args(self):
        for path in ("../escape.txt", "/etc/passwd", "a/../../b", "", "a/..", "x\0y"):
            result, _ = self.run_code("print(1)", files=[{"path": path, "content": ""}])
            self.assertError(result, "invalid_args")
            self.assertEqual(result["stdout"], "")
        result, _ = self.run_code("print(1)", files=[{"path": "ok.txt", "content": "***"}])
        self.assertError(result, "invalid_args")
        self.assertIn("ok.txt", result["error"]["message"])

    def test_symlinks_are_not_followed(self):
        outside = tempfile.mkdtemp(prefix="runbox-outside-")
        try:
            target = os.path.join(outside, "target.txt")
            with open(target, "w") as f:
                f.write("original")
            os.symlink(target, os.path.join(self.workdir, "link.txt"))
            os.symlink(outside, os.path.join(self.workdir, "linkdir"))
            result, _ = self.run_code("print(1)", files=[{"path": "link.txt", "content": b64(b"pwned")}])
            self.assertError(result, "invalid_args")
            self.assertIn("link.txt", result["error"]["message"])
            result, _ = self.run_code("print(1)", files=[{"path": "linkdir/x.txt", "content": b64(b"x")}])
            self.assertError(result, "invalid_args")
            self.assertIn("linkdir", result["error"]["message"])
            with open(target) as f:
                self.assertEqual(f.read(), "original")
            self.assertEqual(os.listdir(outside), ["target.txt"])
        finally:
            shutil.rmtree(outside)

    def test_images(self):
        png = tiny_png()
        code = ("import base64\nopen('b.png', 'wb').write(base64.b64decode(PNG))\n"
                "open('a.svg', 'w').write('<svg xmlns=\"http://www.w3.org/2000/svg\"/>')\n"
                "open('notes.txt', 'w').write('no')\n"
                "import os\nos.makedirs('sub', exist_ok=True)\nopen('sub/c.png', 'wb').write(b'x')")
        result, _ = self.run_code(code, variables={"PNG": b64(png)})
        self.assertOk(result)
        self.assertEqual([(i["name"], i["mime"]) for i in result["images"]],
                         [("a.svg", "image/svg+xml"), ("b.png", "image/png")])
        self.assertEqual(base64.b64decode(result["images"][1]["data_base64"]), png)
        self.assertFalse(result["truncated"])

    def test_only_new_or_changed_images(self):
        png = tiny_png()
        files = [{"path": "input.png", "content": b64(png)}, {"path": "touched.PNG", "content": b64(png)}]
        result, _ = self.run_code("import os\nos.utime('touched.PNG', ns=(1, 1))", files=files)
        self.assertEqual([i["name"] for i in result["images"]], ["touched.PNG"])

    def test_symlinked_images_are_skipped(self):
        result, _ = self.run_code("import os\nos.symlink('/etc/hostname', 'evil.png')\n"
                                  "os.mkfifo('fifo.png')")
        self.assertOk(result)
        self.assertEqual(result["images"], [])

    def test_image_budget(self):
        code = ("for name in ('a.png', 'b.png', 'c.png'):\n"
                "    open(name, 'wb').write(b'x' * 600)")
        result, _ = self.run_code(code, image_bytes=1300)
        self.assertEqual([i["name"] for i in result["images"]], ["a.png", "b.png"])
        self.assertTrue(result["truncated"])


class CallTests(AgentTestCase):
    CODE = ("def add(a, b=2, *rest, scale=1, **extra):\n    return (a + b) * scale\n"
            "def fails(x):\n    raise KeyError(x)\n"
            "NOT_CALLABLE = 3\n"
            "if __name__ == '__main__':\n    print('main block ran')\n")

    def test_call(self):
        result, _ = self.run_code(self.CODE, call={"function": "add", "args": {"a": 1, "scale": 10}})
        self.assertOk(result)
        self.assertEqual((result["has_value"], result["value"], result["stdout"]), (True, 30, ""))

    def test_call_errors(self):
        result, _ = self.run_code(self.CODE, call={"function": "missing", "args": {}})
        self.assertError(result, "runtime", "no callable named 'missing'")
        result, _ = self.run_code(self.CODE, call={"function": "NOT_CALLABLE", "args": {}})
        self.assertError(result, "runtime", "no callable named 'NOT_CALLABLE'")
        result, _ = self.run_code(self.CODE, call={"function": "fails", "args": {"x": "k"}})
        self.assertError(result, "runtime", "KeyError: 'k'")
        self.assertIn('line 4, in fails', result["error"]["traceback"])
        self.assertNoAgentFrames(result["error"]["traceback"])
        self.assertEqual(result["stderr"], "")
        result, _ = self.run_code(self.CODE, call={"function": "add", "args": {"nope": 1}})
        self.assertError(result, "runtime")
        self.assertIn("TypeError", result["error"]["message"])
        result, _ = self.run_code("def f(:\n  pass", call={"function": "f", "args": {}})
        self.assertError(result, "syntax")

    def test_check(self):
        result, _ = self.run_code(self.CODE, check="add")
        self.assertOk(result)
        self.assertEqual(result["value"], {"callable": True, "parameters": [
            {"name": "a", "kind": "positional_or_keyword", "has_default": False},
            {"name": "b", "kind": "positional_or_keyword", "has_default": True},
            {"name": "rest", "kind": "var_positional", "has_default": False},
            {"name": "scale", "kind": "keyword_only", "has_default": True},
            {"name": "extra", "kind": "var_keyword", "has_default": False},
        ]})
        result, _ = self.run_code(self.CODE, check="nope")
        self.assertError(result, "runtime", "no callable named 'nope'")


class PersistentTests(AgentTestCase):
    def run_p(self, code, **fields):
        return self.run_code(code, persistent=True, mode=fields.pop("mode", "cell"), **fields)

    def test_state_survives(self):
        self.assertOk(self.run_p("import math\nx = 41\ndef inc(v): return v + 1")[0])
        result, _ = self.run_p("inc(x)")
        self.assertEqual(result["value"], 42)
        result, _ = self.run_p("print(math.pi > 3, __name__)")
        self.assertEqual(result["stdout"], "True __main__\n")
        self.assertEqual(result["value"], None)

    def test_a_module_named_as_the_agent_s_package_is_the_session_s_own(self):
        result, _ = self.run_p("import agent\nagent.VALUE",
                               files=[{"path": "agent.py", "content": b64(b"VALUE = 'mine'\n")}])
        self.assertEqual(result["value"], "mine", result)
        result, _ = self.run_p("print('alive')")
        self.assertEqual(result["stdout"], "alive\n", result)

    def test_errors_do_not_end_the_session(self):
        self.run_p("y = 1")
        result, _ = self.run_p("def g():\n    raise ValueError('bad')\ng()")
        self.assertError(result, "runtime", "ValueError: bad")
        self.assertNoAgentFrames(result["error"]["traceback"])
        result, _ = self.run_p("import sys\nsys.exit(5)")
        self.assertError(result, "runtime", "exited with code 5")
        self.assertEqual(result["exit_code"], 5)
        result, _ = self.run_p("1 +")
        self.assertError(result, "syntax")
        result, _ = self.run_p("y + 1")
        self.assertEqual(result["value"], 2)

    def test_output_capture_and_restore(self):
        result, _ = self.run_p("import os, sys\nprint('a')\nos.write(1, b'b\\n')\nprint('c', file=sys.stderr)\n"
                               "os.write(2, b'\\xff')")
        self.assertEqual((result["stdout"], result["stderr"]), ("a\nb\n", "c\n\ufffd"))
        result, _ = self.run_p("import sys\nsys.stdout.close()")
        self.assertOk(result)
        result, _ = self.run_p("print('back')")
        self.assertEqual(result["stdout"], "back\n")
        self.assertEqual(self.agent.ping(), {"type": "pong"})

    def test_script_mode_prints_tracebacks(self):
        result, _ = self.run_p("raise KeyError('k')", mode="script")
        self.assertIn("KeyError: 'k'", result["stderr"])

    def test_output_limit(self):
        result, _ = self.run_p("while True:\n    print('x' * 1000)", output_bytes=1000,
                               output_kill_bytes=200000)
        self.assertError(result, "output_limit")
        self.assertEqual(len(result["stdout"]), 1000)
        result, _ = self.run_p("print('alive')")
        self.assertOk(result)
        self.assertEqual(result["stdout"], "alive\n")

    def test_stream_and_images_and_files(self):
        png = tiny_png()
        result, events = self.run_p("import base64\nprint('s')\nopen('p.png', 'wb').write(base64.b64decode(PNG))",
                                    variables={"PNG": b64(png)}, stream=True,
                                    files=[{"path": "in.txt", "content": b64(b"hi")}])
        self.assertEqual(events, [{"type": "stdout", "data": "s\n"}])
        self.assertEqual([i["name"] for i in result["images"]], ["p.png"])
        result, _ = self.run_p("open('in.txt').read()")
        self.assertEqual(result["value"], "hi")
        self.assertEqual(result["images"], [])

    def test_a_fork_running_off_the_end_does_not_return_into_the_agent(self):
        result, _ = self.run_p("import os\npid = os.fork()\nos.write(1, b'child\\n' if pid == 0 else b'parent\\n')\n"
                               "if pid:\n    os.waitpid(pid, 0)")
        self.assertOk(result)
        self.assertEqual(sorted(result["stdout"].split()), ["child", "parent"])
        self.assertEqual(self.agent.ping(), {"type": "pong"})
        result, _ = self.run_p("pid != 0")
        self.assertEqual(result["value"], True)

    def test_cwd_is_reset_and_subprocess_status_kept(self):
        result, _ = self.run_p("import os, subprocess\nos.makedirs('d', exist_ok=True)\nos.chdir('d')\n"
                               "p = subprocess.Popen(['sh', '-c', 'exit 3'])")
        self.assertOk(result)
        time.sleep(0.2)
        result, _ = self.run_p("os.getcwd() == os.environ['HOME'], p.wait()")
        self.assertEqual(result["value"], [True, 3])

    def test_call_in_a_session(self):
        result, _ = self.run_p("def twice(v):\n    return v * 2\nif __name__ == '__main__':\n    print('main')",
                               call={"function": "twice", "args": {"v": 4}})
        self.assertEqual((result["value"], result["stdout"]), (8, ""))
        result, _ = self.run_p("__name__")
        self.assertEqual(result["value"], "__main__")

    def test_bash_in_a_session_sees_the_files(self):
        self.run_p("open('f.txt', 'w').write('from python')")
        result, _ = self.run_code("cat f.txt", language="bash", persistent=True)
        self.assertEqual(result["stdout"], "from python")

    def test_round_trip(self):
        self.run_p("1")
        times = []
        for _ in range(30):
            started = time.perf_counter()
            self.run_p("print(1)")
            times.append(time.perf_counter() - started)
        median_ms = statistics.median(times) * 1000
        print("\n  print(1) round trip (session, local process): %.2f ms median" % median_ms,
              file=sys.stderr)
        self.assertLess(median_ms, 50)


class PreloadTests(unittest.TestCase):
    def test_failed_preload_is_reported(self):
        workdir = tempfile.mkdtemp(prefix="runbox-agent-test-")
        try:
            agent = AgentProcess(env=dict(BASE_ENV, RUNBOX_WORKDIR=workdir,
                                          RUNBOX_PRELOAD="json, no_such_module_xyz,,decimal"))
            try:
                self.assertEqual(agent.ready["preloaded"], ["json", "decimal"])
                self.assertEqual(len(agent.ready["failed"]), 1)
                self.assertEqual(agent.ready["failed"][0]["module"], "no_such_module_xyz")
                self.assertIn("ModuleNotFoundError", agent.ready["failed"][0]["error"])
                result, _ = agent.exec("import sys\nprint('decimal' in sys.modules)")
                self.assertEqual(result["stdout"], "True\n")
            finally:
                agent.close()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def test_stray_prints_do_not_corrupt_frames(self):
        workdir = tempfile.mkdtemp(prefix="runbox-agent-test-")
        try:
            with open(os.path.join(workdir, "noisy.py"), "w") as f:
                f.write("print('noise on stdout')\nimport os\nos.write(1, b'raw noise')\n")
            agent = AgentProcess(env=dict(BASE_ENV, RUNBOX_WORKDIR=workdir, RUNBOX_PRELOAD="noisy",
                                          PYTHONPATH=workdir))
            try:
                self.assertEqual(agent.ready["preloaded"], ["noisy"])
                self.assertEqual(agent.ping(), {"type": "pong"})
            finally:
                agent.close()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


class AgentImportTests(unittest.TestCase):
    def test_the_agent_never_imports_a_module_the_code_left_in_the_work_dir(self):
        # Started in the work dir, as in a sandbox. The agent imports base64 with the
        # first input file; the code's base64.py must not be what it gets.
        workdir = tempfile.mkdtemp(prefix="runbox-agent-test-")
        self.addCleanup(shutil.rmtree, workdir, True)
        agent = AgentProcess(env=dict(BASE_ENV, RUNBOX_WORKDIR=workdir), cwd=workdir)
        self.addCleanup(agent.close)
        result, _ = agent.exec("open('base64.py', 'w').write('raise SystemExit(\"imported\")\\n')")
        self.assertIsNone(result["error"], result)
        result, _ = agent.exec("print(open('in.txt').read())",
                               files=[{"path": "in.txt", "content": b64(b"decoded")}])
        self.assertIsNone(result["error"], result)
        self.assertEqual(result["stdout"], "decoded\n")


class PreforkTests(unittest.TestCase):
    """The first one-shot run goes to the child forked while the agent waited."""

    def fresh_agent(self, **env):
        workdir = tempfile.mkdtemp(prefix="runbox-agent-test-")
        self.addCleanup(shutil.rmtree, workdir, True)
        agent = AgentProcess(env=dict(BASE_ENV, RUNBOX_WORKDIR=workdir, **env))
        self.addCleanup(agent.close)
        return agent

    def test_the_first_run_is_the_waiting_child(self):
        agent = self.fresh_agent()
        code = ("import os, sys\nprint(os.getppid() == %d, os.getpid() == os.getpgid(0), "
                "sys.argv, os.environ['FOO'], open('in.txt').read(), n + 1)" % agent.ready["pid"])
        files = [{"path": "in.txt", "content": b64(b"from the request")}]
        result, _ = agent.exec(code, variables={"n": 41}, env={"FOO": "bar"}, files=files)
        self.assertIsNone(result["error"], result)
        self.assertEqual(result["stdout"], "True True ['-c'] bar from the request 42\n")
        # Later runs fork on demand and behave the same.
        second, _ = agent.exec("print(open('in.txt').read())")
        self.assertEqual(second["stdout"], "from the request\n")

    def test_start_up_imports_only_what_every_run_needs(self):
        # Every module the agent imports at start-up costs each fresh sandbox CPU time.
        heavy = ["json", "re", "enum", "linecache", "tokenize", "traceback", "ast", "base64",
                 "threading", "datetime", "reprlib", "signal", "inspect"]
        probe = "import sys\nprint(' '.join(m for m in %r if m in sys.modules))" % (heavy,)
        bare = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              check=True).stdout.split()
        result, _ = self.fresh_agent().exec(probe)
        self.assertIsNone(result["error"], result)
        extra = sorted(set(result["stdout"].split()) - set(bare))
        self.assertEqual(extra, [], "imported by the agent before the code ran")

    def test_the_waiting_child_runs_bash_too(self):
        agent = self.fresh_agent()
        result, _ = agent.exec("echo $((n * 2))", language="bash", variables={"n": 21})
        self.assertEqual(result["stdout"], "42\n")

    def test_a_persistent_run_lets_the_waiting_child_go(self):
        agent = self.fresh_agent()
        result, _ = agent.exec("x = 1\nprint('session')", persistent=True)
        self.assertEqual(result["stdout"], "session\n")
        oneshot, _ = agent.exec("print('fork')")
        self.assertEqual(oneshot["stdout"], "fork\n")

    def test_a_dead_waiting_child_is_replaced_by_a_fork(self):
        agent = self.fresh_agent()
        children = [int(p) for p in open("/proc/%d/task/%d/children"
                                         % (agent.ready["pid"], agent.ready["pid"])).read().split()]
        self.assertEqual(len(children), 1)
        os.kill(children[0], signal.SIGKILL)
        time.sleep(0.1)
        result, _ = agent.exec("print('still fine')")
        self.assertEqual(result["stdout"], "still fine\n")

    def test_prefork_can_be_turned_off(self):
        agent = self.fresh_agent(RUNBOX_PREFORK="0")
        pid = agent.ready["pid"]
        self.assertEqual(open("/proc/%d/task/%d/children" % (pid, pid)).read().split(), [])
        result, _ = agent.exec("print(1)")
        self.assertEqual(result["stdout"], "1\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpTests(unittest.TestCase):
    KEY = "k3y-for-tests"

    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="runbox-agent-test-")
        cls.port = free_port()
        env = dict(os.environ, **BASE_ENV)
        env.update(RUNBOX_WORKDIR=cls.workdir, RUNBOX_TRANSPORT="http",
                   RUNBOX_AGENT_PORT=str(cls.port), RUNBOX_AGENT_KEY=cls.KEY)
        cls.proc = subprocess.Popen([sys.executable, "-u", AGENT], env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", cls.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or cls.proc.poll() is not None:
                    raise
                time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait()
        cls.proc.stderr.close()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def request(self, method, path, body=None, key=KEY, conn=None):
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["X-Runbox-Key"] = key
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if own:
            conn.close()
        return response, data

    def test_key_is_required(self):
        for key in (None, "", "wrong", self.KEY + "x"):
            for method, path in (("GET", "/ready"), ("GET", "/ping"), ("POST", "/exec")):
                response, _ = self.request(method, path, body=b"{}" if method == "POST" else None, key=key)
                self.assertEqual(response.status, 403, (key, path))

    def test_ready_and_ping(self):
        response, data = self.request("GET", "/ready")
        self.assertEqual(response.status, 200)
        ready = json.loads(data)
        self.assertEqual((ready["type"], ready["transport"]), ("ready", "http"))
        self.assertEqual(ready["pid"], self.proc.pid)
        response, data = self.request("GET", "/ping")
        self.assertEqual(json.loads(data), {"type": "pong"})
        response, _ = self.request("GET", "/nope")
        self.assertEqual(response.status, 404)
        response, _ = self.request("GET", "/exec")
        self.assertEqual(response.status, 405)

    def test_exec_returns_frames(self):
        message = {"type": "exec", "language": "python", "mode": "cell", "stream": True,
                   "code": "import os\nprint('hi')\nprint(os.environ.get('RUNBOX_AGENT_KEY'))\n6 * 7"}
        response, data = self.request("POST", "/exec", json.dumps(message).encode())
        self.assertEqual(response.status, 200)
        self.assertEqual(response.getheader("Content-Type"), "application/x-runbox-frames")
        frames = parse_frames(data)
        self.assertEqual(frames[-1]["type"], "result")
        self.assertEqual(frames[-1]["value"], 42)
        self.assertEqual(frames[-1]["stdout"], "hi\nNone\n")
        self.assertEqual("".join(f["data"] for f in frames[:-1]), "hi\nNone\n")

    def test_keep_alive_ready_then_exec(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            response, data = self.request("GET", "/ready", conn=conn)
            self.assertEqual(response.status, 200)
            for i in range(3):
                body = json.dumps({"type": "exec", "language": "bash", "code": "echo %d" % i}).encode()
                response, data = self.request("POST", "/exec", body, conn=conn)
                self.assertEqual(parse_frames(data)[-1]["stdout"], "%d\n" % i)
            response, _ = self.request("GET", "/ping", conn=conn)
            self.assertEqual(response.status, 200)
        finally:
            conn.close()

    def test_malformed_body(self):
        response, data = self.request("POST", "/exec", b"{not json")
        self.assertEqual(response.status, 200)
        frames = parse_frames(data)
        self.assertEqual(frames[-1]["error"]["kind"], "killed")

    def test_http_1_0_is_close_delimited(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        try:
            body = json.dumps({"type": "exec", "language": "python", "code": "print(1)"}).encode()
            sock.sendall(b"POST /exec HTTP/1.0\r\nX-Runbox-Key: %s\r\nContent-Length: %d\r\n\r\n%s"
                         % (self.KEY.encode(), len(body), body))
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            sock.close()
        head, _, payload = data.partition(b"\r\n\r\n")
        self.assertIn(b"Connection: close", head)
        self.assertEqual(parse_frames(payload)[-1]["stdout"], "1\n")

    def test_key_is_not_in_the_agent_environ(self):
        # The agent is not dumpable: its environ is closed to its own user altogether.
        try:
            with open("/proc/%d/environ" % self.proc.pid, "rb") as f:
                self.assertNotIn(self.KEY.encode(), f.read())
        except PermissionError:
            pass


if __name__ == "__main__":
    unittest.main()
