"""JSON bodies the API sends: the success envelope, errors, and the variant shapes."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from csload.simulator.config import Variants

_ID_KEYS = frozenset({"jobId", "jobRunId", "partId"})


def _stringify_ids(value: Any) -> Any:
    if isinstance(value, list):
        return [_stringify_ids(v) for v in value]
    if isinstance(value, dict):
        return {k: (str(v) if k in _ID_KEYS and isinstance(v, int) else _stringify_ids(v))
                for k, v in value.items()}
    return value


def success(payload: Any, variants: Variants, status: int = 200) -> web.Response:
    """The payload in its envelope (or bare, with the no_envelope variant)."""
    if variants.string_ids:
        payload = _stringify_ids(payload)
    body = payload if variants.no_envelope else {"success": True, "payload": payload}
    return web.Response(status=status, body=orjson.dumps(body),
                        content_type="application/json")


def error(status: int, code: str, message: str,
          headers: dict[str, str] | None = None) -> web.Response:
    body = {"success": False, "errorMessage": message, "errorCode": code}
    return web.Response(status=status, body=orjson.dumps(body), headers=headers,
                        content_type="application/json")


def plain_500() -> web.Response:
    """What the real service was reported to answer for wrong credentials."""
    return web.Response(status=500, text="Internal Server Error", content_type="text/plain")


def fault(status: int, retry_after: int) -> web.Response:
    """An injected API failure with the given status."""
    if status == 429:
        return error(429, "TOO_MANY_REQUESTS", "Too many requests, retry later.",
                     {"Retry-After": str(retry_after)})
    if status in (502, 504):
        # Gateways answer with their own page, not the API's JSON.
        return web.Response(status=status, text=f"<html><body><h1>{status} Gateway error"
                            "</h1></body></html>", content_type="text/html")
    if status >= 500:
        return error(status, "INTERNAL_SERVER_ERROR", "The service is temporarily unavailable.",
                     {"Retry-After": str(retry_after)} if status == 503 else None)
    return error(status, "INJECTED_FAULT", f"Injected fault with status {status}.")
