"""Storage: signed expiring URLs, file retention, Authorization accounting, body framing."""

from __future__ import annotations

import gzip
import hashlib
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from csload.simulator import Simulator
from tests.support.simhttp import assert_s3_error


async def first_part_url(api: Any, simulator: Simulator, name: str = "Daily pageviews",
                         run_index: int = -1) -> str:
    job = simulator.job_named(name)
    run = simulator.runs(job.job_id)[run_index]
    detail = await api.run_detail(job.job_id, run.run_id)
    return str(detail["files"][0]["url"])


async def test_download_is_framed_and_matches_the_cache(api: Any, simulator: Simulator) -> None:
    job = simulator.job_named("Daily pageviews")
    run = simulator.runs(job.job_id)[-1]
    detail = await api.run_detail(job.job_id, run.run_id)
    for part_id, entry in enumerate(detail["files"], start=1):
        reply = await api.download(entry["url"])
        assert reply.status == 200
        assert int(reply.headers["Content-Length"]) == len(reply.body)
        assert reply.body[:2] == b"\x1f\x8b"
        assert "Content-Encoding" not in reply.headers
        assert gzip.decompress(reply.body) == simulator.part_bodies(job.job_id, run.run_id)[
            part_id - 1]
    assert simulator.stats.storage_requests == len(detail["files"])
    assert simulator.stats.storage_with_authorization == 0
    assert simulator.stats.requests["storage"] == len(detail["files"])


async def test_etag_is_the_md5_of_the_body_served(api: Any, simulator: Simulator) -> None:
    """As S3 gives for an object uploaded whole; kept once per stored part, so a body that a
    fault changes must not get the stored part's ETag."""
    job = simulator.job_named("Daily pageviews")
    run = simulator.runs(job.job_id)[-1]
    url = await first_part_url(api, simulator)

    def md5(body: bytes) -> str:
        return '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'

    first, again = await api.download(url), await api.download(url)
    assert first.headers["ETag"] == again.headers["ETag"] == md5(first.body)
    ranged = await api.download(url, {"Range": "bytes=5-"})
    assert ranged.headers["ETag"] == md5(first.body)   # the object's, not the range's
    simulator.faults.corrupt_part = (run.run_id, 1)
    corrupt = await api.download(url)
    assert corrupt.body != first.body and corrupt.headers["ETag"] == md5(corrupt.body)


async def test_storage_is_outside_the_api_limit_and_counters(api: Any,
                                                             simulator: Simulator) -> None:
    url = await first_part_url(api, simulator)
    api_requests = simulator.stats.api_requests
    assert (await api.download(url)).status == 200
    assert simulator.stats.api_requests == api_requests


async def test_authorization_header_is_recorded(api: Any, simulator: Simulator) -> None:
    url = await first_part_url(api, simulator)
    assert (await api.download(url, {"Authorization": f"Bearer {api.token}"})).status == 200
    assert (await api.download(url)).status == 200
    assert simulator.stats.storage_with_authorization == 1
    simulator.variants.storage_rejects_authorization = True
    reply = await api.download(url, {"Authorization": "Bearer x"})
    assert_s3_error(reply, 400, "InvalidArgument")
    assert simulator.stats.storage_with_authorization == 2


async def test_urls_expire_and_a_fresh_detail_gives_fresh_urls(api: Any,
                                                               simulator: Simulator) -> None:
    url = await first_part_url(api, simulator)
    simulator.advance(simulator.config.url_lifetime - 1)
    assert (await api.download(url)).status == 200
    simulator.advance(1)
    assert_s3_error(await api.download(url), 403, "AccessDenied")
    await api.login()
    fresh = await first_part_url(api, simulator)
    assert fresh != url
    assert (await api.download(fresh)).status == 200


async def test_url_lifetime_is_live(api: Any, simulator: Simulator) -> None:
    simulator.config.url_lifetime = 5
    url = await first_part_url(api, simulator)
    simulator.advance(5)
    assert_s3_error(await api.download(url), 403, "AccessDenied")


@pytest.mark.parametrize("mangle", [
    lambda u: u.replace("Signature=", "Signature=0"),
    lambda u: u.split("?")[0],
    lambda u: u.replace("Expires=", "Expires=9"),
    lambda u: u.replace("part-00001", "part-00002"),
])
async def test_forged_urls_are_denied(api: Any, simulator: Simulator, mangle: Any) -> None:
    url = await first_part_url(api, simulator)
    assert_s3_error(await api.download(mangle(url)), 403, "AccessDenied")


async def test_unknown_part_is_404(api: Any, simulator: Simulator) -> None:
    url = await first_part_url(api, simulator)
    parts = urlsplit(url)
    path = parts.path.replace("part-00001", "part-00099")
    expires = int(dict(q.split("=") for q in parts.query.split("&"))["Expires"])
    forged = simulator.signer.sign(f"{parts.scheme}://{parts.netloc}", path, expires)
    assert_s3_error(await api.download(forged), 404, "NoSuchKey")


@pytest.mark.parametrize(("status", "code"), [(403, "AccessDenied"), (404, "NoSuchKey")])
async def test_files_are_kept_seven_days(api: Any, simulator: Simulator, status: int,
                                         code: str) -> None:
    simulator.variants.expired_files_status = status
    job = simulator.job_named("Daily pageviews")
    oldest = simulator.runs(job.job_id)[0]
    newest = simulator.runs(job.job_id)[-1]
    keep_until = oldest.files_expire_at(7)
    assert keep_until == oldest.finished_at + timedelta(days=7)
    simulator.clock.advance_to(keep_until - timedelta(seconds=1))
    await api.login()
    detail = await api.run_detail(job.job_id, oldest.run_id)
    assert (await api.download(detail["files"][0]["url"])).status == 200
    simulator.advance(1)
    # The 7 days are up: the files are gone, even behind a freshly signed URL.
    detail = await api.run_detail(job.job_id, oldest.run_id)
    assert detail["state"] == "SUCCESS" and detail["files"]
    assert_s3_error(await api.download(detail["files"][0]["url"]), status, code)
    newer = await api.run_detail(job.job_id, newest.run_id)
    assert (await api.download(newer["files"][0]["url"])).status == 200


async def test_uncompressed_variant(api: Any, simulator: Simulator) -> None:
    simulator.variants.uncompressed_parts = True
    job = simulator.job_named("Daily sessions")
    run = simulator.runs(job.job_id)[-1]
    detail = await api.run_detail(job.job_id, run.run_id)
    reply = await api.download(detail["files"][0]["url"])
    assert reply.status == 200 and reply.body[:1] == b"{"
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    assert reply.body == simulator.part_bodies(job.job_id, run.run_id)[0]


async def test_storage_paths_outside_the_layout(api: Any) -> None:
    reply = await api.download(api.base_url + "/storage/whatever")
    assert_s3_error(reply, 403, "AccessDenied")


async def test_byte_ranges_are_served_as_s3_serves_them(api: Any, simulator: Simulator) -> None:
    url = await first_part_url(api, simulator)
    whole = (await api.download(url)).body
    size = len(whole)
    for header, first, last in [(f"bytes=10-{size - 1}", 10, size - 1),
                                ("bytes=5-", 5, size - 1),
                                ("bytes=-7", size - 7, size - 1),
                                (f"bytes=3-{size + 100}", 3, size - 1)]:
        reply = await api.download(url, {"Range": header})
        assert reply.status == 206, header
        assert reply.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert reply.body == whole[first: last + 1]
    assert simulator.stats.storage_range_requests == 4
    for header in (f"bytes={size}-", "bytes=9-3", "bytes=1-2,5-6", "items=1-2"):
        assert_s3_error(await api.download(url, {"Range": header}), 416, "InvalidRange")
    simulator.variants.storage_ignores_ranges = True
    reply = await api.download(url, {"Range": "bytes=10-20"})
    assert reply.status == 200 and reply.body == whole
