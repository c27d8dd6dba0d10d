"""Third-party errors become safe text (csload.api.transport)."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from csload.api import transport

SIGNED = "https://bucket.example.test/exports/1/2/part-00001.jsonl.gz?X-Amz-Signature=s1gn&Expires=9"


def request_info() -> aiohttp.RequestInfo:
    return aiohttp.RequestInfo(URL(SIGNED), "GET", CIMultiDictProxy(CIMultiDict()), URL(SIGNED))


def connector_error() -> aiohttp.ClientConnectorError:
    key = ConnectionKey("bucket.example.test", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (aiohttp.ClientResponseError(request_info(), (), status=503, message="Slow Down"),
         "HTTP 503 Slow Down"),
        (aiohttp.ServerDisconnectedError(), "the server closed the connection"),
        # It said "HTTP 0" (a ClientResponseError of status 0).
        (aiohttp.TooManyRedirects(request_info(), ()), "too many redirects (a redirect loop?)"),
        (aiohttp.ClientPayloadError("Response payload is not completed"),
         "the connection broke before the whole body arrived"),
        (aiohttp.ConnectionTimeoutError(), "timed out connecting"),
        (aiohttp.SocketTimeoutError(), "timed out waiting for data"),
        (TimeoutError(), "timed out"),
        (connector_error(), "cannot connect (Connection refused)"),
        (aiohttp.InvalidURL(SIGNED), "not a valid URL"),
        (aiohttp.ClientConnectionError(f"Connection refused: GET {SIGNED}"),
         "ClientConnectionError: Connection refused: GET "
         "https://bucket.example.test/exports/1/2/part-00001.jsonl.gz?<redacted>"),
    ],
)
def test_describe_never_shows_a_signature(exc: BaseException, expected: str) -> None:
    # Several of these carry the full signed URL in their own str().
    assert transport.describe(exc) == expected
    assert "s1gn" not in transport.describe(exc)


def test_only_a_failed_connect_means_the_request_was_not_sent() -> None:
    assert not transport.request_was_sent(connector_error())
    assert not transport.request_was_sent(aiohttp.ConnectionTimeoutError())
    assert transport.request_was_sent(aiohttp.ServerDisconnectedError())
    assert transport.request_was_sent(aiohttp.SocketTimeoutError())
    assert transport.request_was_sent(TimeoutError())


def test_scrub_removes_known_secrets_urls_and_tokens() -> None:
    text = (f"failed {SIGNED} with Bearer abc.def.ghi and secret hunter2-secret "
            "client_secret=zzz")
    scrubbed = transport.scrub(text, ("hunter2-secret", ""))
    for secret in ("s1gn", "abc.def.ghi", "hunter2-secret", "zzz"):
        assert secret not in scrubbed
    assert "bucket.example.test/exports/1/2/part-00001.jsonl.gz" in scrubbed
