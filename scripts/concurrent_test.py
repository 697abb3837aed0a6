#!/usr/bin/env python3
"""Five simultaneous POST /runcode requests, each a fenced python block that prints
"Hello from code block!" and sleeps 3 s. Exits non-zero unless every answer is exactly
{"output": "Hello from code block!\\n"}; prints the total wall time (parallel runs take
about 3 s, serial ones 15).

    scripts/concurrent_test.py [--url http://127.0.0.1:8000/runcode] [--token 114514]
"""
import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request

CODE = """Here is the code:
```python
import time
print("Hello from code block!")
time.sleep(3)
```
"""
EXPECTED = {"output": "Hello from code block!\n"}


def call(url, token, results, index):
    body = json.dumps({"languageType": "python", "variables": {}, "code": CODE}).encode()
    request = urllib.request.Request(
        url,
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
            status = response.status
    except urllib.error.HTTPError as err:
        status, answer = err.code, err.read().decode(errors="replace")
    except Exception as err:  # network failures are failures of the test, reported below
        status, answer = None, repr(err)
    results[index] = (status, answer, time.monotonic() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000/runcode")
    parser.add_argument("--token", default="114514")
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args()

    results = [None] * args.requests
    threads = [
        threading.Thread(target=call, args=(args.url, args.token, results, i))
        for i in range(args.requests)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = time.monotonic() - started

    failures = 0
    for index, (status, answer, seconds) in enumerate(results):
        ok = status == 200 and answer == EXPECTED
        failures += not ok
        print(f"request {index + 1}: {'ok' if ok else 'FAILED'} status={status} "
              f"time={seconds:.2f}s answer={json.dumps(answer)}")
    print(f"total wall time: {total:.2f}s for {args.requests} requests")
    if failures:
        print(f"{failures} of {args.requests} requests failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
