#!/usr/bin/env python3
"""Loads runbox's playground page in headless Chromium, runs the plot example and checks
that the drawn image appears and loads. Saves a screenshot. Standard library only: it
drives the browser over the DevTools protocol on a pipe (--remote-debugging-pipe).

    scripts/playground-check.py --url http://127.0.0.1:8000 --token 114514 \
        --screenshot artifacts/playground.png

Exits 0 when the image loaded, 1 otherwise (with what the page showed).
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


class Browser:
    """One Chromium process and the DevTools messages exchanged with it over fds 3/4."""

    def __init__(self, executable):
        self.profile = tempfile.mkdtemp(prefix="runbox-playground-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        self.proc = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
             "--window-size=1280,900", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=lambda: (os.dup2(to_browser_r, 3), os.dup2(from_browser_w, 4)),
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer = b""
        self.next_id = 0

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
        raise TimeoutError(f"no answer to {method}")

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


PROBE = """(() => {
  const img = document.querySelector('#images img');
  return JSON.stringify({
    state: document.body.dataset.state || '',
    stdout: document.getElementById('stdout').textContent,
    error: document.getElementById('error').textContent,
    image: img ? {loaded: img.dataset.loaded || '', width: img.naturalWidth, src: img.src} : null,
  });
})()"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", default="114514")
    parser.add_argument("--screenshot", default="artifacts/playground.png")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()

    executable = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if not executable:
        print("no Chromium found (install Debian's `chromium` package)", file=sys.stderr)
        return 2
    page_url = f"{args.url.rstrip('/')}/?token={args.token}&example=plot&autorun=1"
    browser = Browser(executable)
    state = {}
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        browser.call("Page.enable", session=session)
        browser.call("Page.navigate", {"url": page_url}, session=session)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            result = browser.call("Runtime.evaluate", {"expression": PROBE, "returnByValue": True},
                                  session=session)
            state = json.loads(result.get("result", {}).get("value") or "{}")
            image = state.get("image") or {}
            if state.get("state") == "failed" or (image.get("loaded") in ("true", "false")):
                break
            time.sleep(0.2)
        shot = browser.call("Page.captureScreenshot", {"format": "png"}, session=session)
        os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
        with open(args.screenshot, "wb") as out:
            out.write(base64.b64decode(shot["data"]))
    finally:
        browser.close()

    image = state.get("image") or {}
    print(json.dumps(state, indent=2))
    print(f"screenshot: {args.screenshot}")
    if state.get("state") == "done" and image.get("loaded") == "true" and image.get("width", 0) > 0:
        print("the plot appeared in the page")
        return 0
    print("the plot did not appear", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
