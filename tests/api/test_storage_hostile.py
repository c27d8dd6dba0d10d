"""A hostile storage host (issue 16, storage limits): how large, how slow, how many parts.

Each test plays the input over real HTTP on 127.0.0.1: the simulator (its part URLs, with a
crafted body for one part), a storage host of the test's own in front of it that trickles one
part, a raw asyncio server that dribbles bytes, or `FakeStorage` (tests/support/api_fakes.py).

    finding                                   csload now
    a run listing too many parts              that run fails before any of its parts is
                                              downloaded; the others load; exit 3
    a part larger than a cap (announced)      refused from its Content-Length, nothing written,
                                              not retried; its run fails alone; exit 3
    a part larger than a cap (unannounced)    cut when its bytes pass the cap, not retried
    a storage host trickling a part           cut at the end of a [limits] min_rate_window with
                                              fewer than min_download_rate bytes/s; retried,
                                              then its run fails alone; exit 3
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import anyio
import anyio.to_thread
import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from csload.api.client import ExportClient
from csload.api.models import Part
from csload.cli import main
from csload.config import Limits, RetryPolicy, Settings, load_settings
from csload.errors import ConfigError, PartTooLarge, StorageTooSlow
from csload.simulator import ServerHandle, Simulator
from csload.transfer.host import StorageHost
from tests.support.api_fakes import FakeSleep, FakeStorage, dribbling_host
from tests.support.syncref import assert_db_matches, expected_tables, successful_runs

KiB = 1024
WINDOW = 0.5   # [limits] min_rate_window of these tests: a trickle is cut within a second


# -- helpers ----------------------------------------------------------------------------------


def sync_cli(folder: Path, env: dict[str, str], settings_text: str) -> Result:
    """`csload sync --json` in `folder`, with `settings_text` as its csload.toml."""
    settings_file = folder / "csload.toml"
    settings_file.write_text(settings_text)
    settings_file.chmod(0o600)
    previous = Path.cwd()
    os.chdir(folder)
    try:
        return CliRunner().invoke(main, ["sync", "--db", str(folder / "cs.duckdb"), "--json"],
                                  env=env, catch_exceptions=False)
    finally:
        os.chdir(previous)


@pytest.fixture
def env(simulator: Simulator, sim_thread: ServerHandle, monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[dict[str, str]]:
    """The simulator's CONTENTSQUARE_* variables, and no other csload variable set."""
    for name in list(os.environ):
        if name.startswith(("CONTENTSQUARE_", "CSLOAD_")):
            monkeypatch.delenv(name)
    simulator.stats.keep_requests = True
    yield dict(line.split("=", 1) for line in simulator.config.env_lines(sim_thread.base_url))


def failed_runs(result: Result) -> dict[int, str]:
    assert "Traceback" not in result.output, result.output
    report = json.loads(result.stdout)
    return {r["runId"]: str(r["message"]) for r in report["runs"] if r["status"] == "failed"}


def storage_paths(simulator: Simulator) -> list[str]:
    return [seen.path for seen in simulator.stats.seen if seen.kind == "storage"]


def part_of(path: str) -> tuple[int, int, int]:
    """(job, run, part) of a storage path `.../exports/JOB/RUN/part-00001.csv.gz`."""
    job, run, name = path.split("/")[-3:]
    return int(job), int(run), int(name.split(".")[0].removeprefix("part-"))


def assert_others_exact(folder: Path, simulator: Simulator, bad: set[int]) -> None:
    others = [r for r in successful_runs(simulator) if r not in bad]
    assert_db_matches(folder / "cs.duckdb", expected_tables(simulator, others))


def settings_for(storage: FakeStorage | str, **limits: object) -> Settings:
    """Settings whose auth URL is a loopback address (so http storage is allowed); only
    storage is asked for anything."""
    base = storage if isinstance(storage, str) else storage.base_url
    return Settings(client_id="c", client_secret="s", auth_url=base,
                    limits=Limits(**limits),  # type: ignore[arg-type]
                    retry=RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0))


# -- a run listing too many parts -------------------------------------------------------------


@pytest.mark.hostile("a run listing too many parts",
                     "that run fails before any of its parts is downloaded; others load; exit 3")
def test_hostile_run_with_too_many_parts_is_refused_before_any_download(
    simulator: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    runs = successful_runs(simulator)
    counts = {r: len(simulator.part_bodies(simulator.run(r).job_id, r)) for r in runs}
    cap = min(counts.values())
    too_many = {r for r, n in counts.items() if n > cap}
    assert too_many and len(too_many) < len(runs)

    result = sync_cli(tmp_path, env, f"[limits]\nmax_run_parts = {cap}\n")

    assert result.exit_code == 3, result.output
    failed = failed_runs(result)
    assert set(failed) == too_many
    for run_id, message in failed.items():
        job_id = simulator.run(run_id).job_id
        assert message.startswith(f"job {job_id}, run {run_id}: the run lists "
                                  f"{counts[run_id]} parts, more than the {cap}"), message
        assert "raise [limits] max_run_parts" in message
    # Not one byte of those runs was asked for (before issue 16, every part of a run listing
    # 10^6 files was downloaded, then refused by the loader).
    asked = {part_of(path)[1] for path in storage_paths(simulator)}
    assert asked == set(runs) - too_many
    assert_others_exact(tmp_path, simulator, too_many)


# -- a part larger than the cap ---------------------------------------------------------------


@pytest.mark.hostile("a part larger than a cap (announced)",
                     "refused from its Content-Length, not retried; its run fails alone; exit 3")
def test_hostile_part_larger_than_the_cap_fails_its_run_alone(
    simulator: Simulator, env: dict[str, str], tmp_path: Path
) -> None:
    runs = successful_runs(simulator)
    largest = max(len(body) for r in runs
                  for body in simulator.part_bodies(simulator.run(r).job_id, r, compressed=True))
    cap = largest + KiB
    bad = runs[len(runs) // 2]
    job = simulator.run(bad).job_id
    # Incompressible: a gzip answer of this size would not be what storage holds either.
    simulator.faults.part_bodies[(bad, 1)] = os.urandom(cap + 1)

    result = sync_cli(tmp_path, env, f"[limits]\nmax_part_bytes = {cap}\n")

    assert result.exit_code == 3, result.output
    assert failed_runs(result) == {bad: (
        f"job {job}, run {bad}, part 1: storage announced {cap + 1:,} bytes, more than the "
        f"{cap:,} csload accepts for one part; raise [limits] max_part_bytes to download it")}
    # Asked once: a retry would get the same part.
    assert [part_of(p) for p in storage_paths(simulator)].count((job, bad, 1)) == 1
    assert_others_exact(tmp_path, simulator, {bad})


@pytest.mark.hostile("a part larger than a cap (no Content-Length)",
                     "cut when its bytes pass the cap, before writing them; not retried")
async def test_hostile_unannounced_part_is_cut_at_the_cap(
    storage: FakeStorage, sleeper: FakeSleep, tmp_path: Path
) -> None:
    """A host that announces no length (chunked) and sends without end: the download stops
    at the cap, and the host could send little more than that before the client left."""
    cap = 256 * KiB
    sent = [0]

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        block = os.urandom(16 * KiB)
        with contextlib.suppress(ConnectionError):
            for _ in range(64 * KiB):   # 1 GiB, unless the client stops reading
                await response.write(block)
                sent[0] += len(block)
        return response

    url = storage.serve("/bucket/part-00001.csv.gz", endless)
    dest = tmp_path / "part-00001.csv.gz"
    settings = settings_for(storage, max_part_bytes=cap, chunk_size=4 * KiB)
    with anyio.fail_after(60):
        async with ExportClient(settings, sleep=sleeper) as client:
            with pytest.raises(PartTooLarge) as raised:
                await StorageHost(client).download_part(
                    Part(part_id=1, url=url), dest, job_id=7, run_id=8, verify_gzip=False)
    assert str(raised.value) == (
        f"job 7, run 8, part 1: storage sent more than {cap:,} bytes, more than the {cap:,} "
        "csload accepts for one part; raise [limits] max_part_bytes to download it")
    assert storage.hits("/bucket/part-00001.csv.gz") == 1 and sleeper.delays == []
    assert list(tmp_path.iterdir()) == []
    # What the socket buffers held when the client left, not the gigabyte.
    assert sent[0] < cap + 32 * 1024 * KiB, sent[0]


# -- a host that trickles ---------------------------------------------------------------------


HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: 100000\r\n\r\n"


@pytest.mark.parametrize("what", ["the body", "the headers"])
@pytest.mark.hostile("a storage host trickling a part (a few bytes a second)",
                     "cut after a min_rate_window below min_download_rate; retried; then fails")
async def test_hostile_trickling_storage_is_cut_at_the_minimum_rate(
    what: str, sleeper: FakeSleep, tmp_path: Path
) -> None:
    """20 bytes a second, a byte every 0.05 s: the read timeout (between bytes) never trips,
    and before issue 16 one such part held its download slot for ever."""
    head, dribble = (HEADERS, bytes(100_000)) if what == "the body" else (b"", HEADERS * 100)
    dest = tmp_path / "part-00001.csv.gz"
    async with dribbling_host(head, dribble) as (base_url, connections):
        url = f"{base_url}/bucket/part-00001.csv.gz?X-Amz-Signature=s1gn"
        settings = settings_for(base_url, min_download_rate=KiB, min_rate_window=WINDOW)
        # A hang (the code before issue 16) fails here rather than wedging the test run.
        with anyio.fail_after(60):
            async with ExportClient(settings, sleep=sleeper) as client:
                with pytest.raises(StorageTooSlow) as raised:
                    await StorageHost(client).download_part(
                        Part(part_id=1, url=url), dest, job_id=7, run_id=8)
            while "open" in connections:   # the host notices at its next byte
                await asyncio.sleep(0.05)
    text = str(raised.value)
    assert text.startswith("job 7, run 8, part 1: storage sent "), text
    assert (f"bytes in the last {WINDOW:g} s, below [limits] min_download_rate (1024 bytes/s)"
            in text), text
    sent = int(text.split("storage sent ")[1].split(" bytes")[0].replace(",", ""))
    assert sent < KiB * WINDOW
    assert "s1gn" not in text
    assert connections == ["closed by the client"] * 2   # retried once, as the policy says
    assert len(sleeper.delays) == 1
    assert list(tmp_path.iterdir()) == []


async def test_a_slow_but_steady_host_is_not_cut(storage: FakeStorage, sleeper: FakeSleep,
                                                 tmp_path: Path) -> None:
    """Above the floor in every window, however long it takes, is not cut: the floor is not
    a total timeout."""
    body = os.urandom(24 * KiB)

    async def steady(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(body))})
        await response.prepare(request)
        for start in range(0, len(body), KiB):   # 20 KiB/s over 1.2 s: over two windows
            await response.write(body[start:start + KiB])
            await asyncio.sleep(0.05)
        return response

    url = storage.serve("/bucket/part-00001.csv.gz", steady)
    settings = settings_for(storage, min_download_rate=4 * KiB, min_rate_window=WINDOW)
    dest = tmp_path / "part-00001.csv.gz"
    async with ExportClient(settings, sleep=sleeper) as client:
        result = await StorageHost(client).download_part(Part(part_id=1, url=url), dest, job_id=7,
                                            run_id=8, verify_gzip=False)
    assert result.bytes_written == len(body) and dest.read_bytes() == body
    assert sleeper.delays == []


class TricklingStorage:
    """A storage host in front of the simulator's: every request is relayed to it, except
    those for the parts in `trickle`, whose bytes then come 16 at a time every 0.1 s."""

    def __init__(self, upstream: str, trickle: set[tuple[int, int]]) -> None:
        self.upstream, self.trickle = upstream, trickle
        self.base_url = ""
        self.trickled = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        forwarded = {k: v for k, v in request.headers.items() if k.lower() == "range"}
        async with aiohttp.ClientSession() as session, session.get(
                self.upstream + request.path_qs, headers=forwarded) as answer:
            body = await answer.read()
            headers = {k: v for k, v in answer.headers.items()
                       if k.lower() in ("content-type", "content-range", "etag", "date")}
            status = answer.status
        if part_of(request.path)[1:] not in self.trickle or status not in (200, 206):
            return web.Response(status=status, body=body, headers=headers)
        self.trickled += 1
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for start in range(0, len(body), 16):
                await response.write(body[start:start + 16])
                await asyncio.sleep(0.1)
        return response


@contextlib.contextmanager
def trickling_storage(simulator: Simulator, upstream: str, trickle: set[tuple[int, int]]
                      ) -> Iterator[TricklingStorage]:
    """A TricklingStorage served from a thread of its own (the CLI must run in the main
    thread: it watches signals), named by the simulator as its storage host."""
    front = TricklingStorage(upstream, trickle)
    app = web.Application()
    app.router.add_get("/{tail:.*}", front.handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    loop = asyncio.new_event_loop()

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        front.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    simulator.config.storage_base_url = front.base_url
    try:
        yield front
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.mark.hostile("a storage host trickling one part, in a sync",
                     "that run fails after its retries (min_download_rate); others load; exit 3")
def test_hostile_trickling_part_fails_its_run_alone(
    simulator: Simulator, sim_thread: ServerHandle, env: dict[str, str], tmp_path: Path
) -> None:
    runs = successful_runs(simulator)
    bad = runs[len(runs) // 2]
    job = simulator.run(bad).job_id
    with trickling_storage(simulator, sim_thread.base_url, {(bad, 1)}) as front:
        result = sync_cli(tmp_path, env,
                          f"[limits]\nmin_download_rate = 1024\nmin_rate_window = {WINDOW}\n"
                          "[retry]\nmax_attempts = 2\nbase_delay = 0\nmax_delay = 0\n")

    assert result.exit_code == 3, result.output
    failed = failed_runs(result)
    assert list(failed) == [bad], failed
    assert failed[bad].startswith(f"job {job}, run {bad}, part 1: storage sent "), failed
    assert "below [limits] min_download_rate (1024 bytes/s)" in failed[bad]
    assert front.trickled == 2
    assert_others_exact(tmp_path, simulator, {bad})


# -- the settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "message"), [
    ("max_part_bytes", 0, "max_part_bytes must be a whole number, at least 1, got 0"),
    ("max_part_bytes", 1.5, "max_part_bytes must be a whole number, at least 1, got 1.5"),
    ("max_part_bytes", True, "max_part_bytes must be a whole number, at least 1, got True"),
    ("min_download_rate", -1, "min_download_rate must be a number, at least 0, got -1"),
    ("min_download_rate", "1KB", "min_download_rate must be a number, at least 0, got '1KB'"),
    ("min_download_rate", float("nan"), "min_download_rate must be a number, at least 0"),
    ("min_rate_window", 0, "min_rate_window must be a number, at least 0.001, got 0"),
    ("min_rate_window", float("inf"), "min_rate_window must be a number, at least 0.001"),
    ("max_run_parts", 0, "max_run_parts must be a whole number, at least 1, got 0"),
])
def test_download_limits_are_checked(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Limits(**{key: value})  # type: ignore[arg-type]
    assert str(raised.value).startswith(message), raised.value


def test_download_limits_are_read_from_csload_toml(tmp_path: Path) -> None:
    path = tmp_path / "csload.toml"
    path.write_text('client_id = "c"\nclient_secret = "s"\n[limits]\n'
                    "max_part_bytes = 1048576\nmin_download_rate = 0\nmin_rate_window = 30\n"
                    "max_run_parts = 50\n")
    path.chmod(0o600)
    limits = load_settings(config_file=path, environ={}).limits
    assert (limits.max_part_bytes, limits.min_download_rate, limits.min_rate_window,
            limits.max_run_parts) == (1 << 20, 0, 30, 50)
    defaults = Limits()
    assert (defaults.max_part_bytes, defaults.min_download_rate, defaults.min_rate_window) == (
        16 << 30, 1024, 60)
