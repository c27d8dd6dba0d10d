"""Fakes shared by the API client's tests (a module, not conftest, so tests can import it).

Also what the aioresponses tests of the client (tests/api/test_api_client*.py) share: the
token URL, a job as the API describes it, answer builders (`env`, `error`, `grant`), the API
URL of a path (`api`) and the requests aioresponses recorded (`calls`, `all_calls`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
from aiohttp import web
from aioresponses import aioresponses
from yarl import URL

AUTH_URL = "https://auth.example.test"
ENDPOINT = "https://api.eu.example.test"
CLIENT_SECRET = "cs-secret-9f8e7d6c5b4a"
ACCESS_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjc2xvYWQifQ.dG9rZW4tc2lnbmF0dXJl"
TOKEN_URL = f"{AUTH_URL}/v1/oauth/token"

JOB = {"jobId": 1119, "name": "Daily sessions", "format": "JSONL", "scope": "sessions",
       "frequency": {"value": "daily"}, "state": "ACTIVE", "deviceLabel": "all",
       "segmentId": None, "fields": [{"fieldName": "session_id"},
                                     {"fieldName": "user_id", "aliasName": "visitor"}],
       "createdAt": "2026-11-01T09:12:00.000Z"}


class FakeSleep:
    """Records the delays asked for; never waits (but yields, like a real sleep would)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await anyio.lowlevel.checkpoint()


Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeStorage:
    """A storage host on 127.0.0.1: each path answers with its responders in turn (the last
    one repeats), and every request's headers are kept."""

    def __init__(self) -> None:
        self.base_url = ""
        self.routes: dict[str, list[Responder]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []

    def serve(self, path: str, *responders: Responder) -> str:
        self.routes[path] = list(responders)
        return f"{self.base_url}{path}?X-Amz-Signature=s1gn4tur3deadbeef&X-Amz-Expires=900"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.headers)))
        responders = self.routes.get(request.path)
        if not responders:
            return web.Response(status=404)
        responder = responders.pop(0) if len(responders) > 1 else responders[0]
        return await responder(request)

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    @staticmethod
    def body(data: bytes, *, headers: dict[str, str] | None = None) -> Responder:
        async def respond(request: web.Request) -> web.StreamResponse:
            return web.Response(body=data, headers=headers)

        return respond


    @staticmethod
    def status(code: int, *, headers: dict[str, str] | None = None, text: str = "") -> Responder:
        async def respond(request: web.Request) -> web.StreamResponse:
            return web.Response(status=code, text=text, headers=headers)

        return respond


    @staticmethod
    def cut(data: bytes, *, announced: int) -> Responder:
        """Announce `announced` bytes, send `data`, then drop the connection."""

        async def respond(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse()
            response.content_length = announced
            await response.prepare(request)
            await response.write(data)
            assert request.transport is not None
            request.transport.close()
            return response

        return respond


class _SentWriter:
    """Stands in for the request writer of a request that was already sent."""

    output_size = 0


class MockResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds ClientResponse without `stream_writer`, which aiohttp 3.14
    requires; this fills it in. Installed by the `mocked` fixture."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _SentWriter())
        super().__init__(method, url, **kwargs)


@contextlib.asynccontextmanager
async def dribbling_host(head: bytes, dribble: Iterable[int], interval: float = 0.05
                         ) -> AsyncIterator[tuple[str, list[str]]]:
    """A raw HTTP server on 127.0.0.1 answering each request with `head` at once, then
    `dribble` one byte every `interval` seconds (20 bytes/s by default: forever within any
    read timeout, when `dribble` has no end); yields its base URL and what became of each
    connection ("open", "finished", "closed by the client")."""
    connections: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        index = len(connections)
        connections.append("open")
        try:
            writer.write(head)
            for byte in dribble:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(interval)
            connections[index] = "finished"
        except ConnectionError:
            connections[index] = "closed by the client"
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()
        await server.wait_closed()


# -- aioresponses helpers ------------------------------------------------------------------------


def env(payload: Any) -> dict[str, Any]:
    return {"success": True, "payload": payload}


def api(path: str, **query: Any) -> str:
    url = URL(f"{ENDPOINT}/v1{path}")
    return str(url.with_query({k: str(v) for k, v in query.items()}) if query else url)


def grant(m: aioresponses, *, token: str = ACCESS_TOKEN, endpoint: str = ENDPOINT,
          expires_in: int = 3600, repeat: bool = False) -> None:
    m.post(TOKEN_URL, repeat=repeat, payload={
        "access_token": token, "token_type": "Bearer", "expires_in": expires_in,
        "endpoint": endpoint, "scope": "data-export", "project_id": 42})


def calls(m: aioresponses, method: str, url: str) -> list[Any]:
    return m.requests.get((method, URL(url)), [])


def all_calls(m: aioresponses) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, str(url), call.kwargs)
            for (method, url), found in m.requests.items() for call in found]


def error(code: str, message: str) -> dict[str, Any]:
    return {"success": False, "errorCode": code, "errorMessage": message}
