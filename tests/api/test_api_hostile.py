"""A hostile network (issue 16, part B): what an API server, a storage host or a settings file
can send to csload, and what csload does with it.

Each test plays the attack as it was found, over real HTTP on 127.0.0.1: a hostile API server
of our own (`HostileApi`: a token endpoint naming itself as the API, and whatever answer a test
sets), a raw asyncio server for the slow-loris, the simulator (over TLS under a made-up host
name, through `proxy.ForwardingProxy`, when the auth URL must not be a loopback address).

    finding                                   csload now
    gzip-bomb API answer                      refused at max_response_bytes (after inflating),
                                              memory bounded by it; one line, exit 1
    slow-loris API (a byte now and then)      each attempt ends at api_timeout
    a list page longer than `limit`           ApiError naming the endpoint
    http to loopback outside simulator mode   refused: API endpoint, part URLs, redirects
    [lake] endpoint_url over plain http       refused (loopback only in simulator mode)
    a bad port in a part URL                  the run fails in one line without the URL; exit 3
    repr() of secret holders                  redacted
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import json
import os
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import anyio
import anyio.to_thread
import pytest
from aiohttp import web
from click.testing import CliRunner

from csload.api.answer import Answer
from csload.api.auth import Token
from csload.api.client import ExportClient
from csload.api.models import Part
from csload.cli import main
from csload.config import Limits, RetryPolicy, Settings, load_settings, read_lake_options
from csload.errors import ApiError, ApiUnavailable, InsecureUrlError
from csload.simulator import ServerHandle, Simulator
from csload.target import Target
from csload.transfer.host import StorageHost
from tests.support.api_fakes import FakeSleep, dribbling_host
from tests.support.proxy import ForwardingProxy, serve_tls, tls_pair

SECRET = "hostile-test-secret-4d3c2b1a"
ACCESS_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJob3N0aWxlIn0.c2lnbmF0dXJlLWhvc3RpbGU"
MiB = 1 << 20

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def gzip_bomb(inflated: int) -> bytes:
    """A gzip stream of `inflated` zero bytes (about 1/1000 of that compressed), one member."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MiB)
    return b"".join([*(packer.compress(block) for _ in range(inflated // MiB)),
                     packer.flush()])


BOMB_SIZE = 256 * MiB
_bombs: dict[int, bytes] = {}


def bomb() -> bytes:
    if BOMB_SIZE not in _bombs:
        _bombs[BOMB_SIZE] = gzip_bomb(BOMB_SIZE)
    return _bombs[BOMB_SIZE]


class HostileApi:
    """An API on 127.0.0.1: the token endpoint names this server as the API endpoint; every
    GET under /v1 is answered by `answer` (a test sets it)."""

    def __init__(self) -> None:
        self.base_url = ""
        self.answer: Handler = self.empty_list
        self.requests: list[str] = []

    @staticmethod
    async def empty_list(request: web.Request) -> web.StreamResponse:
        return web.json_response({"success": True, "payload": []})

    async def token(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"POST {request.path}")
        return web.json_response({"access_token": ACCESS_TOKEN, "expires_in": 3600,
                                  "endpoint": self.base_url})

    async def api(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"GET {request.path}")
        return await self.answer(request)

    def settings(self, **limits: object) -> Settings:
        return Settings(client_id="hostile", client_secret=SECRET, auth_url=self.base_url,
                        limits=Limits(**limits),  # type: ignore[arg-type]
                        retry=RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0))


@pytest.fixture
async def hostile() -> AsyncIterator[HostileApi]:
    api = HostileApi()
    app = web.Application()
    app.router.add_post("/v1/oauth/token", api.token)
    app.router.add_get("/v1/{tail:.*}", api.api)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    api.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield api
    finally:
        await runner.cleanup()


async def serve_bomb(request: web.Request) -> web.StreamResponse:
    return web.Response(body=bomb(), headers={"Content-Type": "application/json",
                                              "Content-Encoding": "gzip"})


# -- a gzip bomb ------------------------------------------------------------------------------


@pytest.mark.hostile("an API answer of a few hundred KB gzip that inflates to 256 MiB",
                     "refused at `max_response_bytes`, counted while inflating: one line, exit 1")
async def test_hostile_gzip_bomb_api_answer_is_refused_at_the_cap(
    hostile: HostileApi, sleeper: FakeSleep
) -> None:
    hostile.answer = serve_bomb
    async with ExportClient(hostile.settings(), sleep=sleeper) as client:
        with pytest.raises(ApiError) as raised:
            await client.list_jobs()
    text = str(raised.value)
    assert "GET /v1/exports" in text and "larger than 67,108,864 bytes" in text, text
    # Not retried: the same answer would come back.
    assert hostile.requests.count("GET /v1/exports") == 1


def _peak_rss_of_sync(env: dict[str, str], folder: Path) -> tuple[int, str, int]:
    """(exit code, stderr, peak RSS in KiB) of `csload sync` run in `folder`."""
    child = subprocess.Popen(
        [sys.executable, "-m", "csload", "sync", "--db", str(folder / "cs.duckdb")],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    stderr = child.stderr.read().decode()
    # wait4: this child's own peak, whatever other children the test run had.
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, stderr, usage.ru_maxrss


@pytest.mark.hostile("the same gzip bomb during a sync, memory measured",
                     "memory stays bounded by the cap")
async def test_hostile_gzip_bomb_keeps_the_memory_of_a_sync_bounded(
    hostile: HostileApi, tmp_path: Path
) -> None:
    cap = 4 * MiB
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTENTSQUARE_", "CSLOAD_"))}
    env.update(CONTENTSQUARE_CLIENT_ID="hostile", CONTENTSQUARE_CLIENT_SECRET=SECRET,
               CONTENTSQUARE_AUTH_URL=hostile.base_url)
    runs = {}
    for name in ("plain", "bomb"):
        folder = tmp_path / name
        folder.mkdir()
        settings_file = folder / "csload.toml"
        settings_file.write_text(f"[limits]\nmax_response_bytes = {cap}\n")
        settings_file.chmod(0o600)
        hostile.answer = serve_bomb if name == "bomb" else HostileApi.empty_list
        bomb()   # made before the child runs, not while it waits for its answer
        runs[name] = await anyio.to_thread.run_sync(_peak_rss_of_sync, env, folder)

    code, stderr, peak = runs["bomb"]
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert "larger than 4,194,304 bytes" in stderr
    assert SECRET not in stderr and ACCESS_TOKEN not in stderr
    # The answer inflates to 256 MiB: read whole (as before issue 16), the peak grew by that
    # much at least. Bounded, it grows by the cap and a little.
    growth_mib = (peak - runs["plain"][2]) / 1024
    assert growth_mib < cap / MiB + 40, (growth_mib, runs["plain"][2])


# -- a slow-loris API -------------------------------------------------------------------------


@pytest.mark.hostile("an API server sending one byte now and then, within the read timeout, "
                     "forever",
                     "each attempt ends at `api_timeout` (total per call)")
async def test_hostile_slow_loris_api_is_cut_at_the_total_timeout(sleeper: FakeSleep) -> None:
    """A server that answers one byte at a time, well within the read timeout, forever."""
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000\r\n\r\n")
    async with dribbling_host(head, itertools.repeat(ord(" ")), interval=0.2) as (
            base_url, connections):
        settings = Settings(client_id="c", client_secret=SECRET, auth_url=base_url,
                            limits=Limits(api_timeout=1.0, read_timeout=60.0),
                            retry=RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0))
        # A hang (the code before issue 16) fails here rather than wedging the test run.
        with anyio.fail_after(60):
            async with ExportClient(settings, sleep=sleeper) as client:
                with pytest.raises(ApiUnavailable) as raised:
                    await client.list_jobs()
            # Let the server notice the connections went away (at its next byte).
            while "open" in connections:
                await asyncio.sleep(0.05)
    text = str(raised.value)
    assert "no complete answer within 1 s ([limits] api_timeout)" in text, text
    assert "gave up after 2 attempts" in text
    assert connections == ["closed by the client"] * 2


# -- pages longer than asked ------------------------------------------------------------------


@pytest.mark.hostile("a list page with more items than the `limit` asked for",
                     "ApiError naming the endpoint")
async def test_hostile_page_longer_than_the_limit_is_refused(
    hostile: HostileApi, sleeper: FakeSleep
) -> None:
    async def flood(request: web.Request) -> web.StreamResponse:
        asked = int(request.query["limit"])
        items = [{"id": i, "name": f"job {i}"} for i in range(asked + 1)]
        return web.json_response({"success": True, "payload": items})

    hostile.answer = flood
    async with ExportClient(hostile.settings(), sleep=sleeper) as client:
        with pytest.raises(ApiError) as raised:
            await client.list_jobs()
    text = str(raised.value)
    assert "GET /v1/exports" in text and "101 items, more than the 100 asked for" in text, text


# -- the https rule ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def tls_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str
                     ) -> AsyncIterator[tuple[ForwardingProxy, aiohttp.ClientSession, object]]:
    """A proxy that alone knows `host` (127.0.0.1), and a session trusting `host`'s certificate:
    an https auth URL that is not a loopback address, as in production."""
    server_tls, client_tls = tls_pair(tmp_path, host)
    async with ForwardingProxy(resolve={host: "127.0.0.1"}) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_tls),
                                        cookie_jar=aiohttp.DummyCookieJar())
        async with session:
            yield proxy, session, server_tls


@pytest.mark.hostile("an https token endpoint naming plain http on 127.0.0.1 as the API (whatever"
                     " listens there would get the token)",
                     "refused; nothing reaches that address")
async def test_hostile_http_loopback_endpoint_refused_outside_simulator_mode(
    hostile: HostileApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeper: FakeSleep
) -> None:
    """An https token endpoint naming http://127.0.0.1:... as the API (whatever listens there on
    a shared host would get the token) is refused; nothing reaches that address."""
    host = "auth.hostile.invalid"
    async with tls_client(tmp_path, monkeypatch, host) as (_proxy, session, server_tls):
        async def token(request: web.Request) -> web.StreamResponse:
            return web.json_response({"access_token": ACCESS_TOKEN, "expires_in": 3600,
                                      "endpoint": hostile.base_url})

        app = web.Application()
        app.router.add_post("/v1/oauth/token", token)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls).start()  # type: ignore[arg-type]
            auth_url = f"https://{host}:{runner.addresses[0][1]}"
            settings = Settings(client_id="c", client_secret=SECRET, auth_url=auth_url)
            async with ExportClient(settings, session=session, sleep=sleeper) as client:
                with pytest.raises(InsecureUrlError) as raised:
                    await client.list_jobs()
        finally:
            await runner.cleanup()
    assert "the API endpoint must use https" in str(raised.value)
    assert "only when the auth URL is a loopback address too" in str(raised.value)
    assert hostile.requests == []


@pytest.mark.parametrize("how", ["part URLs", "a storage redirect"])
@pytest.mark.hostile("part URLs, or a storage redirect, to plain http on 127.0.0.1 outside "
                     "simulator mode",
                     "refused before any byte is asked")
async def test_hostile_http_loopback_part_urls_refused_outside_simulator_mode(
    how: str, simulator: Simulator, sim_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, sleeper: FakeSleep
) -> None:
    """The simulator over https under a made-up name hands out part URLs (or redirects parts)
    to its own plain-http address on 127.0.0.1: refused before any byte is asked of it."""
    host = "csload-sim.invalid"
    if how == "part URLs":
        simulator.config.storage_base_url = sim_url
    else:
        simulator.faults.storage_redirect_to = sim_url
    run = simulator.runs(simulator.job_named("Daily sessions").job_id)[-1]
    async with tls_client(tmp_path, monkeypatch, host) as (_proxy, session, server_tls), \
            serve_tls(simulator, server_tls, host) as url:  # type: ignore[arg-type]
        client_id, client_secret, project_id = simulator.credentials
        settings = Settings(client_id=client_id, client_secret=client_secret,
                            project_id=project_id, auth_url=url)
        async with ExportClient(settings, session=session, sleep=sleeper) as client:
            detail = await client.get_run(run.job_id, run.run_id)
            assert detail.parts
            with pytest.raises(InsecureUrlError) as raised:
                await StorageHost(client).download_part(
                    detail.parts[0], tmp_path / "p1", job_id=run.job_id, run_id=run.run_id)
    text = str(raised.value)
    assert "must use https" in text and "Signature" not in text, text
    # Over plain http, nothing: the part URL was never asked for; the redirect was not followed.
    assert simulator.stats.storage_requests == (0 if how == "part URLs" else 1)
    assert not (tmp_path / "p1").exists()


def _settings_file(folder: Path, text: str) -> Path:
    path = folder / "csload.toml"
    path.write_text('client_id = "c"\nclient_secret = "s"\n' + text)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(("endpoint", "auth_url", "refused"), [
    ("http://s3.example.com", "https://api.contentsquare.com", True),
    ("http://s3.example.com", "http://127.0.0.1:8080", True),
    ("http://127.0.0.1:9000", "https://api.contentsquare.com", True),
    ("http://127.0.0.1:9000", "http://127.0.0.1:8080", False),
    ("https://s3.example.com", "https://api.contentsquare.com", False),
    ("s3.example.com", "https://api.contentsquare.com", False),   # no scheme: https
])
@pytest.mark.hostile("`[lake] endpoint_url` over plain http",
                     "refused, unless loopback in simulator mode")
def test_hostile_lake_endpoint_url_over_plain_http_is_refused(
    endpoint: str, auth_url: str, refused: bool, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONTENTSQUARE_AUTH_URL", raising=False)
    path = _settings_file(tmp_path, f'auth_url = "{auth_url}"\n[lake]\n'
                                    f'endpoint_url = "{endpoint}"\n')
    checks: list[Callable[[], object]] = [
        lambda: load_settings(config_file=path, environ={}),
        lambda: read_lake_options(path),
        lambda: Settings(client_id="c", client_secret="s", auth_url=auth_url,
                         lake={"endpoint_url": endpoint}),
    ]
    for check in checks:
        if refused:
            with pytest.raises(InsecureUrlError, match="endpoint_url must use https"):
                check()
        else:
            check()


# -- a bad port in a part URL -----------------------------------------------------------------


@pytest.mark.hostile("part URLs with port 99999 (the signed URL was printed in a traceback)",
                     "each run fails with one line that shows no URL; exit 3")
def test_hostile_bad_port_in_part_urls_fails_the_runs_in_one_line(
    simulator: Simulator, sim_thread: ServerHandle, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Part URLs with port 99999 printed the signed URL in a traceback (exit 1); now each run
    fails with one line that shows no URL, and the sync exits 3."""
    simulator.config.storage_base_url = "http://127.0.0.1:99999"
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("CONTENTSQUARE_"):
            monkeypatch.delenv(name)
    env = dict(line.split("=", 1) for line in simulator.config.env_lines(sim_thread.base_url))

    result = CliRunner().invoke(main, ["sync", "--db", str(tmp_path / "cs.duckdb"), "--json"],
                                env=env, catch_exceptions=False)

    assert result.exit_code == 3, result.output
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "Traceback" not in output
    assert "Signature=" not in output and "99999" not in output, output
    runs = json.loads(result.stdout)["runs"]
    failed = [run for run in runs if run["status"] == "failed"]
    assert failed and all(run["status"] in ("failed", "source_failed") for run in runs), runs
    assert all(run["message"].endswith(
        "part 1 is not a valid URL (its port is not a number from 0 to 65535)")
        for run in failed), failed


# -- reprs ------------------------------------------------------------------------------------


@pytest.mark.hostile("repr() of settings, tokens, targets and parts",
                     "no secret, no S3 key, no URL signature")
def test_hostile_reprs_hold_no_secret_and_no_signature() -> None:
    signed = "https://bucket.example.test/p/part-1.gz?X-Amz-Signature=s1gn4tur3deadbeef"
    s3 = {"endpoint_url": "https://s3.example.test", "region": "eu-west-1",
          "access_key_id": "AKIAHOSTILEKEY", "secret_access_key": "s3-secret-key-hostile",
          "session_token": "s3-session-token-hostile"}
    objects: list[object] = [
        Settings(client_id="c", client_secret=SECRET, lake=s3),
        Target.of(db=None, parquet="s3://lake/prefix", storage_options=s3),
        Part(part_id=1, url=signed),
        Token(access_token=ACCESS_TOKEN, endpoint="https://api.example.test", lifetime=60.0,
              obtained_at=0.0),
        Answer(status=200, raw=json.dumps({"access_token": ACCESS_TOKEN}).encode(),
               error=aiohttp.InvalidURL(signed)),
    ]
    secrets = (SECRET, "s1gn4tur3", ACCESS_TOKEN, "s3-secret-key-hostile",
               "s3-session-token-hostile", "AKIAHOSTILEKEY")
    for thing in objects:
        shown = repr(thing)
        assert not [s for s in secrets if s in shown], shown
    assert "s3://lake/prefix" in repr(objects[1]) and "eu-west-1" in repr(objects[1])
    assert "bucket.example.test/p/part-1.gz" in repr(objects[2])


def test_hostile_gzip_bomb_helper_is_a_bomb() -> None:
    """The bomb the tests send is what they claim: small, and 256 MiB once inflated."""
    data = bomb()
    assert len(data) < 512 * 1024
    assert len(gzip.decompress(data)) == BOMB_SIZE
