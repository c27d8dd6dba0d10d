"""One attempt of an API request (`ask`): a total timeout, and the body read with a ceiling on
its size counted after decompression.

A total timeout per attempt (`Limits.api_timeout`), from the connection to the body's last
byte: aiohttp's read timeout is per read, and a server sending one byte every 119 s kept a
request alive forever (issue 16). Running out of it is `CallTimedOut`, a transport error
(retried like a timeout, described by csload.api.transport).

aiohttp reads a body whole and inflates it with no limit: a 204 KB gzip answer once cost
419 MB of memory (issue 16). API requests are therefore sent with `auto_decompress=False` and
an Accept-Encoding of our own (`ACCEPT_ENCODING`), and `read_capped` inflates gzip or deflate
itself in bounded steps (zlib's `max_length`): it never holds more than `limit` bytes of
inflated body, whatever the compression ratio, and refuses the answer once it would pass it.
Nothing the Export API sends comes near the default ceiling (64 MiB, `Limits.
max_response_bytes`): its largest answers are lists read 100 items a page.

A damaged compressed stream (cut short, not gzip) is what aiohttp would have raised as a
broken payload: `aiohttp.ClientPayloadError`, a transport error the caller may retry. An answer
too large is an ApiError: asking again would bring the same bytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio

from csload.api.retry import parse_retry_after
from csload.api.transport import TRANSPORT_ERRORS, CallTimedOut
from csload.errors import ApiError

if TYPE_CHECKING:
    from csload.config import Limits

ACCEPT_ENCODING = "gzip, deflate"
# Compressed bytes taken from the connection at a time, and the most bytes one inflate step
# adds: a 64 KiB chunk of a bomb inflates to 64 MiB, which is not held at once either.
_STEP = 64 << 10
_MAX_STEP_OUTPUT = 1 << 20


class _Inflater:
    """Inflates one Content-Encoding into `out`, never past `limit` + 1 bytes of it."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._wbits = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS,
                       "deflate": zlib.MAX_WBITS}.get(encoding)
        self._zlib = None if self._wbits is None else zlib.decompressobj(self._wbits)
        self._started = False

    def feed(self, data: bytes, out: bytearray, limit: int) -> None:
        if self._zlib is None:
            out += data
            return
        while data:
            data = self._step(data, out, limit)

    def finish(self, out: bytearray, limit: int) -> None:
        if self._zlib is None:
            return
        # Output zlib still holds back once the input is all taken (max_length stopped it).
        while len(out) <= limit:
            before = len(out)
            out += self._zlib.decompress(b"", _room(out, limit))
            if len(out) == before:
                break
        if len(out) <= limit and not self._zlib.eof:
            raise aiohttp.ClientPayloadError(
                f"the {self.encoding} body of the answer ended before its end")

    def _step(self, data: bytes, out: bytearray, limit: int) -> bytes:
        """Inflate what `data` gives within the room left; the input still to inflate."""
        assert self._zlib is not None and self._wbits is not None
        try:
            out += self._zlib.decompress(data, _room(out, limit))
        except zlib.error:
            if self.encoding == "deflate" and not self._started and self._wbits > 0:
                # "deflate" without its zlib header, as some servers send it.
                self._wbits = -zlib.MAX_WBITS
                self._zlib = zlib.decompressobj(self._wbits)
                return data
            raise aiohttp.ClientPayloadError(
                f"the {self.encoding} body of the answer is damaged") from None
        self._started = True
        if len(out) > limit:
            return b""
        if self._zlib.eof and self._zlib.unused_data:
            # A gzip body may hold several members, one after the other.
            rest = self._zlib.unused_data
            self._zlib = zlib.decompressobj(self._wbits)
            return rest
        return self._zlib.unconsumed_tail


def _room(out: bytearray, limit: int) -> int:
    # One byte past the limit: enough to know it was passed, never more.
    return max(1, min(_MAX_STEP_OUTPUT, limit + 1 - len(out)))


async def read_capped(response: aiohttp.ClientResponse, *, limit: int, what: str) -> bytes:
    """The body of `response` (sent with `auto_decompress=False`), inflated; ApiError, naming
    `what` (the method and path), once it would pass `limit` bytes."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
        raise ApiError(f"{what}: the API answered in an encoding csload did not ask for "
                       f"({encoding[:40]!r}); it accepts {ACCEPT_ENCODING}")
    announced = response.content_length
    if encoding in ("", "identity") and announced is not None and announced > limit:
        raise _too_large(what, limit)
    inflater = _Inflater(encoding)
    body = bytearray()
    async for chunk in response.content.iter_chunked(_STEP):
        inflater.feed(chunk, body, limit)
        if len(body) > limit:
            # Stop reading: the rest of the answer is not wanted, nor left in the connection.
            response.close()
            raise _too_large(what, limit)
    inflater.finish(body, limit)
    if len(body) > limit:
        raise _too_large(what, limit)
    return bytes(body)


def _too_large(what: str, limit: int) -> ApiError:
    return ApiError(
        f"{what}: the API's answer is larger than {limit:,} bytes once decompressed; refused "
        "(raise [limits] max_response_bytes in csload.toml if the answer is genuine)")


@dataclass(frozen=True, slots=True)
class Answer:
    """One attempt's outcome: a response (status, body) or a transport error. The body may be
    a token response, the error's text a URL: neither is in the repr."""

    status: int | None
    raw: bytes = field(default=b"", repr=False)
    retry_after: float | None = None
    error: BaseException | None = field(default=None, repr=False)
    date: str | None = None     # the server's Date header


async def ask(session: aiohttp.ClientSession, method: str, url: str, *, limits: Limits,
              what: str, headers: Mapping[str, str], **options: Any) -> Answer:
    """One attempt of an API request (never a redirect followed: one could carry the token
    elsewhere); transport errors and running out of `limits.api_timeout` become an Answer.
    ApiError when the body passes `limits.max_response_bytes`."""
    with anyio.move_on_after(limits.api_timeout) as deadline:
        try:
            async with session.request(
                    method, url, headers={**headers, "Accept-Encoding": ACCEPT_ENCODING},
                    allow_redirects=False, auto_decompress=False, **options) as response:
                raw = await read_capped(response, limit=limits.max_response_bytes, what=what)
                # What aiohttp's own read() does with a body, which trace hooks (csload
                # doctor's recorder) rely on: they see the (inflated) body once, whole.
                for trace in getattr(response, "_traces", ()):
                    await trace.send_response_chunk_received(method, response.url, raw)
                return Answer(status=response.status, raw=raw,
                              retry_after=parse_retry_after(response.headers.get("Retry-After")),
                              date=response.headers.get("Date"))
        except TRANSPORT_ERRORS as exc:
            return Answer(status=None, error=exc)
    assert deadline.cancelled_caught
    return Answer(status=None, error=CallTimedOut(limits.api_timeout))
