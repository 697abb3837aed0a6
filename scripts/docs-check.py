#!/usr/bin/env python3
"""Loads runbox's /docs (Swagger UI) in headless Chromium, enters a token with
**Authorize**, tries `GET /sessions` from the page and checks that it answered 200; fails
on any console error (a Content-Security-Policy violation included) and on any request
to another origin. Saves a screenshot. Standard library only (the browser is driven as in
scripts/playground-check.py).

    scripts/docs-check.py --url http://127.0.0.1:8000 --token 114514 \
        --screenshot artifacts/docs.png
"""
import argparse
import base64
import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("playground_check", HERE / "playground-check.py")
playground_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(playground_check)

# Swagger UI's own API: the token goes in as "Authorize" would put it, then the page
# runs GET /sessions through its "Try it out" / "Execute" buttons.
AUTHORIZE = """(() => {
  window.ui.authActions.authorize({bearer: {name: "bearer",
    schema: {type: "http", scheme: "bearer"}, value: %s}});
  return true;
})()"""

TRY_IT = """(() => {
  const block = document.querySelector('#operations-sessions-list_sessions');
  if (!block) return 'no-operation';
  if (!block.classList.contains('is-open')) {
    block.querySelector('.opblock-summary-control').click();
    return 'opening';
  }
  const tryOut = block.querySelector('.try-out__btn');
  if (tryOut && !block.querySelector('.execute')) { tryOut.click(); return 'trying'; }
  const execute = block.querySelector('.execute');
  if (execute && !block.dataset.executed) { block.dataset.executed = '1'; execute.click(); return 'executing'; }
  const status = block.querySelector('.live-responses-table tbody .response-col_status');
  if (!status) return 'waiting';
  block.scrollIntoView();
  return 'status:' + status.textContent.trim();
})()"""

PROBE = """JSON.stringify({
  operations: document.querySelectorAll('.opblock').length,
  title: (document.querySelector('.info .title') || {}).textContent || '',
  authorized: !!document.querySelector('.btn.authorize.locked'),
})"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", default="114514")
    parser.add_argument("--screenshot", default="artifacts/docs.png")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()

    executable = next((shutil.which(b) for b in playground_check.BROWSERS if shutil.which(b)), None)
    if not executable:
        print("no Chromium found (install Debian's `chromium` package)", file=sys.stderr)
        return 2
    base = args.url.rstrip("/")
    origin = urlsplit(base).netloc
    browser = playground_check.Browser(executable)
    problems, requested, state, outcome = [], [], {}, ""
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session=session)
        browser.call("Page.navigate", {"url": f"{base}/docs"}, session=session)

        def evaluate(expression):
            result = browser.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                  session=session)
            return result.get("result", {}).get("value")

        deadline = time.monotonic() + args.timeout
        authorized = False
        while time.monotonic() < deadline:
            state = json.loads(evaluate(PROBE) or "{}")
            if state.get("operations", 0) > 0 and not authorized:
                evaluate(AUTHORIZE % json.dumps(args.token))
                authorized = True
            if authorized:
                outcome = evaluate(TRY_IT) or ""
                if outcome.startswith("status:"):
                    break
            time.sleep(0.3)
        state = json.loads(evaluate(PROBE) or "{}")
        # The events that arrived meanwhile: console errors, CSP reports, requests.
        problems, requested = drain(browser)
        shot = browser.call("Page.captureScreenshot", {"format": "png"}, session=session)
        os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
        with open(args.screenshot, "wb") as out:
            out.write(base64.b64decode(shot["data"]))
    finally:
        browser.close()

    elsewhere = sorted({u for u in requested if urlsplit(u).scheme in ("http", "https")
                        and urlsplit(u).netloc != origin})
    print(json.dumps({**state, "try_it_out": outcome, "problems": problems,
                      "other_origins": elsewhere}, indent=2))
    print(f"screenshot: {args.screenshot}")
    ok = (state.get("operations", 0) >= 20 and state.get("authorized")
          and outcome == "status:200" and not problems and not elsewhere)
    print("the docs page works" if ok else "the docs page does NOT work", file=sys.stderr)
    return 0 if ok else 1


def drain(browser):
    """Reads the events buffered on the pipe without blocking for long."""
    problems, requested = [], []
    browser.call("Browser.getVersion")  # its answer comes after every event before it
    for message in browser.seen:
        method, params = message.get("method"), message.get("params", {})
        if method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("level") == "error":
                problems.append(f"{entry.get('source')}: {entry.get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            problems.append("console: " + " ".join(str(a.get("value", a.get("description", "")))
                                                     for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            problems.append("exception: " + params.get("exceptionDetails", {}).get("text", ""))
        elif method == "Network.requestWillBeSent":
            requested.append(params.get("request", {}).get("url", ""))
        elif method == "Network.responseReceived" and params.get("response", {}).get("status", 0) >= 400:
            response = params["response"]
            problems.append(f"{response.get('status')} for {response.get('url')}")
    return problems, requested


class RecordingBrowser(playground_check.Browser):
    """Keeps the events (messages without an id) that arrive while waiting for answers."""

    def __init__(self, executable):
        super().__init__(executable)
        self.seen = []

    def _read(self):
        message = super()._read()
        if "id" not in message:
            self.seen.append(message)
        return message


playground_check.Browser = RecordingBrowser

if __name__ == "__main__":
    sys.exit(main())
