"""Downloading one part from its pre-signed storage URL to a file, verified.

- A plain GET with no Authorization header and no cookies: the API token never reaches the
  storage host. Storage requests do not pass through the API limiter (storage is not the API).
- Streamed in chunks to a temporary file beside `dest`, renamed to `dest` only once complete
  and verified; the temporary file is removed on any failure, so `dest` is whole or absent.
- Verified while streaming: the byte count against Content-Length, and, when the body starts
  with the gzip magic bytes, that the gzip stream (every member of it) decompresses to its
  end. Output is discarded: the point is integrity, not content. An uncompressed part is
  accepted as is. `verify_gzip=False` skips the inflate (the byte count is still checked) for
  a caller that reads every byte through a gzip reader anyway and downloads again what it
  finds damaged: the sync pipeline (csload.transfer.stage); `gzip_problem` is the same check on a
  file, for that caller's error path.
- 503 SlowDown, other 5xx, 429, cut connections, timeouts and incomplete bodies are retried
  with backoff (honouring Retry-After). 403 raises PartUrlExpired at once: only a fresh run
  detail can help. 404/410 means the files are gone.
- No total timeout: a part can be large. Connect and between-bytes timeouts apply, and the
  part's byte cap and storage's minimum rate (csload.transfer.guard), on every GET.
- The https rule (csload.https_rule) for the part URL and every redirect: plain http only to a
  loopback address, and only when the caller says so (`loopback_http`: the client's auth URL
  is a loopback address, the simulator). A URL that cannot be parsed (a port out of range)
  fails the part with one line that does not show it: it holds the signature.
- Every request (GET, the size probe, each redirect, and doctor's ranged sample GET, which
  uses `get_following_redirects`) goes through the proxy the environment names for its URL
  (`proxies`, csload.api.proxy), or direct.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import aiohttp
import anyio
import anyio.to_thread
import yarl

from csload.api import transport
from csload.api.proxy import Proxies
from csload.api.retry import RequestKind, Verdict, backoff_delay, classify, parse_retry_after
from csload.errors import (
    ConfigError,
    DownloadError,
    IncompleteDownload,
    InsecureUrlError,
    StorageGone,
    StorageRefused,
    StorageTooSlow,
    part_label,
)
from csload.https_rule import require_secure_url
from csload.redact import redact_url
from csload.transfer.guard import DownloadGuard
from csload.transfer.gzipcheck import CorruptStream, GzipVerifier

if TYPE_CHECKING:
    from csload.config import Limits, RetryPolicy

logger = logging.getLogger("csload.api")

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")



@dataclass(frozen=True, slots=True)
class DownloadResult:
    path: Path
    bytes_written: int
    gzip: bool


def _server_time(headers: Mapping[str, str]) -> datetime | None:
    try:
        when = parsedate_to_datetime(headers.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class _TempFile:
    """The staging file beside dest. Blocking methods: call them in a worker thread."""

    def __init__(self, dest: Path, verify_gzip: bool = True) -> None:
        self.dest = dest
        self.path = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
        self._fh: IO[bytes] | None = None
        self.verifying = verify_gzip
        self.verifier = GzipVerifier(verify_gzip)
        self.written = 0

    def open(self) -> None:
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.close()
        # Private (0600): the staged export data is the user's alone. Opened again (and
        # emptied) when a download is retried; its name is random, in a 0700 folder.
        self._fh = os.fdopen(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                             "wb")
        self.verifier = GzipVerifier(self.verifying)
        self.written = 0

    def write(self, chunk: bytes) -> None:
        assert self._fh is not None
        self._fh.write(chunk)
        self.written += len(chunk)
        self.verifier.feed(chunk)

    def commit(self) -> bool:
        """Verify and rename to dest; returns whether the part is gzip."""
        is_gzip = self.verifier.finish()
        self.close()
        os.replace(self.path, self.dest)
        return is_gzip

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


class _Retry(Exception):
    """One attempt failed in a way a later attempt may not (internal)."""

    def __init__(self, error: DownloadError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


async def download_part(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    *,
    job_id: int | None,
    run_id: int | None,
    part_id: int | None,
    limits: Limits,
    retry: RetryPolicy,
    sleep: Sleep = anyio.sleep,
    verify_gzip: bool = True,
    proxies: Proxies | None = None,
    loopback_http: bool = True,
) -> DownloadResult:
    """Stream `url` to `dest`, verified; see the module docstring for the rules."""
    label = part_label(job_id, run_id, part_id)
    ids = {"job_id": job_id, "run_id": run_id, "part_id": part_id}
    check_part_url(url, f"the URL of {label}", loopback_http=loopback_http, ids=ids)
    client_timeout = _storage_timeout(limits)
    temp = _TempFile(dest, verify_gzip)
    try:
        for attempt in range(1, retry.max_attempts + 1):
            try:
                is_gzip, received = await _attempt(session, url, temp, client_timeout, limits,
                                                   label, ids, proxies, loopback_http)
            except _Retry as failure:
                if attempt >= retry.max_attempts:
                    raise failure.error from None
                delay = backoff_delay(attempt, retry, failure.retry_after)
                logger.warning("%s (attempt %d/%d); retrying in %.1f s",
                               failure.error, attempt, retry.max_attempts, delay)
                await sleep(delay)
            else:
                logger.debug("%s: downloaded %d bytes from %s", label, temp.written,
                             redact_url(url))
                return DownloadResult(path=dest, bytes_written=received, gzip=is_gzip)
        raise AssertionError("unreachable: max_attempts >= 1")
    except BaseException:
        # Cancellation included: never leave a half-written staging file behind.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(temp.discard)
        raise


_REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5


def check_part_url(url: str, what: str, *, loopback_http: bool,
                   ids: Mapping[str, int | None] | None = None) -> None:
    """The https rule for a part URL (InsecureUrlError); a URL that cannot be parsed is a
    DownloadError of the part that does not show it (a traceback once printed it, issue 16)."""
    try:
        require_secure_url(url, what, loopback_http=loopback_http)
        yarl.URL(url, encoded=True)
    except InsecureUrlError:
        raise
    except ConfigError as exc:
        raise DownloadError(str(exc), **(ids or {})) from None
    except ValueError:
        raise DownloadError(f"{what} is not a valid URL", **(ids or {})) from None


@asynccontextmanager
async def get_following_redirects(
        session: aiohttp.ClientSession, url: str, what: str, proxies: Proxies | None,
        *, loopback_http: bool = True, **options: Any) -> AsyncIterator[aiohttp.ClientResponse]:
    """GET `url`, following redirects only to URLs that pass `require_secure_url` (with
    `loopback_http`: the https rule of csload.https_rule).

    aiohttp would follow a redirect anywhere, plain http off this machine included, where the
    part's data would cross the network in clear text (found by tests/reliability). The proxy
    is chosen again for each URL: a redirect may lead to a host NO_PROXY names.
    """
    for _ in range(MAX_REDIRECTS + 1):
        proxy = proxies.for_url(url) if proxies is not None else None
        async with session.get(url, allow_redirects=False, proxy=proxy, **options) as response:
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or not location:
                yield response
                return
            try:
                url = str(response.url.join(yarl.URL(location, encoded=True)))
            except ValueError:
                # Not the Location itself in the error: it may be a signed URL.
                raise aiohttp.InvalidUrlRedirectClientError(
                    "<redacted>", "storage redirected to an invalid URL") from None
        check_part_url(url, f"{what} (redirected)", loopback_http=loopback_http)
    raise aiohttp.TooManyRedirects(response.request_info, response.history)


async def _attempt(
    session: aiohttp.ClientSession,
    url: str,
    temp: _TempFile,
    client_timeout: aiohttp.ClientTimeout,
    limits: Limits,
    label: str,
    ids: dict[str, int | None],
    proxies: Proxies | None = None,
    loopback_http: bool = True,
) -> tuple[bool, int]:
    """One GET of the part; (whether it is gzip, bytes received)."""
    expected: int | None = None
    guard = DownloadGuard(limits, label, ids)
    try:
        with guard.scope:
            async with get_following_redirects(session, url, f"the URL of {label}", proxies,
                                               loopback_http=loopback_http,
                                               timeout=client_timeout,
                                               auto_decompress=False) as response:
                status = response.status
                if status != 200:
                    _raise_for_status(status, response.headers, label, ids)
                expected = response.content_length
                guard.announced(expected)
                await _on_disk(temp, temp.open, ids)
                async for chunk in guard.watch(response.content.iter_chunked(limits.chunk_size)):
                    await _on_disk(temp, temp.write, ids, chunk)
        guard.check()
    except aiohttp.ClientPayloadError:
        raise _Retry(IncompleteDownload(
            f"{label}: the connection broke before the whole part arrived "
            f"({temp.written} bytes received)", **ids)) from None
    except transport.TRANSPORT_ERRORS as exc:
        raise _Retry(DownloadError(f"{label}: {transport.describe(exc)}", **ids)) from None
    except CorruptStream as exc:
        # Found mid-body, while streaming (not only by commit() at the end): the same failed
        # download. Uncaught, this internal error ended the whole sync with a traceback
        # (found by tests/reliability).
        raise _Retry(IncompleteDownload(f"{label}: {exc}", **ids)) from None
    except StorageTooSlow as exc:
        raise _Retry(exc) from None
    received = temp.written
    if expected is not None and received != expected:
        raise _Retry(IncompleteDownload(
            f"{label}: received {received} bytes, Content-Length announced {expected}",
            **ids))
    try:
        return await _on_disk(temp, temp.commit, ids), received
    except CorruptStream as exc:
        raise _Retry(IncompleteDownload(f"{label}: {exc}", **ids)) from None


async def _on_disk(
    temp: _TempFile, func: Callable[..., T], ids: dict[str, int | None], *args: Any
) -> T:
    """Run blocking file work in a thread; a disk error is fatal, not a network hiccup."""
    try:
        return await anyio.to_thread.run_sync(func, *args)
    except OSError as exc:
        raise _staging_error(temp.path, ids, exc) from None


def _staging_error(path: Path, ids: dict[str, int | None], exc: OSError) -> DownloadError:
    """A disk error on a staging file: fatal for the part, not a network hiccup."""
    return DownloadError(f"{part_label(**ids)}: cannot write the staging file {path}: "
                         f"{exc.strerror or type(exc).__name__}", **ids)


def _storage_timeout(limits: Limits) -> aiohttp.ClientTimeout:
    """No total: a large part takes as long as it takes; connect and each read are bounded."""
    return aiohttp.ClientTimeout(total=None, sock_connect=limits.connect_timeout,
                                 sock_read=limits.read_timeout)


def _raise_for_status(
    status: int, headers: Mapping[str, str], label: str, ids: dict[str, int | None]
) -> None:
    if status == 403:
        raise StorageRefused(
            f"the signed URL for {label} has expired or was refused (HTTP 403); "
            "fetch the run again for fresh URLs", server_time=_server_time(headers), **ids)
    if status in (404, 410):
        raise StorageGone(
            f"{label}: storage answered {status}: the run's files are gone (files are kept "
            "7 days after the run); create a once job over those days to export them again",
            server_time=_server_time(headers), **ids)
    verdict = classify(status, kind=RequestKind.STORAGE)
    error = DownloadError(f"{label}: storage answered HTTP {status}", **ids)
    if verdict is Verdict.RETRY:
        raise _Retry(error, parse_retry_after(headers.get("Retry-After")))
    raise error


@dataclass(frozen=True, slots=True)
class PartProbe:
    """What storage said of a part when asked for its first byte."""

    size: int | None              # None: storage did not say
    gone: bool = False            # storage refused it (403, 404, 410): its files expired
    server_time: datetime | None = None   # storage's clock (its Date header)


async def probe_part(
    session: aiohttp.ClientSession, url: str, *, limits: Limits, proxies: Proxies | None = None,
    loopback_http: bool = True,
) -> PartProbe:
    """Ask storage for the part's first byte. No Authorization header.

    A pre-signed URL is signed for GET only (a HEAD fails the signature on S3-like storage), so
    this asks for the first byte (`Range: bytes=0-0`) and reads the total from Content-Range;
    a server that ignores ranges answers 200 with Content-Length, and the body is not read.
    """
    check_part_url(url, "a part URL", loopback_http=loopback_http)
    timeout = _storage_timeout(limits)
    try:
        async with get_following_redirects(session, url, "a part URL", proxies,
                                           loopback_http=loopback_http, timeout=timeout,
                                           headers={"Range": "bytes=0-0"},
                                           auto_decompress=False) as response:
            when = _server_time(response.headers)
            if response.status == 206:
                total = response.headers.get("Content-Range", "").rpartition("/")[2]
                return PartProbe(int(total) if total.isdigit() else None, server_time=when)
            if response.status == 200:
                return PartProbe(response.content_length, server_time=when)
            return PartProbe(None, gone=response.status in (403, 404, 410), server_time=when)
    except transport.TRANSPORT_ERRORS:
        return PartProbe(None)

