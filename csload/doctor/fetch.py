"""The first bytes of a part: a ranged GET from the storage host that stops at `max_bytes`,
whatever storage does with the Range header, then inflated (at most `MAX_TEXT` bytes).

Like the client's downloads (csload.transfer.storage): the client's own session, no Authorization
header (the API token never reaches storage), the proxy the environment names for the URL
(csload.api.proxy), redirects followed only to https or loopback URLs, retries with backoff on
429, 5xx and connection errors. A 403/404/410 is not retried: `Refused` carries storage's own
clock (its Date header), to tell expired files from a refused URL.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

import aiohttp

from csload.api import transport
from csload.api.proxy import Proxies, shown
from csload.api.retry import RequestKind, Verdict, backoff_delay, classify, parse_retry_after
from csload.config import Limits, RetryPolicy
from csload.errors import DownloadError
from csload.https_rule import require_secure_url
from csload.transfer.storage import MAX_REDIRECTS, get_following_redirects

# The most bytes doctor downloads of a part, and the most text it inflates them to.
SAMPLE_BYTES = 2 << 20
MAX_TEXT = 24 << 20
_CHUNK = 64 << 10


@dataclass(frozen=True, slots=True)
class Head:
    data: bytes
    total: int | None     # the part's size when storage says it
    whole: bool           # `data` is the whole part
    proxy: str | None     # the proxy the request went through (credentials removed)


class Refused(Exception):
    """Storage answered 403, 404 or 410; `server_time` is its Date header. A finding of the
    sample check (csload.doctor.sample), which reports it as the check's result: it never
    leaves the doctor, so it is not part of csload's error tree."""

    def __init__(self, status: int, server_time: datetime | None) -> None:
        super().__init__(f"storage answered HTTP {status}")
        self.status = status
        self.server_time = server_time


class _Again(Exception):
    def __init__(self, problem: str, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.retry_after = retry_after


async def fetch_head(session: aiohttp.ClientSession, url: str, *, max_bytes: int,
                     limits: Limits, retry: RetryPolicy, proxies: Proxies,
                     sleep: Callable[[float], Awaitable[None]],
                     loopback_http: bool = False) -> Head:
    """The first `max_bytes` of a part. Plain http only to loopback in simulator mode
    (`loopback_http`: csload.https_rule.plain_http_allowed of the auth URL)."""
    require_secure_url(url, "a part URL", loopback_http=loopback_http)
    for attempt in range(1, retry.max_attempts + 1):
        try:
            return await _attempt(session, url, max_bytes, limits, proxies, loopback_http)
        except _Again as again:
            if attempt >= retry.max_attempts:
                raise DownloadError(f"the sample download failed: {again}; gave up after "
                                    f"{attempt} attempts") from None
            await sleep(backoff_delay(attempt, retry, again.retry_after))
    raise AssertionError("unreachable: max_attempts >= 1")


async def _attempt(session: aiohttp.ClientSession, url: str, max_bytes: int, limits: Limits,
                   proxies: Proxies, loopback_http: bool) -> Head:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=limits.connect_timeout,
                                    sock_read=limits.read_timeout)
    headers = {"Range": f"bytes=0-{max_bytes - 1}"}
    try:
        async with get_following_redirects(session, url, "a part URL", proxies,
                                           loopback_http=loopback_http, headers=headers,
                                           timeout=timeout, auto_decompress=False) as response:
            return await _read(response, max_bytes, proxies.for_url(str(response.url)))
    except aiohttp.TooManyRedirects:
        raise DownloadError(f"storage redirected more than {MAX_REDIRECTS} times") from None
    except transport.TRANSPORT_ERRORS as exc:
        raise _Again(transport.describe(exc)) from None


async def _read(response: aiohttp.ClientResponse, max_bytes: int, proxy: str | None) -> Head:
    status = response.status
    if status in (403, 404, 410):
        raise Refused(status, _date(response.headers.get("Date")))
    if status == 416:   # nothing to send: the part is empty
        return Head(b"", 0, True, shown(proxy))
    if status not in (200, 206):
        problem = f"storage answered HTTP {status}"
        if classify(status, kind=RequestKind.STORAGE) is Verdict.RETRY:
            raise _Again(problem, parse_retry_after(response.headers.get("Retry-After")))
        raise DownloadError(problem)
    total: int | None = response.content_length if status == 200 else None
    if status == 206:
        announced = response.headers.get("Content-Range", "").rpartition("/")[2]
        total = int(announced) if announced.isdigit() else None
    data = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        data += chunk
        if len(data) >= max_bytes:
            break
    ended = response.content.at_eof()
    if not ended:
        # Stop here: the rest of a large part is not wanted, nor left in the pool's connection.
        response.close()
    kept = bytes(data[:max_bytes])
    whole = (len(kept) >= total) if total is not None else (ended and len(data) <= max_bytes)
    return Head(kept, total, whole, shown(proxy))


def _date(value: str | None) -> datetime | None:
    try:
        return parsedate_to_datetime(value or "")
    except (TypeError, ValueError, IndexError):
        return None


def inflate(data: bytes, limit: int = MAX_TEXT) -> tuple[bytes, bool]:
    """The text of a gzip sample (every member, at most `limit` bytes), and whether the gzip
    stream ended within `data` (else the sample stops mid-stream). zlib.error if damaged."""
    out = bytearray()
    rest = data
    while rest:
        room = limit - len(out)
        if room <= 0:
            return bytes(out), False
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += inflater.decompress(rest, room)
        if not inflater.eof:
            return bytes(out), False
        rest = inflater.unused_data
    return bytes(out), True
