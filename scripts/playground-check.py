#!/usr/bin/env python3
"""Loads runbox's playground page in headless Chromium and checks what a user sees. Standard
library only: it drives the browser over the DevTools protocol on a pipe
(--remote-debugging-pipe).

    scripts/playground-check.py --url http://127.0.0.1:8000 --token 114514 \
        --screenshot artifacts/playground.png

First it runs the plot example, which saves a file: the image appears and loads. Then it
runs code that shows a figure with plt.show(), displays HTML that tries to run script in
the page and to call runbox with the user's token, and ends with a DataFrame: the figure
loads inline, the table is visible inside its sandboxed frame, and the hostile output is
shown but does nothing: the page is untouched and no request of its reaches any server.
Saves a screenshot of the whole page after the second run.

Exits 0 when all of that held, 1 otherwise (with what the page showed), 2 without a
browser.
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Every request the hostile output could make names a path starting with this, built
# at run time so that the marker is in no request unless the output's script ran.
HOSTILE = "/hostile-"
NOTEBOOK_CODE = r"""
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML, display

print('before the figure', flush=True)
plt.plot([1, 4, 2, 8], label='data')
plt.legend()
plt.show()
display(HTML(
    "<script>fetch('/hostile' + '-script');"
    "const token = top.document.getElementById('token').value;"
    "fetch('/hostile' + '-token', {headers: {Authorization: 'Bearer ' + token}});"
    "top.document.body.dataset.pwned = 'script';</script>"
    "<img src=x onerror=\"fetch('/hostile' + '-onerror'); top.document.body.dataset.pwned = 'onerror'\">"
    "<p id=hostile>This output tried to run script.</p>"
))
pd.DataFrame({'city': ['Oslo', 'Lima', 'Pune'], 'temperature': [4.5, 19.0, 31.2]})
"""
TABLE_TEXT = ("city", "temperature", "Oslo", "Pune", "31.2")


class Browser:
    """One Chromium process and the DevTools messages exchanged with it over fds 3/4.
    Messages that answer no call (events) are kept in `events`."""

    def __init__(self, executable, flags=()):
        self.profile = tempfile.mkdtemp(prefix="runbox-playground-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        self.proc = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
             "--window-size=1280,900", *flags, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=lambda: (os.dup2(to_browser_r, 3), os.dup2(from_browser_w, 4)),
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer = b""
        self.next_id = 0
        self.events = []

    def call(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self._read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)
        raise TimeoutError(f"no answer to {method}")

    def evaluate(self, expression, session):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                           session=session)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            reason = details.get("exception", {}).get("description") or details.get("text")
            raise RuntimeError(f"{expression[:60]}…: {reason}")
        return result.get("result", {}).get("value")

    def _read(self):
        while b"\0" not in self.buffer:
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("the browser exited")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """The playground's tab, and the frames of its HTML outputs. A sandboxed frame is
    another origin, which Chromium may put in a process of its own: each is attached as
    a target of its own, paused until its network and log are watched, so that nothing
    it does goes unseen."""

    def __init__(self, browser):
        self.browser = browser
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.call("Target.attachToTarget",
                                    {"targetId": target, "flatten": True})["sessionId"]
        self.frames = []
        self.seen = 0
        browser.call("Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True,
                                              "flatten": True}, session=self.session)
        self._watch(self.session)
        browser.call("Page.enable", session=self.session)

    def _watch(self, session):
        for domain in ("Network", "Log", "Runtime"):
            self.browser.call(f"{domain}.enable", session=session)

    def pump(self):
        """Watches the frames attached since the last call."""
        self.browser.call("Target.getTargets")  # events are read while awaiting an answer
        while self.seen < len(self.browser.events):
            event = self.browser.events[self.seen]
            self.seen += 1
            method = event.get("method")
            if method == "Target.attachedToTarget" and event.get("sessionId") == self.session:
                child = event["params"]["sessionId"]
                self._watch(child)
                self.browser.call("Runtime.runIfWaitingForDebugger", session=child)
                self.frames.append(child)
            elif method == "Target.detachedFromTarget":
                gone = event["params"].get("sessionId")
                self.frames = [frame for frame in self.frames if frame != gone]

    def evaluate(self, expression):
        self.pump()
        return json.loads(self.browser.evaluate(expression, self.session) or "{}")

    def frame_states(self):
        """What FRAME_PROBE finds in each frame, in a process of its own or not."""
        self.pump()
        states = []
        for frame in self.frames:
            try:
                states.append(json.loads(self.browser.evaluate(FRAME_PROBE, frame) or "{}"))
            except RuntimeError:
                pass  # a frame that went away with a cleared output
        tree = self.browser.call("Page.getFrameTree", session=self.session)["frameTree"]
        for child in tree.get("childFrames", []):
            world = self.browser.call("Page.createIsolatedWorld",
                                      {"frameId": child["frame"]["id"], "worldName": "check"},
                                      session=self.session)
            result = self.browser.call("Runtime.evaluate",
                                       {"expression": FRAME_PROBE, "returnByValue": True,
                                        "contextId": world["executionContextId"]},
                                       session=self.session)
            states.append(json.loads(result.get("result", {}).get("value") or "{}"))
        return states

    def requests(self):
        return [event["params"]["request"]["url"] for event in self.browser.events
                if event.get("method") == "Network.requestWillBeSent"]

    def log(self):
        return [event["params"]["entry"]["text"] for event in self.browser.events
                if event.get("method") == "Log.entryAdded"]

    def screenshot(self, path):
        # The whole page, by making the window as tall as the page: a capture beyond the
        # viewport leaves the frames of other processes below it blank.
        size = self.browser.call("Page.getLayoutMetrics", session=self.session)["cssContentSize"]
        self.browser.call("Emulation.setDeviceMetricsOverride",
                          {"width": 1280, "height": int(size["height"]) + 1, "deviceScaleFactor": 1,
                           "mobile": False}, session=self.session)
        time.sleep(0.5)
        shot = self.browser.call("Page.captureScreenshot", {"format": "png"}, session=self.session)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as out:
            out.write(base64.b64decode(shot["data"]))


PROBE = """(() => {
  const img = document.querySelector('#images img');
  const outputs = [...document.querySelectorAll('#outputs .output')].map((box) => {
    const img = box.querySelector('img'), frame = box.querySelector('iframe');
    const rect = frame && frame.getBoundingClientRect();
    return {
      type: box.dataset.type, mime: box.dataset.mime || '',
      image: img ? {loaded: img.dataset.loaded || '', width: img.naturalWidth} : null,
      frame: frame ? {sandbox: frame.getAttribute('sandbox'), visible: frame.checkVisibility(),
                      width: rect.width, height: rect.height} : null,
    };
  });
  return JSON.stringify({
    state: document.body.dataset.state || '',
    pwned: document.body.dataset.pwned || '',
    stdout: document.getElementById('stdout').textContent,
    error: document.getElementById('error').textContent,
    image: img ? {loaded: img.dataset.loaded || '', width: img.naturalWidth, src: img.src} : null,
    outputs,
  });
})()"""

FRAME_PROBE = """(() => {
  const table = document.querySelector('table.dataframe');
  const rect = table && table.getBoundingClientRect();
  return JSON.stringify({
    origin: self.origin,
    ready: document.readyState,
    hostile: !!document.getElementById('hostile'),
    table: table ? {text: table.innerText, width: rect.width, height: rect.height,
                    fits: rect.top >= 0 && rect.left >= 0 && rect.bottom <= innerHeight
                          && rect.right <= innerWidth}
                 : null,
  });
})()"""


def wait_for(page, done, timeout):
    deadline = time.monotonic() + timeout
    state = {}
    while time.monotonic() < deadline:
        try:
            state = page.evaluate(PROBE)
        except RuntimeError:
            state = {}  # the page is still loading
        if state.get("state") == "failed" or done(state):
            break
        time.sleep(0.2)
    return state


def run_code(page, code):
    page.evaluate(f"""(() => {{
      document.getElementById('example').value = '';
      document.getElementById('language').value = 'python';
      document.getElementById('code').value = {json.dumps(code)};
      document.getElementById('run').click();
      return '{{}}';
    }})()""")


def settled(state):
    images = [o["image"] for o in state.get("outputs", []) if o["image"]]
    return state.get("state") == "done" and all(i["loaded"] in ("true", "false") for i in images)


def check(args, page):
    """Both runs; returns the failures and what the page showed."""
    failures = []
    page_url = f"{args.url.rstrip('/')}/?token={args.token}&example=plot&autorun=1"
    page.browser.call("Page.navigate", {"url": page_url}, session=page.session)
    plot = wait_for(page, lambda s: (s.get("image") or {}).get("loaded") in ("true", "false"),
                    args.timeout / 2)
    image = plot.get("image") or {}
    if not (plot.get("state") == "done" and image.get("loaded") == "true" and image.get("width", 0) > 0):
        failures.append("the plot example's saved image did not appear")

    run_code(page, NOTEBOOK_CODE)
    state = wait_for(page, settled, args.timeout / 2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        frames = page.frame_states()
        if sum(f.get("ready") == "complete" for f in frames) >= 2:
            break
        time.sleep(0.2)
    # Long enough for any script of the hostile output to have run and been answered.
    time.sleep(1.0)
    state = page.evaluate(PROBE)
    frames = page.frame_states()

    outputs = state.get("outputs", [])
    if "before the figure" not in state.get("stdout", ""):
        failures.append("stdout of the second run is missing")
    if [o["mime"] for o in outputs] != ["image/png", "text/html", "text/html"]:
        failures.append("the outputs are not a figure, then two HTML frames")
    figures = [o["image"] for o in outputs if o["mime"] == "image/png"]
    if not figures or figures[0]["loaded"] != "true" or figures[0]["width"] <= 0:
        failures.append("the figure did not load")
    for output in outputs:
        frame = output["frame"]
        if frame and (frame["sandbox"] != "" or not frame["visible"] or frame["height"] < 40):
            failures.append(f"a frame is not sandboxed without permissions, or not visible: {frame}")
    if not outputs or outputs[-1]["type"] != "execute_result":
        failures.append("the DataFrame, the cell's value, is not the last output")
    tables = [f["table"] for f in frames if f.get("table")]
    if len(tables) != 1:
        failures.append(f"{len(tables)} frames show a DataFrame, not 1")
    elif not (all(text in tables[0]["text"] for text in TABLE_TEXT)
              and tables[0]["width"] > 0 and tables[0]["height"] > 0 and tables[0]["fits"]):
        failures.append("the DataFrame's table is not wholly visible in its frame")
    if not any(f.get("hostile") for f in frames):
        failures.append("the hostile output was not shown, so it proves nothing")
    if any(f.get("origin") != "null" for f in frames):
        failures.append("a frame has an origin of its own, not an opaque one")
    if state.get("pwned"):
        failures.append(f"the hostile output ran script in the page: {state['pwned']}")
    reached = [url for url in page.requests() if HOSTILE in url]
    if reached:
        failures.append(f"the hostile output made requests: {reached}")
    return failures, {"plot": plot, "notebook": state, "frames": frames,
                      "blocked": [line for line in page.log() if "lock" in line or "violates" in line]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", default="114514")
    parser.add_argument("--screenshot", default="artifacts/playground.png")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()

    executable = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if not executable:
        print("no Chromium found (install Debian's `chromium` package)", file=sys.stderr)
        return 2
    browser = Browser(executable)
    try:
        page = Page(browser)
        failures, seen = check(args, page)
        page.screenshot(args.screenshot)
    finally:
        browser.close()

    print(json.dumps(seen, indent=2))
    print(f"screenshot: {args.screenshot}")
    if not failures:
        print("the plot, the figure and the table appeared; the hostile output did nothing")
        return 0
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
