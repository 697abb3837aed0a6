"""Tests of a run's outputs (docs/agent-protocol.md, "Outputs"): display(), the run's value
as Jupyter shows it, matplotlib's figures, the IPython shim, the caps, the stream events,
and the channel that the code can write on too.

Run like test_agent.py, by scripts/test-agent.sh inside a container of the sandbox image,
which has numpy, pandas, matplotlib and pillow.
"""

import base64
import json
import os
import shutil
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agentclient import AgentProcess, tiny_png  # noqa: E402
from test_agent import BASE_ENV, AgentTestCase, b64  # noqa: E402

MIME_TYPES = {"text/plain", "text/html", "text/markdown", "text/latex", "image/png",
              "image/jpeg", "image/svg+xml", "application/json"}
SIGNATURES = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [4, 1, 9])\n"
# Where the Agg backend's show() warns (matplotlib 3.6 stays quiet without a display).
WITH_DISPLAY = {"DISPLAY": ":0"}
# The code finds its end of the outputs channel: the fd display() writes to.
FIND_CHANNEL = ("import os\n"
                "_write, _fds = os.write, []\n"
                "def _spy(fd, data):\n"
                "    _fds.append(fd)\n"
                "    return _write(fd, data)\n"
                "os.write = _spy\n"
                "display('probe')\n"
                "os.write = _write\n"
                "channel = _fds[-1]\n")


def png_size(data):
    """(width, height) from a PNG's IHDR."""
    return struct.unpack(">II", data[16:24])


class OutputsTestCase(AgentTestCase):
    def run_outputs(self, code, **fields):
        fields.setdefault("outputs", True)
        result, events = self.run_code(code, **fields)
        for item in result["outputs"]:
            self.assertWellFormed(item)
        return result, events

    def assertWellFormed(self, item):
        self.assertEqual(set(item), {"type", "data", "metadata", "truncated"}, item)
        self.assertIn(item["type"], ("display_data", "execute_result"))
        self.assertLessEqual(set(item["data"]), MIME_TYPES, item)
        self.assertIsInstance(item["metadata"], dict)
        self.assertIsInstance(item["truncated"], bool)
        json.dumps(item, allow_nan=False)
        for mime, value in item["data"].items():
            if mime in SIGNATURES:
                self.assertTrue(base64.b64decode(value, validate=True).startswith(SIGNATURES[mime]))
            elif mime != "application/json":
                self.assertIsInstance(value, str)

    def assertFigure(self, item, kind="display_data", size="640x480"):
        self.assertEqual(item["type"], kind)
        self.assertEqual(set(item["data"]), {"text/plain", "image/png"}, item["data"].get("text/plain"))
        self.assertEqual(item["data"]["text/plain"], "<Figure size %s with 1 Axes>" % size)
        self.assertFalse(item["truncated"])

    def texts(self, result):
        return [item["data"].get("text/plain") for item in result["outputs"]]


class FigureTests(OutputsTestCase):
    """pyplot imported by the code."""

    def test_show_gives_one_png_item_and_nothing_on_stderr(self):
        code = PLOT + "plt.show()\nprint('after')"
        result, _ = self.run_outputs(code, env=WITH_DISPLAY)
        self.assertOk(result)
        self.assertEqual((result["stdout"], result["stderr"]), ("after\n", ""))
        self.assertEqual(len(result["outputs"]), 1, result["outputs"])
        self.assertFigure(result["outputs"][0])
        png = base64.b64decode(result["outputs"][0]["data"]["image/png"])
        self.assertGreater(png_size(png)[0], 100)
        self.assertEqual(result["images"], [])
        self.assertFalse(result["truncated"])
        # Without outputs: as before, nothing shown, and Agg's warning.
        result, _ = self.run_code(code, env=WITH_DISPLAY)
        self.assertEqual(result["outputs"], [])
        self.assertIn("UserWarning", result["stderr"])

    def test_two_figures_are_two_items_in_number_order(self):
        code = ("import matplotlib.pyplot as plt\nplt.figure(2)\nplt.plot([1])\n"
                "plt.figure(1, figsize=(3, 2))\nplt.plot([2])\nplt.show()\nprint(plt.get_fignums())")
        result, _ = self.run_outputs(code)
        self.assertEqual(result["stdout"], "[]\n")
        self.assertEqual(len(result["outputs"]), 2)
        self.assertFigure(result["outputs"][0], size="300x200")
        self.assertFigure(result["outputs"][1])

    def test_a_figure_left_open_is_shown_at_the_end(self):
        result, _ = self.run_outputs(PLOT + "print('no show')")
        self.assertEqual(result["stdout"], "no show\n")
        self.assertEqual(len(result["outputs"]), 1)
        self.assertFigure(result["outputs"][0])
        result, _ = self.run_outputs(PLOT + "plt.close('all')")
        self.assertEqual(result["outputs"], [])

    def test_a_figure_is_shown_once(self):
        result, _ = self.run_outputs(PLOT + "plt.show()\nplt.show()")
        self.assertEqual(len(result["outputs"]), 1)
        # As the value: its execute_result, and not again at the end.
        result, _ = self.run_outputs("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
                                     "ax.plot([1, 2])\nfig", mode="cell")
        self.assertEqual(len(result["outputs"]), 1)
        self.assertFigure(result["outputs"][0], kind="execute_result")
        self.assertEqual(result["value"], "<Figure size 640x480 with 1 Axes>")

    def test_a_trailing_semicolon_shows_the_figure_not_the_lines(self):
        result, _ = self.run_outputs(PLOT.rstrip("\n") + ";", mode="cell")
        self.assertEqual(len(result["outputs"]), 1)
        self.assertFigure(result["outputs"][0])
        self.assertTrue(result["value"].startswith("[<matplotlib.lines.Line2D"), result["value"])
        result, _ = self.run_outputs(PLOT, mode="cell")
        self.assertEqual([item["type"] for item in result["outputs"]], ["execute_result", "display_data"])

    def test_saved_files_are_images_as_before(self):
        result, _ = self.run_outputs(PLOT + "plt.savefig('plot.png')")
        self.assertEqual([image["name"] for image in result["images"]], ["plot.png"])
        self.assertEqual(len(result["outputs"]), 1)


class PreloadedFigureTests(FigureTests):
    """pyplot preloaded, as in the warm pool."""

    extra_env = {"RUNBOX_PRELOAD": "matplotlib"}


class ValueAndDisplayTests(OutputsTestCase):
    def test_display_of_a_dataframe(self):
        result, _ = self.run_outputs("import pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})\n"
                                     "display(df)\nprint(repr(df))")
        self.assertOk(result)
        [item] = result["outputs"]
        self.assertEqual(item["type"], "display_data")
        self.assertEqual(set(item["data"]), {"text/plain", "text/html"})
        self.assertEqual(item["data"]["text/plain"] + "\n", result["stdout"])
        self.assertIn("<table", item["data"]["text/html"])

    def test_a_dataframe_as_the_value(self):
        code = "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})"
        result, _ = self.run_outputs(code, mode="cell")
        before, _ = self.run_code(code, mode="cell")
        self.assertEqual(before["outputs"], [])
        self.assertEqual((result["has_value"], result["value"]), (True, before["value"]))
        self.assertEqual(result["value"], {"a": {"0": 1, "1": 2}, "b": {"0": "x", "1": "y"}})
        [item] = result["outputs"]
        self.assertEqual(item["type"], "execute_result")
        self.assertEqual(set(item["data"]), {"text/plain", "text/html"})
        self.assertIn("<td>x</td>", item["data"]["text/html"])

    def test_a_pil_image_as_the_value(self):
        result, _ = self.run_outputs("from PIL import Image\nImage.new('RGB', (3, 2), 'red')", mode="cell")
        [item] = result["outputs"]
        self.assertEqual(item["type"], "execute_result")
        self.assertEqual(set(item["data"]), {"text/plain", "image/png"})
        self.assertEqual(png_size(base64.b64decode(item["data"]["image/png"])), (3, 2))
        self.assertTrue(result["value"].startswith("<PIL.Image.Image image mode=RGB size=3x2"))

    def test_the_value_as_jupyter_shows_it(self):
        for code, texts, value in (("1 + 1", ["2"], 2), ("1 + 1;", [], 2), ("None", [], None),
                                   ("x = 3", [], None), ("result = 5", [], 5),
                                   ("result = 5\nprint('p')", [], 5), ("'é'", ["'é'"], "é")):
            result, _ = self.run_outputs(code, mode="cell")
            self.assertEqual(self.texts(result), texts, code)
            self.assertEqual(result["value"], value, code)
            self.assertTrue(all(item["type"] == "execute_result" for item in result["outputs"]))
        result, _ = self.run_outputs("1 + 1")  # script mode has no value
        self.assertEqual(result["outputs"], [])

    def test_a_call_s_return_value(self):
        code = "def f(n):\n    display('inside')\n    return {'n': n}\n"
        result, _ = self.run_outputs(code, call={"function": "f", "args": {"n": 1}})
        self.assertOk(result)
        self.assertEqual(result["value"], {"n": 1})
        self.assertEqual([(item["type"], item["data"]) for item in result["outputs"]],
                         [("display_data", {"text/plain": "'inside'"}),
                          ("execute_result", {"text/plain": "{'n': 1}"})])
        result, _ = self.run_outputs(code, check="f")
        self.assertEqual(result["outputs"], [])

    def test_ipython_display_objects(self):
        code = ("import base64, io, pathlib\n"
                "from IPython.display import display, HTML, Markdown, SVG, JSON, Latex, Image\n"
                "from PIL import Image as Pil\n"
                "jpeg = io.BytesIO()\nPil.new('RGB', (2, 2)).save(jpeg, 'jpeg')\n"
                "display(HTML('<b>bold</b>'), Markdown('*it*'), SVG('<svg xmlns=\"http://www.w3.org/2000/svg\"/>'),\n"
                "        JSON({'a': [1, 2]}), Latex('$x^2$'), Image(filename='pic.png'),\n"
                "        Image(base64.b64decode(PNG)), Image(pathlib.Path('pic.png'), width=10),\n"
                "        Image('pic.png'), Image(jpeg.getvalue()))\n"
                "import IPython\nfrom IPython.core.display import HTML as CoreHTML\n"
                "print(IPython.get_ipython(), CoreHTML is HTML, repr(HTML('x')))")
        result, _ = self.run_outputs(code, variables={"PNG": b64(tiny_png())},
                                     files=[{"path": "pic.png", "content": b64(tiny_png())}])
        self.assertOk(result)
        self.assertEqual(result["stdout"], "None True <IPython.core.display.HTML object>\n")
        rich = [{k: v for k, v in item["data"].items() if k != "text/plain"} for item in result["outputs"]]
        png = b64(tiny_png())
        self.assertEqual(rich, [{"text/html": "<b>bold</b>"}, {"text/markdown": "*it*"},
                                {"image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg"/>'},
                                {"application/json": {"a": [1, 2]}}, {"text/latex": "$x^2$"},
                                {"image/png": png}, {"image/png": png}, {"image/png": png},
                                {"image/png": png}, rich[-1]])
        self.assertEqual(list(rich[-1]), ["image/jpeg"])
        self.assertEqual(result["outputs"][3]["metadata"], {"application/json": {"expanded": False, "root": "root"}})
        self.assertEqual(result["outputs"][7]["metadata"], {"image/png": {"width": 10}})

    def test_a_raising_repr_method_is_skipped(self):
        code = ("class Obj:\n"
                "    def _repr_html_(self): raise RuntimeError('broken')\n"
                "    def _repr_markdown_(self): return '*ok*'\n"
                "    def _repr_png_(self): return b'not a png'\n"
                "    def __repr__(self): return 'Obj()'\n"
                "class BadRepr:\n"
                "    def __repr__(self): raise ValueError('no')\n"
                "class Proxy:\n"
                "    def __getattr__(self, name): return lambda *a, **k: '<b>everything</b>'\n"
                "    def __repr__(self): return 'Proxy()'\n"
                "display(Obj(), BadRepr(), Proxy())\nObj()")
        result, _ = self.run_outputs(code, mode="cell")
        self.assertOk(result)
        self.assertEqual(result["stderr"], "")
        self.assertEqual([item["data"] for item in result["outputs"]],
                         [{"text/plain": "Obj()", "text/markdown": "*ok*"},
                          {"text/plain": "<BadRepr object (repr failed: ValueError)>"},
                          {"text/plain": "Proxy()"},
                          {"text/plain": "Obj()", "text/markdown": "*ok*"}])

    def test_repr_mimebundle(self):
        code = ("class B:\n"
                "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
                "        return ({'text/html': '<i>b</i>', 'application/x-unknown': 'dropped',\n"
                "                 'application/json': {'k': [1]}}, {'text/html': {'isolated': True}})\n"
                "    def _repr_html_(self): return 'not used: the bundle has html'\n"
                "    def _repr_markdown_(self): return '*md*'\n"
                "    def __repr__(self): return 'B()'\n"
                "display(B())\n"
                "display({'text/plain': 'raw', 'image/png': base64.b64decode(PNG), 'x/y': 1}, raw=True)\n"
                "from IPython.display import display_html\ndisplay_html('<p>raw html</p>', raw=True)")
        result, _ = self.run_outputs("import base64\n" + code, variables={"PNG": b64(tiny_png())})
        self.assertOk(result)
        first, raw, html = result["outputs"]
        self.assertEqual(first["data"], {"text/plain": "B()", "text/html": "<i>b</i>",
                                         "application/json": {"k": [1]}, "text/markdown": "*md*"})
        self.assertEqual(first["metadata"], {"text/html": {"isolated": True}})
        self.assertEqual(raw["data"], {"text/plain": "raw", "image/png": b64(tiny_png())})
        self.assertEqual(html["data"], {"text/html": "<p>raw html</p>"})

    def test_items_made_before_an_error_are_kept(self):
        result, _ = self.run_outputs("display('a')\nraise ValueError('x')")
        self.assertError(result, "runtime", "ValueError: x")
        self.assertEqual(self.texts(result), ["'a'"])

    def test_outputs_off_is_as_before(self):
        result, _ = self.run_code("display(1)")
        self.assertError(result, "runtime", "NameError: name 'display' is not defined")
        result, _ = self.run_code("import IPython")
        self.assertError(result, "runtime", "ModuleNotFoundError: No module named 'IPython'")
        result, _ = self.run_code("import pandas as pd\npd.DataFrame({'a': [1]})", mode="cell")
        self.assertEqual((result["outputs"], result["value"]), ([], {"a": {"0": 1}}))
        result, _ = self.run_outputs("echo hi", language="bash")
        self.assertEqual((result["stdout"], result["outputs"]), ("hi\n", []))


class CapTests(OutputsTestCase):
    def test_text_is_capped_and_text_plain_kept(self):
        code = ("from IPython.display import HTML\n"
                "display(HTML('<p>' + 'h' * 5000 + '</p>'))\ndisplay('x' * 5000)\ndisplay('y')")
        result, _ = self.run_outputs(code, outputs_bytes=1000)
        self.assertOk(result)
        self.assertTrue(result["truncated"])
        html, text = result["outputs"]  # no room left for the third
        self.assertEqual(html["data"], {"text/plain": "<IPython.core.display.HTML object>"})
        self.assertTrue(html["truncated"])
        self.assertTrue(text["truncated"])
        self.assertTrue(text["data"]["text/plain"].startswith("'xxx"))
        total = sum(64 + len(item["data"]["text/plain"].encode()) for item in result["outputs"])
        self.assertLessEqual(total, 1000)

    def test_the_number_of_items_is_bounded(self):
        result, _ = self.run_outputs("for i in range(100000):\n    display(i)\nprint('done')",
                                     outputs_bytes=10000, timeout=120)
        self.assertEqual(result["stdout"], "done\n")
        self.assertTrue(result["truncated"])
        self.assertLessEqual(len(result["outputs"]), 10000 // 64)
        self.assertEqual(self.texts(result)[:3], ["0", "1", "2"])

    def test_the_outputs_stay_within_their_share_of_the_frame(self):
        # Control characters are the worst case of JSON escaping (\u0001: 6 bytes each).
        result, _ = self.run_outputs("for i in range(1000):\n    display({'text/plain': '\\x01' * 50}, raw=True)",
                                     outputs_bytes=10000)
        size = len(json.dumps(result["outputs"], ensure_ascii=False, separators=(",", ":")).encode())
        self.assertLessEqual(size, 6 * 10000)
        self.assertTrue(result["truncated"])

    def test_images_share_image_bytes_with_the_files(self):
        # The items' images come first, the files get what is left.
        code = ("import base64\nfrom IPython.display import Image\n"
                "open('big.png', 'wb').write(base64.b64decode(PNG) + b'x' * 600)\n"
                "display(Image(base64.b64decode(PNG)))")
        result, _ = self.run_outputs(code, variables={"PNG": b64(tiny_png())}, image_bytes=650)
        self.assertEqual(list(result["outputs"][0]["data"]), ["text/plain", "image/png"])
        self.assertEqual(result["images"], [])
        self.assertTrue(result["truncated"])
        # An image that does not fit is dropped; its item keeps text/plain.
        result, _ = self.run_outputs(PLOT + "plt.show()", image_bytes=1000)
        [item] = result["outputs"]
        self.assertEqual(item["data"], {"text/plain": "<Figure size 640x480 with 1 Axes>"})
        self.assertTrue(item["truncated"])
        self.assertTrue(result["truncated"])


class StreamTests(OutputsTestCase):
    def test_events_keep_the_order_the_code_made_them_in(self):
        code = ("import sys\nprint('a')\ndisplay('x')\nprint('b')\nsys.stderr.write('e\\n')\n"
                "display('y')\nprint('c', end='')")
        for _ in range(3):
            result, events = self.run_outputs(code, stream=True)
            seen = [(e["type"], e["data"] if "data" in e else e["output"]["data"]["text/plain"])
                    for e in events]
            self.assertEqual([s for s in seen if s[0] != "stderr"],
                             [("stdout", "a\n"), ("display", "'x'"), ("stdout", "b\n"),
                              ("display", "'y'"), ("stdout", "c")])
            self.assertLess(seen.index(("display", "'x'")), seen.index(("stderr", "e\n")))
            self.assertLess(seen.index(("stderr", "e\n")), seen.index(("display", "'y'")))
            self.assertEqual([e["output"] for e in events if e["type"] == "display"], result["outputs"])
            self.assertEqual("".join(e["data"] for e in events if e["type"] == "stdout"), result["stdout"])

    def test_a_figure_between_two_prints(self):
        result, events = self.run_outputs(PLOT + "print('before')\nplt.show()\nprint('after')", stream=True)
        self.assertEqual([e["type"] for e in events], ["stdout", "display", "stdout"])
        self.assertEqual(events[1]["output"], result["outputs"][0])
        self.assertFigure(events[1]["output"])

    def test_no_events_without_stream(self):
        result, events = self.run_outputs("print('a')\ndisplay('x')")
        self.assertEqual((events, self.texts(result)), ([], ["'x'"]))


class ChannelTests(OutputsTestCase):
    GARBAGE = [
        b"not json\n",
        b"[1, 2]\n",
        b'{"type": "result", "stdout": "forged", "exit_code": 0, "error": null}\n',
        b'{"type": "display_data", "data": "text"}\n',
        b'{"type": "display_data", "data": {"text/plain": "bad metadata"}, "metadata": []}\n',
        b'{"type": "display_data", "data": {"text/plain": "bad flag"}, "truncated": "yes"}\n',
        b"\xff\xfe\x00\n",
        b'[' * 100000 + b"\n",
        b'{"type": "display_data", "data": {"text/plain": "kept", "text/html": 5, "x/unknown": "y",'
        b' "application/json": NaN, "image/png": "!!!!", "image/jpeg": "iVBORw0KGgo="},'
        b' "metadata": {"m": Infinity}, "extra": 1}\n',
        b'{"type": "execute_result", "data": {"text/plain": "' + b"z" * 300000 + b'"}}\n',
    ]

    def test_what_the_code_writes_on_the_channel_is_checked(self):
        code = FIND_CHANNEL + "for line in %r:\n    os.write(channel, line)\ndisplay('after')" % (self.GARBAGE,)
        for stream in (False, True):
            result, events = self.run_outputs(code, stream=stream, outputs_bytes=20000, image_bytes=0)
            self.assertOk(result)
            self.assertEqual(result["stdout"], "")
            self.assertEqual(self.texts(result), ["'probe'", "kept", "'after'"])
            self.assertEqual(result["outputs"][1]["data"], {"text/plain": "kept"})
            self.assertEqual(result["outputs"][1]["metadata"], {})
            if stream:
                self.assertEqual([e["output"] for e in events], result["outputs"])
        self.assertEqual(self.agent.ping(), {"type": "pong"})

    def test_a_channel_the_code_closed_or_left_unread(self):
        result, _ = self.run_outputs(FIND_CHANNEL + "os.close(channel)\ndisplay('lost')\nprint('fine')")
        self.assertOk(result)
        self.assertEqual((result["stdout"], self.texts(result)), ("fine\n", ["'probe'"]))
        # Acknowledgements the code never reads do not stop the agent.
        code = FIND_CHANNEL + "for i in range(100000):\n    os.write(channel, b'\\n')\ndisplay('last')"
        result, _ = self.run_outputs(code, stream=True, timeout=120)
        self.assertOk(result)
        self.assertEqual(self.texts(result), ["'probe'", "'last'"])

    def test_nothing_of_the_agent_becomes_importable(self):
        code = ("from IPython.display import display as d, HTML\nimport IPython, os, sys\n"
                "d(HTML('x'))\nimport matplotlib.pyplot as plt\nplt.plot([1])\nplt.show()\n"
                "print(sorted(m for m in sys.modules if m.split('.')[0] == 'agent'))\n"
                "try:\n    import agent\nexcept ImportError as e:\n    print(type(e).__name__)\n"
                "print(IPython, getattr(IPython, '__file__', None))\n"
                "print([p for p in sys.path if os.path.isdir(os.path.join(p or '.', 'agent'))])")
        result, _ = self.run_outputs(code)
        self.assertOk(result)
        self.assertEqual(result["stdout"], "[]\nModuleNotFoundError\n<module 'IPython' (runbox)> None\n[]\n")

    def test_a_real_ipython_is_preferred_and_its_display_makes_items(self):
        files = [("IPython/__init__.py", "REAL = True\n"),
                 ("IPython/core/__init__.py", ""),
                 # What IPython's display() does when no IPython shell runs: print.
                 ("IPython/core/display_functions.py", "def display(*objs, **kwargs):\n    print(*objs)\n"),
                 ("IPython/display.py", "from IPython.core.display_functions import display\n"
                                        "class HTML:\n    def __init__(self, data): self.data = data\n"
                                        "    def _repr_html_(self): return self.data\n"
                                        "    def __repr__(self): return 'HTML()'\n")]
        files = [{"path": path, "content": b64(text.encode())} for path, text in files]
        code = ("import IPython\nfrom IPython.display import display, HTML\n"
                "print(IPython.REAL)\ndisplay(HTML('<b>real</b>'))")
        result, _ = self.run_outputs(code, files=files)
        self.assertOk(result)
        self.assertEqual(result["stdout"], "True\n")
        self.assertEqual([item["data"] for item in result["outputs"]],
                         [{"text/plain": "HTML()", "text/html": "<b>real</b>"}])
        result, _ = self.run_code(code)
        self.assertEqual((result["stdout"], result["outputs"]), ("True\nHTML()\n", []))


class SessionTests(OutputsTestCase):
    def run_p(self, code, **fields):
        return self.run_outputs(code, persistent=True, mode=fields.pop("mode", "cell"), **fields)

    def test_a_figure_is_not_shown_again(self):
        result, _ = self.run_p(PLOT + "fig = plt.gcf()")
        self.assertEqual(len(result["outputs"]), 1)
        self.assertFigure(result["outputs"][0])
        result, _ = self.run_p("print(plt.get_fignums())")
        self.assertEqual((result["stdout"], result["outputs"]), ("[]\n", []))
        result, _ = self.run_p("plt.show()")
        self.assertEqual(result["outputs"], [])
        result, _ = self.run_p("fig")  # asked for by name, it is shown again
        self.assertFigure(result["outputs"][0], kind="execute_result")

    def test_outputs_on_then_off(self):
        result, events = self.run_p("import pandas as pd\ndf = pd.DataFrame({'a': [1]})\nprint('x')\ndf",
                                    stream=True)
        self.assertEqual([item["type"] for item in result["outputs"]], ["execute_result"])
        self.assertEqual([e["type"] for e in events], ["stdout", "display"])
        result, _ = self.run_p("display(df)")
        self.assertEqual(self.texts(result), ["   a\n0  1"])
        # Without outputs the session's next exec is as before: no display, no items, and
        # pyplot's own show.
        result, _ = self.run_p("display(df)", outputs=False)
        self.assertError(result, "runtime", "NameError: name 'display' is not defined")
        result, _ = self.run_p(PLOT + "plt.show()", outputs=False, env=WITH_DISPLAY)
        self.assertEqual(result["outputs"], [])
        self.assertIn("UserWarning", result["stderr"])
        result, _ = self.run_p("plt.close('all')\ndf", outputs=False)
        self.assertEqual((result["outputs"], result["value"]), ([], {"a": {"0": 1}}))

    def test_a_call_in_a_session(self):
        result, _ = self.run_p("def twice(v):\n    return [v, v]", call={"function": "twice", "args": {"v": 2}})
        self.assertEqual(result["value"], [2, 2])
        self.assertEqual(self.texts(result), ["[2, 2]"])


class PreforkTests(unittest.TestCase):
    """The child forked ahead has a channel before it knows whether its run wants one."""

    def fresh_agent(self):
        workdir = tempfile.mkdtemp(prefix="runbox-agent-test-")
        self.addCleanup(shutil.rmtree, workdir, True)
        agent = AgentProcess(env=dict(BASE_ENV, RUNBOX_WORKDIR=workdir))
        self.addCleanup(agent.close)
        return agent

    def test_the_first_run_with_outputs(self):
        agent = self.fresh_agent()
        result, events = agent.exec("print('a')\ndisplay('x')", outputs=True, stream=True)
        self.assertEqual([e["type"] for e in events], ["stdout", "display"])
        self.assertEqual([item["data"] for item in result["outputs"]], [{"text/plain": "'x'"}])

    def test_the_first_run_without_outputs_then_one_with(self):
        agent = self.fresh_agent()
        code = "import os\nprint(len(os.listdir('/proc/self/fd')))"
        result, _ = agent.exec(code)
        second, _ = agent.exec(code)
        # The unused channel is closed before the code runs: it sees what a fork sees.
        self.assertEqual(result["stdout"], second["stdout"])
        result, _ = agent.exec("display('x')", outputs=True)
        self.assertEqual([item["data"] for item in result["outputs"]], [{"text/plain": "'x'"}])


if __name__ == "__main__":
    unittest.main()
