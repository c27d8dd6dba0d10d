"""The raw HTTP exchanges of a doctor run, recorded from the client's own session, redacted.

Doctor gives `ExportClient` a session of its own (the client takes one: `session=`) with an
aiohttp trace hook that notes every request: the token request, each API call, each storage
request. Bodies are kept for the token endpoint and the API only (at most `MAX_BODY` bytes
each, at most `MAX_EXCHANGES` exchanges), never for storage. So `--save` shows exactly what
the service answered to csload's own client, not to a second client written for doctor.

Nothing recorded leaves this module unredacted: `saved_responses` removes the client id and
secret, every access token, any key that names a secret, and reduces every URL to
scheme://host/path (the query string of a part URL is its signature). Request bodies (the
token request carries the client secret) and request headers (the bearer token) are never
recorded at all.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import orjson

from csload.api import transport
from csload.api.connection import TOKEN_PATH
from csload.api.transport import new_session
from csload.config import Limits, Settings
from csload.doctor.report import SavedResponse
from csload.redact import redact_url

MAX_EXCHANGES = 300
MAX_BODY = 2 << 20
# What a saved body shows at most (a list page of 100 jobs is ~50 KB).
MAX_SAVED_TEXT = 256 << 10

# Response headers worth attaching to a bug report; every other one is left out.
KEPT_HEADERS = ("Date", "Content-Type", "Content-Length", "Content-Encoding", "Content-Range",
                "Accept-Ranges", "Retry-After", "Location", "Server", "Via", "ETag",
                "Last-Modified", "X-Amz-Request-Id", "X-Request-Id")
# Query parameters of an API call worth keeping (paging and filters); others are dropped.
KEPT_QUERY = ("page", "limit", "order", "state", "scope", "format", "frequency", "from", "to")
# JSON keys whose values are secrets, whatever they hold.
_SECRET_KEY = re.compile(
    r"(?i)^(?:access|refresh|id)?_?token$|secret|password|passwd|client_?id|authorization|"
    r"signature|credential|api_?key|cookie")
REDACTED = "<redacted>"


@dataclass
class Exchange:
    """One request and what came back (internal: holds unredacted bodies)."""

    kind: str                     # "token", "api" or "storage"
    method: str
    url: str = field(repr=False)  # as requested (may hold a signature: never shown as is)
    started: float
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = field(default=None, repr=False)
    error: str | None = None
    elapsed: float | None = None


class Recorder:
    """The trace hook: `Recorder(settings).session(...)` makes the session to give the client."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.exchanges: list[Exchange] = []
        self.dropped = 0

    def session(self, limits: Limits) -> aiohttp.ClientSession:
        """The session ExportClient would make itself, with the recorder's trace hooks."""
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._on_start)
        trace.on_request_end.append(self._on_end)
        trace.on_response_chunk_received.append(self._on_body)
        trace.on_request_exception.append(self._on_exception)
        return new_session(limits, trace_configs=[trace])

    # -- the trace hooks ----------------------------------------------------------------------

    async def _on_start(self, _session: aiohttp.ClientSession, ctx: SimpleNamespace,
                        params: aiohttp.TraceRequestStartParams) -> None:
        url = str(params.url)
        if "Authorization" in params.headers:
            kind = "api"
        elif params.method == "POST" and urlsplit(url).path.endswith(TOKEN_PATH):
            kind = "token"
        else:
            kind = "storage"
        ctx.exchange = None
        if len(self.exchanges) >= MAX_EXCHANGES:
            self.dropped += 1
            return
        ctx.exchange = Exchange(kind, params.method, url, time.monotonic())
        self.exchanges.append(ctx.exchange)

    async def _on_end(self, _session: aiohttp.ClientSession, ctx: SimpleNamespace,
                      params: aiohttp.TraceRequestEndParams) -> None:
        exchange: Exchange | None = ctx.exchange
        if exchange is None:
            return
        response = params.response
        exchange.status = response.status
        exchange.elapsed = time.monotonic() - exchange.started
        exchange.headers = {name: response.headers[name] for name in KEPT_HEADERS
                            if name in response.headers}

    async def _on_body(self, _session: aiohttp.ClientSession, ctx: SimpleNamespace,
                       params: aiohttp.TraceResponseChunkReceivedParams) -> None:
        exchange: Exchange | None = ctx.exchange
        if exchange is not None and exchange.kind != "storage":
            exchange.body = bytes(params.chunk[:MAX_BODY])

    async def _on_exception(self, _session: aiohttp.ClientSession, ctx: SimpleNamespace,
                            params: aiohttp.TraceRequestExceptionParams) -> None:
        exchange: Exchange | None = ctx.exchange
        if exchange is not None:
            exchange.error = transport.describe(params.exception)
            exchange.elapsed = time.monotonic() - exchange.started

    # -- reading it back ----------------------------------------------------------------------

    def of_kind(self, kind: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.kind == kind]

    def token_answer(self) -> tuple[Exchange, dict[str, Any] | None] | None:
        """The last token exchange and its JSON object (the payload when enveloped)."""
        tokens = self.of_kind("token")
        if not tokens:
            return None
        last = tokens[-1]
        return last, _token_object(last.body)

    def secrets(self) -> tuple[str, ...]:
        """Every secret the exchanges may show: the credentials and each access token."""
        found = {self._settings.client_id, self._settings.client_secret}
        for exchange in self.of_kind("token"):
            body = _token_object(exchange.body)
            token = body.get("access_token") if body else None
            if isinstance(token, str) and token:
                found.add(token)
        return tuple(sorted((s for s in found if s), key=len, reverse=True))

    def redact(self, text: str) -> str:
        """`text` without the secrets of `secrets()`, tokens or URL signatures."""
        return redact_text_with(text, self.secrets())

    def saved_responses(self) -> list[SavedResponse]:
        """Every exchange, redacted, named in the order they happened."""
        secrets = self.secrets()
        out = []
        for number, exchange in enumerate(self.exchanges, start=1):
            path = urlsplit(exchange.url).path
            slug = re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-")[-60:] or "root"
            name = f"{number:03d}-{exchange.kind}-{exchange.method}-{slug}.json"
            out.append(SavedResponse(name, redact_exchange(exchange, secrets)))
        return out


def _token_object(body: bytes | None) -> dict[str, Any] | None:
    if not body:
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(value, dict) and isinstance(value.get("payload"), dict):
        value = value["payload"]
    return value if isinstance(value, dict) else None


def redact_text_with(text: str, secrets: tuple[str, ...]) -> str:
    """Free text with the secrets, tokens and URL signatures taken out."""
    return transport.scrub(text, secrets)


def redact_tree(value: Any, secrets: tuple[str, ...]) -> Any:
    """A decoded JSON value with every secret removed (see the module docstring)."""
    if isinstance(value, dict):
        return {key: (REDACTED if _SECRET_KEY.search(str(key)) and item not in (None, "")
                      else redact_tree(item, secrets))
                for key, item in value.items()}
    if isinstance(value, list):
        return [redact_tree(item, secrets) for item in value]
    if isinstance(value, str):
        return redact_text_with(value, secrets)
    return value


def redact_exchange(exchange: Exchange, secrets: tuple[str, ...]) -> dict[str, Any]:
    parts = urlsplit(exchange.url)
    request: dict[str, Any] = {"method": exchange.method, "url": redact_url(exchange.url)}
    if exchange.kind == "api" and parts.query:
        request["query"] = {key: redact_text_with(value, secrets)
                            for key, value in parse_qsl(parts.query) if key in KEPT_QUERY}
    out: dict[str, Any] = {"kind": exchange.kind, "request": request}
    if exchange.error is not None:
        out["error"] = redact_text_with(exchange.error, secrets)
    out["status"] = exchange.status
    out["headers"] = {name: (redact_url(value) if name == "Location"
                             else redact_text_with(value, secrets))
                      for name, value in exchange.headers.items()}
    if exchange.elapsed is not None:
        out["elapsedMs"] = round(exchange.elapsed * 1000)
    if exchange.body is not None:
        try:
            out["body"] = redact_tree(orjson.loads(exchange.body), secrets)
        except orjson.JSONDecodeError:
            text = exchange.body[:MAX_SAVED_TEXT].decode("utf-8", "replace")
            out["bodyText"] = redact_text_with(text, secrets)
    return out
