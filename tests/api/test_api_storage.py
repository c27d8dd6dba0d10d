"""Part downloads: streaming, verification, retries, cleanup (csload.transfer.storage).

The storage host is a tiny aiohttp server on 127.0.0.1 (`storage` fixture), so cut connections
and short bodies are real.
"""

from __future__ import annotations

import gzip
import socket
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from csload.api.client import ExportClient
from csload.api.models import Part
from csload.config import Settings
from csload.errors import (
    DownloadError,
    IncompleteDownload,
    InsecureUrlError,
    PartFilesGone,
    PartUrlExpired,
)
from csload.transfer import gzipcheck
from csload.transfer.gzipcheck import CorruptStream, GzipVerifier
from csload.transfer.host import StorageHost
from tests.support.api_fakes import FakeSleep, FakeStorage


@pytest.fixture
def api_settings(api_settings: Settings) -> Settings:
    """The shared settings in simulator mode (a loopback auth URL, never asked for a token):
    only then may parts come from the plain-http storage on 127.0.0.1 (the https rule)."""
    return replace(api_settings, auth_url="http://127.0.0.1:9")


ROWS = b"".join(b'{"session_id": %d, "city": "Paris"}\n' % i for i in range(3000))


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def feed_all(data: bytes, step: int) -> bool:
    verifier = GzipVerifier()
    for i in range(0, len(data), step):
        verifier.feed(data[i : i + step])
    return verifier.finish()


# -- the verifier, pure ------------------------------------------------------------------------


@pytest.fixture(params=["isal", "zlib"])
def inflater(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each verifier test runs with ISA-L's inflate (the default) and with zlib's (the fallback
    where no isal wheel exists): the two differ in how much output one call returns."""
    if request.param == "zlib":
        monkeypatch.setattr(gzipcheck, "inflate_lib", zlib)
        monkeypatch.setattr(gzipcheck, "InflateError", zlib.error)
    else:
        assert gzipcheck.inflate_lib.__name__.startswith("isal")
    return str(request.param)


@pytest.mark.parametrize("step", [1, 2, 7, 4096, 1 << 30])
def test_complete_gzip_passes_in_any_chunking(step: int, inflater: str) -> None:
    assert feed_all(gz(ROWS), step) is True


@pytest.mark.parametrize("step", [1, 3, 4096])
def test_uncompressed_body_is_accepted(step: int, inflater: str) -> None:
    assert feed_all(ROWS, step) is False


@pytest.mark.parametrize("data", [b"", b"\x1f", b"x"])
def test_tiny_bodies_are_not_gzip(data: bytes, inflater: str) -> None:
    assert feed_all(data, 1) is False


@pytest.mark.parametrize("keep", [2, 10, 100, 0.5, -8, -1])
def test_truncated_gzip_is_detected(keep: float, inflater: str) -> None:
    data = gz(ROWS)
    end = int(len(data) * keep) if isinstance(keep, float) else keep
    with pytest.raises(CorruptStream, match="ends early"):
        feed_all(data[:end], 1000)


def test_corrupt_gzip_is_detected(inflater: str) -> None:
    data = bytearray(gz(ROWS))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(CorruptStream):
        feed_all(bytes(data), 512)


def test_crc_mismatch_is_detected(inflater: str) -> None:
    data = bytearray(gz(ROWS))
    data[-5] ^= 0x01  # inside the CRC32 of the trailer
    with pytest.raises(CorruptStream, match="corrupt"):
        feed_all(bytes(data), 512)


@pytest.mark.parametrize("step", [1, 5, 4096])
def test_concatenated_members_and_zero_padding_pass(step: int, inflater: str) -> None:
    data = gz(ROWS[:1000]) + gz(ROWS[1000:]) + b"\0" * 16
    assert feed_all(data, step) is True
    # ...and the standard library agrees.
    assert gzip.decompress(data) == ROWS


def test_trailing_garbage_after_gzip_is_corrupt(inflater: str) -> None:
    with pytest.raises(CorruptStream, match="not gzip"):
        feed_all(gz(ROWS) + b"garbage", 4096)


def test_truncated_second_member_is_detected(inflater: str) -> None:
    second = gz(ROWS)
    with pytest.raises(CorruptStream, match="ends early"):
        feed_all(gz(ROWS) + second[: len(second) // 2], 4096)


def test_highly_compressible_body_is_verified_in_bounded_steps(inflater: str) -> None:
    # 64 MiB of zeros compress to ~64 KiB: the verifier must not inflate it in one piece.
    compressor = zlib.compressobj(wbits=31)
    data = b"".join(compressor.compress(b"\0" * (1 << 20)) for _ in range(64))
    data += compressor.flush()
    assert feed_all(data, 1 << 20) is True


# -- downloads over HTTP -----------------------------------------------------------------------


def part(url: str, part_id: int = 3) -> Part:
    return Part(part_id=part_id, url=url)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_download_streams_to_dest(
    client: ExportClient, storage: FakeStorage, tmp_path: Path
) -> None:
    data = gz(ROWS)
    url = storage.serve("/p/1.gz", storage.body(data))
    dest = tmp_path / "run" / "part-1.jsonl.gz"
    result = await StorageHost(client).download_part(part(url), dest, job_id=1, run_id=2)
    assert result.bytes_written == len(data)
    assert result.gzip is True
    assert result.path == dest
    assert dest.read_bytes() == data
    assert leftovers(dest.parent) == ["part-1.jsonl.gz"]


async def test_download_of_an_uncompressed_part(
    client: ExportClient, storage: FakeStorage, tmp_path: Path
) -> None:
    url = storage.serve("/p/plain.csv", storage.body(b"a,b\n1,2\n"))
    result = await StorageHost(client).download_part(
        part(url), tmp_path / "x.csv", job_id=1, run_id=2)
    assert (result.gzip, result.bytes_written) == (False, 8)


async def test_gzip_content_encoding_is_not_undone(
    client: ExportClient, storage: FakeStorage, tmp_path: Path
) -> None:
    data = gz(ROWS)
    url = storage.serve("/p/enc", storage.body(data, headers={"Content-Encoding": "gzip"}))
    result = await StorageHost(client).download_part(
        part(url), tmp_path / "x.gz", job_id=1, run_id=2)
    assert result.gzip is True
    assert (tmp_path / "x.gz").read_bytes() == data


async def test_no_authorization_or_cookie_reaches_storage(
    client: ExportClient, storage: FakeStorage, tmp_path: Path
) -> None:
    url = storage.serve("/p/h", storage.body(gz(b"x")))
    await StorageHost(client).download_part(part(url), tmp_path / "h.gz", job_id=1, run_id=2)
    (_, headers), = storage.requests
    assert "Authorization" not in headers
    assert "Cookie" not in headers


async def test_403_is_an_expired_url_not_retried(
    client: ExportClient, storage: FakeStorage, tmp_path: Path, sleeper: FakeSleep
) -> None:
    url = storage.serve("/p/old", storage.status(403, text="<Code>AccessDenied</Code>"))
    dest = tmp_path / "old.gz"
    with pytest.raises(PartUrlExpired) as info:
        await StorageHost(client).download_part(part(url, 7), dest, job_id=11, run_id=22)
    message = str(info.value)
    assert "job 11, run 22, part 7" in message
    assert "fetch the run again" in message
    assert "s1gn4tur3" not in message
    assert (info.value.job_id, info.value.run_id, info.value.part_id) == (11, 22, 7)
    assert storage.hits("/p/old") == 1
    assert sleeper.delays == []
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("code", [404, 410])
async def test_404_means_the_files_are_gone(
    client: ExportClient, storage: FakeStorage, tmp_path: Path, code: int
) -> None:
    url = storage.serve("/p/gone", storage.status(code))
    with pytest.raises(PartFilesGone, match=r"gone.*7 days") as info:
        await StorageHost(client).download_part(part(url), tmp_path / "g.gz", job_id=1, run_id=2)
    assert not isinstance(info.value, PartUrlExpired)
    assert storage.hits("/p/gone") == 1


async def test_slowdown_is_retried_honouring_retry_after(
    client: ExportClient, storage: FakeStorage, tmp_path: Path, sleeper: FakeSleep
) -> None:
    data = gz(ROWS)
    url = storage.serve(
        "/p/slow",
        storage.status(503, headers={"Retry-After": "3"}, text="<Code>SlowDown</Code>"),
        storage.status(500),
        storage.body(data),
    )
    result = await StorageHost(client).download_part(
        part(url), tmp_path / "s.gz", job_id=1, run_id=2)
    assert result.bytes_written == len(data)
    assert sleeper.delays[0] == 3.0
    assert 0.0 <= sleeper.delays[1] <= 1.0  # second attempt: full jitter up to 2 * 0.5 s
    assert storage.hits("/p/slow") == 3


async def test_a_cut_connection_is_retried_then_succeeds(
    client: ExportClient, storage: FakeStorage, tmp_path: Path, sleeper: FakeSleep
) -> None:
    data = gz(ROWS)
    url = storage.serve("/p/cut", storage.cut(data[:1000], announced=len(data)),
                        storage.body(data))
    dest = tmp_path / "c.gz"
    result = await StorageHost(client).download_part(part(url), dest, job_id=1, run_id=2)
    assert result.bytes_written == len(data)
    assert dest.read_bytes() == data
    assert len(sleeper.delays) == 1
    assert leftovers(tmp_path) == ["c.gz"]


async def test_a_short_body_every_time_is_an_incomplete_download(
    client: ExportClient, storage: FakeStorage, tmp_path: Path, sleeper: FakeSleep
) -> None:
    data = gz(ROWS)
    url = storage.serve("/p/short", storage.cut(data[:1000], announced=len(data)))
    dest = tmp_path / "short.gz"
    with pytest.raises(IncompleteDownload, match="job 1, run 2, part 3") as info:
        await StorageHost(client).download_part(part(url), dest, job_id=1, run_id=2)
    assert "s1gn4tur3" not in str(info.value)
    assert storage.hits("/p/short") == 4  # max_attempts
    assert len(sleeper.delays) == 3
    assert leftovers(tmp_path) == []


async def test_truncated_gzip_with_matching_length_is_an_incomplete_download(
    client: ExportClient, storage: FakeStorage, tmp_path: Path
) -> None:
    data = gz(ROWS)
    url = storage.serve("/p/trunc", storage.body(data[: len(data) // 2]))
    with pytest.raises(IncompleteDownload, match="ends early"):
        await StorageHost(client).download_part(part(url), tmp_path / "t.gz", job_id=1, run_id=2)
    assert leftovers(tmp_path) == []


async def test_without_gzip_verification_only_the_length_is_checked(
    client: ExportClient, storage: FakeStorage, tmp_path: Path, sleeper: FakeSleep
) -> None:
    # What the sync pipeline asks for: DuckDB's gzip reader checks the stream at load time.
    data = gz(ROWS)
    half = data[: len(data) // 2]
    url = storage.serve("/p/trunc-unverified", storage.body(half))
    dest = tmp_path / "t.gz"
    result = await StorageHost(client).download_part(part(url), dest, job_id=1, run_id=2,
                                        verify_gzip=False)
    assert result.gzip and dest.read_bytes() == half
    short = storage.serve("/p/cut-unverified", FakeStorage.cut(half, announced=len(data)))
    with pytest.raises(IncompleteDownload, match="connection broke"):
        await StorageHost(client).download_part(part(short), tmp_path / "s.gz", job_id=1, run_id=2,
                                   verify_gzip=False, attempts=2)
    assert storage.hits("/p/cut-unverified") == 2  # `attempts` replaces max_attempts
    assert leftovers(tmp_path) == ["t.gz"]


@pytest.mark.parametrize(("body", "problem"), [
    (gz(ROWS), None),
    (ROWS, None),  # not gzip: nothing to check
    (gz(ROWS)[:-4], "ends early"),
    (gz(ROWS) + b"junk", "not gzip"),
])
def test_gzip_problem_checks_a_file(tmp_path: Path, body: bytes, problem: str | None) -> None:
    path = tmp_path / "p.gz"
    path.write_bytes(body)
    found = gzipcheck.gzip_problem(path)
    assert found is None if problem is None else problem in (found or "")


async def test_an_existing_dest_survives_a_failed_download(
    client: ExportClient, storage: FakeStorage, tmp_path: Path
) -> None:
    dest = tmp_path / "keep.gz"
    dest.write_bytes(b"previous")
    url = storage.serve("/p/bad", storage.body(gz(ROWS)[:100]))
    with pytest.raises(IncompleteDownload):
        await StorageHost(client).download_part(part(url), dest, job_id=1, run_id=2)
    assert dest.read_bytes() == b"previous"
    assert leftovers(tmp_path) == ["keep.gz"]


async def test_connection_refused_is_retried_then_reported_without_the_signature(
    client: ExportClient, tmp_path: Path, sleeper: FakeSleep
) -> None:
    # A bound socket that does not listen: connections to its port are refused.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        url = f"http://127.0.0.1:{port}/p/1.gz?X-Amz-Signature=s1gn4tur3deadbeef"
        with pytest.raises(DownloadError) as info:
            await StorageHost(client).download_part(
                part(url), tmp_path / "r.gz", job_id=1, run_id=2)
    assert "cannot connect" in str(info.value)
    assert "s1gn4tur3" not in str(info.value)
    assert "s1gn4tur3" not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert len(sleeper.delays) == 3


async def test_plain_http_to_a_remote_host_is_refused(
    client: ExportClient, tmp_path: Path
) -> None:
    url = "http://storage.example.test/p/1.gz?X-Amz-Signature=s1gn4tur3deadbeef"
    with pytest.raises(InsecureUrlError) as info:
        await StorageHost(client).download_part(part(url), tmp_path / "i.gz", job_id=1, run_id=2)
    assert "s1gn4tur3" not in str(info.value)
