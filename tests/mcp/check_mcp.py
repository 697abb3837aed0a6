"""Checks runbox's MCP endpoint with the official MCP Python SDK as the client.

Run by tests/api/mcp.rs against a server it started:

    python check_mcp.py SCENARIO

with MCP_URL (the server's base URL), MCP_TOKEN (all scopes but admin),
MCP_READER_TOKEN (functions:read only), MCP_NO_SCOPE_TOKEN (a valid token without
scopes) and RUNBOX_BIN (for `runbox mcp` over stdio) in the environment (and, for the
`replicas` scenario, MCP_PEER_URLS: the other replicas' base URLs). Prints what it
checked; exits non-zero with the reason on the first failure.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from typing import Any, Awaitable, Callable

import httpx2
from mcp import StdioServerParameters
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

BASE = os.environ["MCP_URL"].rstrip("/")
URL = BASE + "/mcp"
TOKEN = os.environ["MCP_TOKEN"]
PNG = b"\x89PNG\r\n\x1a\n"


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)
    print("ok:", what)


def http_client(token: str | None = TOKEN) -> httpx2.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.AsyncClient(headers=headers, timeout=120)


def connect(mode: str = "auto", token: str | None = TOKEN, **kwargs: Any) -> Client:
    transport = streamable_http_client(URL, http_client=http_client(token))
    return Client(transport, mode=mode, raise_exceptions=True, **kwargs)


def texts(result: Any) -> list[str]:
    return [block.text for block in result.content if block.type == "text"]


def images(result: Any) -> list[bytes]:
    return [base64.b64decode(block.data) for block in result.content if block.type == "image"]


async def run_python(client: Client, code: str, **arguments: Any) -> Any:
    return await client.call_tool("run_python", {"code": code, **arguments})


async def sessions_of_token() -> list[dict[str, Any]]:
    async with http_client() as http:
        response = await http.get(BASE + "/sessions")
        return response.json()["sessions"]


async def tools_and_plot() -> None:
    for mode in ("legacy", "auto"):
        async with connect(mode) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            check(
                {"run_python", "run_bash", "create_session", "upload_file", "download_file"} <= names,
                f"{mode}: the code and file tools are listed ({sorted(names)})",
            )
            result = await run_python(
                client,
                "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()\nprint('drawn')\n6 * 7",
            )
            check(not result.is_error, f"{mode}: the plot ran")
            pngs = images(result)
            check(len(pngs) == 1 and pngs[0].startswith(PNG), f"{mode}: one image item with PNG bytes")
            check(any("drawn" in text for text in texts(result)), f"{mode}: stdout is a text item")
            check(any(text.strip() == "42" for text in texts(result)), f"{mode}: the value is a text item")
            structured = result.structured_content
            check(
                structured is not None and structured["value"] == 42 and structured["success"],
                f"{mode}: the result object is the structured content",
            )
            bash = await client.call_tool("run_bash", {"code": "echo $((6 * 7))"})
            check(texts(bash)[:1] == ["42\n"], f"{mode}: run_bash prints")
            failed = await run_python(client, "1 / 0")
            check(failed.is_error, f"{mode}: a failing run is a tool error")
            check(
                any(text.startswith("error (runtime): ZeroDivisionError") for text in texts(failed)),
                f"{mode}: the error's kind is named",
            )


async def notebook_sessions() -> None:
    # Handshake era: one MCP session is one notebook, apart from every other.
    async with connect("legacy") as first:
        await run_python(first, "import math\ncounter = 40")
        kept = await run_python(first, "counter + 2")
        check(kept.structured_content["value"] == 42, "state is kept across two calls of one MCP session")
        async with connect("legacy") as second:
            other = await run_python(second, "counter")
            check(other.is_error, "another MCP session does not see it")
        fresh = await run_python(first, "counter", stateless=True)
        check(fresh.is_error, "a stateless call runs fresh")
        check(len(await sessions_of_token()) >= 1, "the notebook is a runbox session")
    await asyncio.sleep(1)
    live = [s for s in await sessions_of_token() if s["alive"]]
    check(not live, f"the notebooks end with their MCP sessions ({live})")

    # Sessionless era: state is the handle of create_session.
    async with connect("auto") as client:
        stateless = await run_python(client, "counter = 1")
        check(not stateless.is_error, "sessionless: a call without a handle runs")
        missing = await run_python(client, "counter")
        check(missing.is_error, "sessionless: without a handle nothing is kept")
        created = await client.call_tool("create_session", {})
        handle = created.structured_content["id"]
        await run_python(client, "counter = 41", session_id=handle)
        kept = await run_python(client, "counter + 1", session_id=handle)
        check(kept.structured_content["value"] == 42, "sessionless: the handle keeps state")
        upload = await client.call_tool(
            "upload_file", {"path": "data/in.csv", "text": "a,b\n1,2\n", "session_id": handle}
        )
        check(not upload.is_error, "upload_file writes into the session")
        read = await run_python(client, "open('data/in.csv').read()", session_id=handle)
        check(read.structured_content["value"] == "a,b\n1,2\n", "the code reads the uploaded file")
        lines = await client.call_tool("run_bash", {"code": "wc -l < data/in.csv", "session_id": handle})
        check(texts(lines)[:1] == ["2\n"], "run_bash works in the session's directory too")
        await run_python(client, "open('out.txt', 'w').write('made here')", session_id=handle)
        download = await client.call_tool("download_file", {"path": "out.txt", "session_id": handle})
        check(texts(download) == ["made here"], "download_file reads a file the code wrote")
        escape = await client.call_tool("download_file", {"path": "../etc/passwd", "session_id": handle})
        check(escape.is_error, "download_file refuses a path out of the work dir")
        await client.call_tool("end_session", {"session_id": handle})
        gone = await run_python(client, "1", session_id=handle)
        check(gone.is_error, "an ended session answers a tool error")


async def functions() -> None:
    changes: list[str] = []

    async def on_message(message: Any) -> None:
        if getattr(message, "method", "") == "notifications/tools/list_changed":
            changes.append(message.method)

    async with connect("legacy", message_handler=on_message) as client:
        before = {tool.name for tool in (await client.list_tools()).tools}
        async with http_client() as http:
            stored = await http.post(
                BASE + "/functions",
                json={
                    "name": "scale",
                    "description": "Multiplies a number",
                    "code": "def scale(x, factor=2):\n    return x * factor\n",
                    "args": {"x": "int", "factor": {"type": "int", "required": False, "default": 2}},
                },
            )
            check(stored.status_code == 201, f"a function is stored ({stored.status_code})")
        for _ in range(50):
            if changes:
                break
            await asyncio.sleep(0.1)
        check(bool(changes), "notifications/tools/list_changed arrives")
        tools = {tool.name: tool for tool in (await client.list_tools(cache_mode="refresh")).tools}
        check("scale" in tools and "scale" not in before, "the function is a tool now")
        schema = tools["scale"].input_schema
        check(schema["properties"]["x"]["type"] == "integer" and schema["required"] == ["x"],
              f"its arguments are its input schema ({schema})")
        check(tools["scale"].description == "Multiplies a number", "its description is the tool's")
        called = await client.call_tool("scale", {"x": 21})
        check(called.structured_content["value"] == 42, "calling the tool calls the function")
        bad = await client.call_tool("scale", {"x": "twenty"})
        check(bad.is_error and any("`x`" in text or "x" in text for text in texts(bad)),
              f"bad arguments are a tool error naming the argument ({texts(bad)})")
        async with http_client() as http:
            await http.delete(BASE + "/functions/scale")


async def readers_and_strangers() -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        refused = await http.post(URL, json=body, headers={"Accept": "application/json, text/event-stream"})
        check(refused.status_code == 401, f"no token: 401 ({refused.status_code})")
        check(refused.headers.get("www-authenticate", "").startswith("Bearer"), "with a Bearer challenge")
        scopeless = await http.post(
            URL,
            json=body,
            headers={
                "Authorization": f"Bearer {os.environ['MCP_NO_SCOPE_TOKEN']}",
                "Accept": "application/json, text/event-stream",
            },
        )
        check(scopeless.status_code == 403, f"a token without a scope for MCP: 403 ({scopeless.status_code})")
        check("insufficient_scope" in scopeless.headers.get("www-authenticate", ""), "named insufficient_scope")
    try:
        async with connect("auto", token=None) as client:
            await client.list_tools()
        check(False, "the SDK connected without a token")
    except Exception as err:  # noqa: BLE001 - any refusal will do
        check(True, f"the SDK cannot connect without a token ({type(err).__name__})")
    async with connect("auto", token=os.environ["MCP_READER_TOKEN"]) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        check("run_python" not in names, "a functions:read token is not offered the code tools")


async def raw(body: bytes | str, headers: dict[str, str] | None = None) -> httpx2.Response:
    all_headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
    }
    all_headers.update(headers or {})
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(URL, content=body, headers=all_headers)


def rpc_error(response: httpx2.Response) -> dict[str, Any]:
    text = response.text
    if "data:" in text and not text.lstrip().startswith("{"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:") and line[5:].strip())
    try:
        return json.loads(text).get("error") or {}
    except ValueError:
        return {}


async def bad_input() -> None:
    malformed = await raw(b"{not json")
    check(malformed.status_code == 400 and rpc_error(malformed).get("code") == -32700,
          f"malformed JSON: parse error -32700 ({malformed.status_code} {malformed.text[:200]})")
    not_rpc = await raw(json.dumps({"hello": "world"}))
    check(not_rpc.status_code == 400 and rpc_error(not_rpc).get("code") == -32600,
          f"not JSON-RPC: refused ({not_rpc.status_code} {not_rpc.text[:200]})")
    async with connect("legacy") as client:
        try:
            await client.call_tool("no_such_tool", {})
            check(False, "an unknown tool was called")
        except Exception as err:  # noqa: BLE001
            check("no_such_tool" in str(err) or "unknown" in str(err).lower(), f"unknown tool: an error ({err})")
    # An unknown method, in a session of the handshake era opened by hand.
    hello = await raw(json.dumps({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "1"}},
    }))
    session = hello.headers.get("mcp-session-id", "")
    check(hello.status_code == 200 and bool(session), "a raw initialize opens a session")
    in_session = {"Mcp-Session-Id": session}
    await raw(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}), in_session)
    unknown = await raw(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "no/such/method"}), in_session)
    check(rpc_error(unknown).get("code") == -32601,
          f"unknown method: -32601 ({unknown.status_code} {unknown.text[:200]})")
    async with httpx2.AsyncClient(timeout=30) as http:
        ended = await http.delete(URL, headers={"Authorization": f"Bearer {TOKEN}", **in_session})
        check(ended.status_code in (200, 204), f"DELETE ends the session ({ended.status_code})")
    ping = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "ping"})
    for accept in ("application/json", "text/plain"):
        unacceptable = await raw(ping, {"Accept": accept})
        body = unacceptable.json() if unacceptable.headers.get("content-type", "").startswith("application/json") else {}
        check(unacceptable.status_code == 406 and "Accept" in str(body.get("error", "")),
              f"Accept: {accept}: 406 in the API's error shape ({unacceptable.status_code} {unacceptable.text[:200]})")
    huge = await raw(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "x": "a" * (20 << 20)}))
    check(huge.status_code == 413, f"a huge request: 413 ({huge.status_code})")
    async with connect("auto") as client:
        still = await run_python(client, "1 + 1")
        check(still.structured_content["value"] == 2, "the server still answers")


async def progress() -> None:
    async with connect("auto") as client:
        seen: list[str] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            seen.append(message or "")

        result = await client.call_tool(
            "run_python",
            {"code": "import time\nfor i in range(3):\n    print('step', i, flush=True)\n    time.sleep(0.3)"},
            progress_callback=on_progress,
        )
        check(not result.is_error, "the long run ran")
        check("".join(seen).count("step") == 3, f"progress notifications carry the output ({seen})")


async def stdio() -> None:
    parameters = StdioServerParameters(
        command=os.environ["RUNBOX_BIN"],
        args=["mcp", "--server", BASE, "--token", TOKEN],
    )
    async with Client(parameters, raise_exceptions=True) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        check("run_python" in names, "stdio: the tools are listed")
        plot = await run_python(client, "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\nx = 20")
        pngs = images(plot)
        check(len(pngs) == 1 and pngs[0].startswith(PNG), "stdio: the figure is an image item")
        kept = await run_python(client, "x + 22")
        check(kept.structured_content["value"] == 42, "stdio: one notebook for the process's life")
        seen: list[str] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            seen.append(message or "")

        await client.call_tool(
            "run_python",
            {"code": "import time\nprint('a', flush=True)\ntime.sleep(0.3)\nprint('b', flush=True)"},
            progress_callback=on_progress,
        )
        check("a" in "".join(seen) and "b" in "".join(seen), f"stdio: progress comes through ({seen})")
    await asyncio.sleep(1)
    live = [s for s in await sessions_of_token() if s["alive"]]
    check(not live, f"stdio: the notebook ends with the process ({live})")


class RoundRobin(httpx2.AsyncBaseTransport):
    """A load balancer without stickiness: each request goes to the next replica."""

    def __init__(self, bases: list[str]) -> None:
        self.bases = [httpx2.URL(base) for base in bases]
        self.sent = 0
        self.reached: set[str] = set()
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        base = self.bases[self.sent % len(self.bases)]
        self.sent += 1
        self.reached.add(str(base))
        request.url = request.url.copy_with(host=base.host, port=base.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def replicas() -> None:
    # MCP_URL and the replicas of MCP_PEER_URLS are one service; the client's requests
    # go to each in turn, as through a load balancer that keeps no MCP session affinity.
    bases = [BASE] + os.environ["MCP_PEER_URLS"].split()

    def balanced() -> tuple[RoundRobin, httpx2.AsyncClient]:
        balancer = RoundRobin(bases)
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120, transport=balancer
        )
        return balancer, http

    # Handshake era: one MCP session is one notebook, whichever replica a request reaches.
    balancer, http = balanced()
    async with Client(streamable_http_client(URL, http_client=http), mode="legacy", raise_exceptions=True) as client:
        await run_python(client, "counter = 40")
        for _ in range(3):
            kept = await run_python(client, "counter += 1\ncounter")
            check(not kept.is_error, f"a call of the MCP session ran ({texts(kept)})")
        check(kept.structured_content["value"] == 43, "the MCP session's state is kept across replicas")
    check(len(balancer.reached) == len(bases), f"its requests reached every replica ({balancer.sent} sent)")
    await asyncio.sleep(1)
    live = [s for s in await sessions_of_token() if s["alive"]]
    check(not live, f"the notebook ends with its MCP session, wherever it lived ({live})")

    # Sessionless era: a handle made through one replica is used through the others.
    balancer, http = balanced()
    async with Client(streamable_http_client(URL, http_client=http), mode="auto", raise_exceptions=True) as client:
        created = await client.call_tool("create_session", {})
        handle = created.structured_content["id"]
        await run_python(client, "counter = 41", session_id=handle)
        kept = await run_python(client, "counter + 1", session_id=handle)
        check(not kept.is_error, f"a call naming the handle ran ({texts(kept)})")
        check(kept.structured_content["value"] == 42, "the handle keeps state across replicas")
        files = await client.call_tool("run_bash", {"code": "echo hi > f.txt", "session_id": handle})
        check(not files.is_error, "run_bash through another replica reaches the session")
        download = await client.call_tool("download_file", {"path": "f.txt", "session_id": handle})
        check(texts(download) == ["hi\n"], "download_file through another replica reaches it too")
        await client.call_tool("end_session", {"session_id": handle})
        gone = await run_python(client, "1", session_id=handle)
        check(gone.is_error, "an ended session answers a tool error")
    check(len(balancer.reached) == len(bases), f"its requests reached every replica ({balancer.sent} sent)")

    # Handshake era, naming a handle another replica holds: the MCP session stays on its
    # replica, and each call that names the handle is served where the handle lives.
    holder = bases[1]
    async with http_client() as http:
        created = await http.post(holder + "/sessions", json={"language": "python"})
        check(created.status_code == 201, f"a session made at another replica ({created.text})")
        handle = created.json()["id"]
        await http.post(f"{holder}/sessions/{handle}/execute", json={"code": "counter = 99"})
    async with connect(mode="legacy") as client:
        seen: list[str] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            seen.append(message or "")

        held = await client.call_tool(
            "run_python",
            {"code": "import time\nprint('tick', flush=True)\ntime.sleep(0.5)\ncounter + 1", "session_id": handle},
            progress_callback=on_progress,
        )
        check(not held.is_error, f"an MCP session's call naming a handle held elsewhere ran ({texts(held)})")
        check(held.structured_content["value"] == 100, "it ran in the held session")
        check("tick" in "".join(seen), f"its progress came back through the MCP session ({seen})")
        wrote = await client.call_tool("upload_file", {"path": "g.txt", "text": "held", "session_id": handle})
        check(not wrote.is_error, f"upload_file reaches the held session ({texts(wrote)})")
        read = await client.call_tool("download_file", {"path": "g.txt", "session_id": handle})
        check(texts(read) == ["held"], f"download_file reads it back ({texts(read)})")
        ended = await client.call_tool("end_session", {"session_id": handle})
        check(not ended.is_error, f"end_session ends it there ({texts(ended)})")
    async with http_client() as http:
        gone = await http.get(f"{holder}/sessions/{handle}")
        check(gone.status_code == 404, f"the held session is gone from its replica ({gone.status_code})")


SCENARIOS: dict[str, Callable[[], Awaitable[None]]] = {
    "tools_and_plot": tools_and_plot,
    "notebook_sessions": notebook_sessions,
    "functions": functions,
    "readers_and_strangers": readers_and_strangers,
    "bad_input": bad_input,
    "progress": progress,
    "stdio": stdio,
    "replicas": replicas,
}

if __name__ == "__main__":
    asyncio.run(SCENARIOS[sys.argv[1]]())
