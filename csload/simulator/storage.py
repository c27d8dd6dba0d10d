"""The storage side: signed, expiring part URLs, and the download handler with its faults.

A part URL is `{base}/storage/{project}/exports/{job}/{run}/part-00001.csv.gz` with `Expires`
(Unix seconds) and `Signature` (HMAC-SHA256 of the path and expiry) in the query string, like a
pre-signed S3 URL. Storage answers as S3 does: 403 `AccessDenied` for an expired or forged URL
or once the run's files are past retention (or 404 `NoSuchKey` with that variant), 404
`NoSuchKey` for an unknown part, 503 `SlowDown` with Retry-After when throttling.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from aiohttp import web

if TYPE_CHECKING:
    from csload.simulator.core import Simulator

STORAGE_PREFIX = "/storage"
# Bytes per write of an unpaced body. 1 MiB rather than 64 KiB: the simulator shares the
# benchmark's cores with csload, and its per-write cost (0.4 CPU-s per 226 MB at 64 KiB) is
# not something a real storage host puts on the client's machine.
_CHUNK = 1024 * 1024


class UrlSigner:
    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def signature(self, path: str, expires: int) -> str:
        message = f"GET\n{path}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, base_url: str, path: str, expires: int) -> str:
        return f"{base_url}{path}?Expires={expires}&Signature={self.signature(path, expires)}"

    def verify(self, path: str, expires: str, signature: str) -> bool:
        if not expires.isdigit():
            return False
        return hmac.compare_digest(self.signature(path, int(expires)), signature)


def part_path(project_id: int, job_id: int, run_id: int, part_id: int, fmt: str) -> str:
    ext = "csv" if fmt == "CSV" else "jsonl"
    return f"{STORAGE_PREFIX}/{project_id}/exports/{job_id}/{run_id}/part-{part_id:05d}.{ext}.gz"


def s3_error(status: int, code: str, message: str,
             headers: dict[str, str] | None = None) -> web.Response:
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>")
    return web.Response(status=status, text=body, content_type="application/xml",
                        headers=headers)


def _parse_ids(request: web.Request) -> tuple[int, int, int, int] | None:
    """(project, job, run, part) from the path, or None if it is not a part path."""
    info = request.match_info
    stem = info.get("filename", "").split(".", 1)[0]
    numbers = (info.get("project", ""), info.get("job_id", ""), info.get("run_id", ""),
               stem.removeprefix("part-"))
    if not stem.startswith("part-") or not all(n.isdigit() for n in numbers):
        return None
    project, job_id, run_id, part_id = (int(n) for n in numbers)
    return project, job_id, run_id, part_id


def _check_access(sim: Simulator, request: web.Request, now: datetime) -> web.Response | None:
    expires = request.query.get("Expires", "")
    signature = request.query.get("Signature", "")
    if not sim.signer.verify(request.path, expires, signature):
        return s3_error(403, "AccessDenied",
                        "The request signature we calculated does not match the signature "
                        "you provided.")
    if now.timestamp() >= int(expires):
        return s3_error(403, "AccessDenied", "Request has expired")
    return None


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a `bytes=a-b` / `bytes=a-` / `bytes=-n` Range within `size`, or
    None when it is not satisfiable (S3 answers 416). One range only, as S3 does."""
    unit, _, spec = header.partition("=")
    start, dash, end = spec.strip().partition("-")
    if unit.strip() != "bytes" or not dash or "," in spec:
        return None
    try:
        if not start:
            first, last = max(0, size - int(end)), size - 1
        else:
            first, last = int(start), min(size - 1, int(end)) if end else size - 1
    except ValueError:
        return None
    return (first, last) if 0 <= first <= last else None


class Serving:
    """The downloads storage is serving, each with how it stops counting as in flight."""

    def __init__(self) -> None:
        # By id of the request: requests are not hashable.
        self._downloads: dict[int, tuple[web.Request, Callable[[], None]]] = {}

    def add(self, request: web.Request, leave: Callable[[], None]) -> None:
        self._downloads[id(request)] = (request, leave)

    def remove(self, request: web.Request) -> None:
        self._downloads.pop(id(request), None)

    def forget_hung_up(self) -> None:
        """Downloads whose client closed the connection no longer count as in flight (a paced
        handler only notices at its next write: a client that stops reading early, and then
        starts another download at once, was counted twice)."""
        for request, leave in list(self._downloads.values()):
            if request.transport is None or request.transport.is_closing():
                leave()


async def serve_part(sim: Simulator, request: web.Request) -> web.StreamResponse:
    sim.stats.add("storage_requests")
    sim.serving.forget_hung_up()
    sim.stats.storage_enter()
    left = False

    def leave() -> None:
        nonlocal left
        if not left:
            left = True
            sim.serving.remove(request)
            sim.stats.storage_leave()

    sim.serving.add(request, leave)
    try:
        response = await _serve_part(sim, request, leave)
    finally:
        leave()
    if not response.prepared:
        # Storage's clock is the simulated one: a client comparing a 403 with the files'
        # expiration date must see the simulated time, not the machine's.
        response.headers["Date"] = format_datetime(sim.clock.now(), usegmt=True)
    return response


async def _serve_part(sim: Simulator, request: web.Request,
                      leave: Callable[[], None]) -> web.StreamResponse:
    if "Authorization" in request.headers:
        sim.stats.add("storage_with_authorization")
        if sim.config.variants.storage_rejects_authorization:
            return s3_error(400, "InvalidArgument", "Only one auth mechanism allowed; only the "
                            "Signature query string parameter or the Authorization header "
                            "should be specified")
    faults = sim.faults
    if faults.latency > 0:
        sim.stats.add("delayed_responses")
        await asyncio.sleep(faults.latency)
    redirect = faults.storage_redirect_to
    if redirect and "redirected" not in request.query:
        sim.stats.count_fault("redirect")
        return web.Response(status=307, headers={
            "Location": f"{redirect.rstrip('/')}{request.path_qs}&redirected=1"})
    now = sim.clock.now()
    denied = _check_access(sim, request, now)
    if denied is not None:
        return denied
    ids = _parse_ids(request)
    if ids is None or ids[0] != sim.config.project_id:
        return s3_error(404, "NoSuchKey", "The specified key does not exist.")
    _, job_id, run_id, part_id = ids
    run = sim.state.run(run_id)
    job = sim.state.job(job_id)
    if run is None or job is None or run.job_id != job_id or not run.has_files(now):
        return s3_error(404, "NoSuchKey", "The specified key does not exist.")
    if now >= run.files_expire_at(sim.config.file_retention_days):
        if sim.config.variants.expired_files_status == 404:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        return s3_error(403, "AccessDenied", "Access Denied")
    count = await sim.part_count_async(run_id)
    if not 1 <= part_id <= count:
        return s3_error(404, "NoSuchKey", "The specified key does not exist.")

    fault = faults.take_storage_fault(run_id, part_id)
    if fault == "denied":
        sim.stats.count_fault("denied")
        return s3_error(403, "AccessDenied", "Request has expired")
    if fault == "gone":
        sim.stats.count_fault("gone")
        return s3_error(404, "NoSuchKey", "The specified key does not exist.")
    if fault == "slowdown":
        sim.stats.count_fault("slowdown")
        return s3_error(503, "SlowDown", "Please reduce your request rate.",
                        {"Retry-After": str(faults.retry_after)})
    compressed = not sim.config.variants.uncompressed_parts
    body = await sim.part_body_async(run_id, part_id, compressed=compressed)
    corrupt = faults.corrupted(run_id, part_id, body)
    if corrupt is not None:
        sim.stats.count_fault("corrupt")
        body = corrupt
    replaced = faults.replaced(run_id, part_id)
    if replaced is not None:
        sim.stats.count_fault("replaced")
        body = replaced
    if fault == "truncate":
        sim.stats.count_fault("truncate")
        body = body[: max(1, int(len(body) * faults.cut_fraction))]
    if fault is None and request.headers.get("Range") == "bytes=0-0":
        # Size probes (csload sync --dry-run) ask for the first byte, as S3 allows on a GET
        # URL; not counted as data sent.
        return web.Response(status=206, body=body[:1], headers={
            "Content-Range": f"bytes 0-0/{len(body)}",
            "Content-Type": "application/octet-stream",
        })
    etag = sim.part_etag(body)
    status, headers = 200, {}
    wanted = request.headers.get("Range")
    if wanted is not None and not sim.config.variants.storage_ignores_ranges:
        # Any other byte range, as S3 serves it (csload doctor reads a part's first bytes;
        # other clients may fetch any range).
        span = _byte_range(wanted, len(body))
        if span is None:
            return s3_error(416, "InvalidRange", "The requested range is not satisfiable",
                            {"Content-Range": f"bytes */{len(body)}"})
        first, last = span
        sim.stats.add("storage_range_requests")
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{len(body)}"
        body = body[first: last + 1]
    send = len(body)
    if fault == "cut":
        sim.stats.count_fault("cut")
        send = max(0, min(len(body) - 1, int(len(body) * faults.cut_fraction)))

    response = web.StreamResponse(status=status, headers={
        "Content-Type": "application/gzip" if compressed else "application/octet-stream",
        "ETag": etag, **headers,
    })
    response.content_length = len(body)
    if send == 0:
        leave()
    await response.prepare(request)
    bandwidth = faults.bandwidth
    # Pace in twentieths of a second so a cap shows as a steady trickle, not bursts.
    chunk = _CHUNK if not bandwidth else max(1, min(_CHUNK, bandwidth // 20))
    sent = 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    view = memoryview(body)   # pieces without copies
    while sent < send:
        piece = view[sent: min(send, sent + chunk)]
        if sent + len(piece) >= send:
            # The client may have everything once this is written: stop counting first.
            leave()
        try:
            await response.write(piece)
        except ConnectionResetError:
            # The client stopped reading (a sync cut short, a client that read what it
            # needed): the response ends here.
            return response
        sent += len(piece)
        sim.stats.add("storage_bytes_sent", len(piece))
        if bandwidth:
            sim.stats.add("paced_chunks")
            # On a schedule (never ahead of `bandwidth` bytes/s since the first byte), not a
            # fixed sleep after each write: that added the write's own time to every chunk,
            # so a cap of 5 MB/s delivered ~3.5 to a client busy elsewhere (found by
            # benchmarks/bench_slow_network.py).
            ahead = started + sent / bandwidth - loop.time()
            if ahead > 0:
                await asyncio.sleep(ahead)
    if fault == "cut":
        # Headers promised the whole body: closing now is what a dropped connection looks like.
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response
