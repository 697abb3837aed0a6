"""The HTTP layer under both clients: configuration, timeouts, error mapping."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Any, Dict, Mapping, NoReturn, Optional, Union
from urllib.parse import quote

import httpx

from . import __version__
from ._errors import APIConnectionError, APITimeoutError, error_for_status
from ._json import dumps, loads

DEFAULT_URL = "http://127.0.0.1:8000"

RUN_ALLOWANCE = 300.0
"""How long a run may take when the request does not say: the server's default
`limits.max_timeout`, the longest it lets any run go."""

BUILD_ALLOWANCE = 600.0
"""How long registering a function may take: its dependencies are installed first
(`functions.build_timeout`, 10 minutes by default)."""

Verify = Union[bool, ssl.SSLContext]


def run_allowance(timeout: Optional[float]) -> float:
    return timeout if timeout is not None else RUN_ALLOWANCE


@dataclass(frozen=True)
class Settings:
    base_url: str
    token: Optional[str]
    timeout: Optional[float]
    verify: Verify
    headers: Dict[str, str]

    def http_timeout(self, allowance: Optional[float] = None) -> httpx.Timeout:
        """`timeout` bounds connecting and every wait for bytes; a request that runs
        code also waits for the run itself, so its read wait grows by the run's
        allowance."""
        if self.timeout is None:
            return httpx.Timeout(None)
        return httpx.Timeout(self.timeout, read=self.timeout + (allowance or 0.0))

    def auth_headers(self) -> Dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def image_headers(self, url: str) -> Dict[str, str]:
        """Image URLs carry the server's public address, which may be another host:
        the token goes only to the origin it was given for."""
        if httpx.URL(url).copy_with(path="/", query=None) == httpx.URL(self.base_url).copy_with(
            path="/", query=None
        ):
            return self.auth_headers()
        return {}


def make_settings(
    url: Optional[str],
    token: Optional[str],
    timeout: Optional[float],
    verify: Verify,
    headers: Optional[Mapping[str, str]],
) -> Settings:
    base = url or os.environ.get("RUNBOX_URL") or DEFAULT_URL
    return Settings(
        base_url=base.rstrip("/"),
        token=token if token is not None else os.environ.get("RUNBOX_TOKEN") or None,
        timeout=timeout,
        verify=verify,
        headers={"User-Agent": f"runbox-client-python/{__version__}", **dict(headers or {})},
    )


def path(*parts: str) -> str:
    return "/" + "/".join(quote(p, safe="") for p in parts)


def encode(body: Any) -> Optional[bytes]:
    return dumps(body) if body is not None else None


JSON_HEADERS = {"Content-Type": "application/json"}
STREAM_HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream"}


def decode_body(response: httpx.Response) -> Any:
    try:
        return loads(response.content)
    except ValueError:
        return response.text


def check(response: httpx.Response) -> None:
    if response.status_code >= 400:
        headers = {k.lower(): v for k, v in response.headers.items()}
        raise error_for_status(response.status_code, decode_body(response), headers)


def transport_error(exc: httpx.TransportError, what: str) -> NoReturn:
    if isinstance(exc, httpx.TimeoutException):
        raise APITimeoutError(f"{what}: no answer in time ({type(exc).__name__})") from exc
    raise APIConnectionError(f"{what}: {exc or type(exc).__name__}") from exc


class SyncHTTP:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = httpx.Client(
            base_url=settings.base_url,
            headers=settings.headers,
            timeout=settings.http_timeout(),
            verify=settings.verify,
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        params: Optional[Mapping[str, str]] = None,
        allowance: Optional[float] = None,
    ) -> httpx.Response:
        content = encode(body)
        headers = {**self.settings.auth_headers(), **(JSON_HEADERS if content is not None else {})}
        try:
            response = self.client.request(
                method,
                url,
                content=content,
                params=params,
                headers=headers,
                timeout=self.settings.http_timeout(allowance),
            )
        except httpx.TransportError as exc:
            transport_error(exc, f"{method} {url}")
        check(response)
        return response

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        return loads(self.request(method, url, **kwargs).content)

    def open_stream(self, url: str, body: Any) -> httpx.Response:
        request = self.client.build_request(
            "POST",
            url,
            content=encode(body),
            headers={**self.settings.auth_headers(), **STREAM_HEADERS},
            timeout=self.settings.http_timeout(),
        )
        try:
            response = self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            transport_error(exc, f"POST {url}")
        if response.status_code >= 400:
            try:
                response.read()
            finally:
                response.close()
            check(response)
        return response

    def get_image(self, url: str) -> bytes:
        headers = self.settings.image_headers(url)
        try:
            if self.client.is_closed:
                with httpx.Client(
                    verify=self.settings.verify, timeout=self.settings.http_timeout()
                ) as c:
                    response = c.get(url, headers={**self.settings.headers, **headers})
            else:
                response = self.client.get(url, headers=headers)
        except httpx.TransportError as exc:
            transport_error(exc, f"GET {url}")
        check(response)
        return response.content

    async def aget_image(self, url: str) -> bytes:
        return await fetch_image_async(self.settings, url)

    def close(self) -> None:
        self.client.close()


class AsyncHTTP:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = httpx.AsyncClient(
            base_url=settings.base_url,
            headers=settings.headers,
            timeout=settings.http_timeout(),
            verify=settings.verify,
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        params: Optional[Mapping[str, str]] = None,
        allowance: Optional[float] = None,
    ) -> httpx.Response:
        content = encode(body)
        headers = {**self.settings.auth_headers(), **(JSON_HEADERS if content is not None else {})}
        try:
            response = await self.client.request(
                method,
                url,
                content=content,
                params=params,
                headers=headers,
                timeout=self.settings.http_timeout(allowance),
            )
        except httpx.TransportError as exc:
            transport_error(exc, f"{method} {url}")
        check(response)
        return response

    async def json(self, method: str, url: str, **kwargs: Any) -> Any:
        return loads((await self.request(method, url, **kwargs)).content)

    async def open_stream(self, url: str, body: Any) -> httpx.Response:
        request = self.client.build_request(
            "POST",
            url,
            content=encode(body),
            headers={**self.settings.auth_headers(), **STREAM_HEADERS},
            timeout=self.settings.http_timeout(),
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            transport_error(exc, f"POST {url}")
        if response.status_code >= 400:
            try:
                await response.aread()
            finally:
                await response.aclose()
            check(response)
        return response

    def get_image(self, url: str) -> bytes:
        # Notebooks call `_repr_png_` synchronously, also for results of the async
        # client: a short-lived sync connection serves them.
        headers = {**self.settings.headers, **self.settings.image_headers(url)}
        try:
            with httpx.Client(
                verify=self.settings.verify, timeout=self.settings.http_timeout()
            ) as c:
                response = c.get(url, headers=headers)
        except httpx.TransportError as exc:
            transport_error(exc, f"GET {url}")
        check(response)
        return response.content

    async def aget_image(self, url: str) -> bytes:
        if self.client.is_closed:
            return await fetch_image_async(self.settings, url)
        try:
            response = await self.client.get(url, headers=self.settings.image_headers(url))
        except httpx.TransportError as exc:
            transport_error(exc, f"GET {url}")
        check(response)
        return response.content

    async def aclose(self) -> None:
        await self.client.aclose()


async def fetch_image_async(settings: Settings, url: str) -> bytes:
    headers = {**settings.headers, **settings.image_headers(url)}
    try:
        async with httpx.AsyncClient(verify=settings.verify, timeout=settings.http_timeout()) as c:
            response = await c.get(url, headers=headers)
    except httpx.TransportError as exc:
        transport_error(exc, f"GET {url}")
    check(response)
    return response.content
