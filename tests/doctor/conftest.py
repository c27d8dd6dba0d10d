"""Fixtures of the doctor tests: the simulator served from a thread, settings, a CLI runner.

    sim_config   a small world (40 sessions a day, 3 days), clock frozen at SIM_START
                 (2026-11-25 12:00 UTC) unless a test moves it; doctorkit's
                 `clickhouse_config()` is a world with the ClickHouse preset.
    settings     Settings reaching `sim_thread` (tests/conftest.py), fast retries.
    sim_env      the CONTENTSQUARE_* variables of the simulator, for the CLI.
    cli          runs `csload doctor ...` in-process with click's CliRunner, in the test's
                 folder, whose csload.toml holds only fast retries; returns click's Result.
    db_path      a database path in the test's folder (not created).
    closed_url   http://127.0.0.1:<a port nothing listens on>.
    token_only   `token_only(endpoint)`: a token endpoint (and nothing else) on 127.0.0.1 whose
                 token response names `endpoint`; returns its base URL.
    proxy        tests/support/proxy.py's ForwardingProxy, run on a loop of its own in a thread.

No proxy variable of the machine reaches a test (`no_proxy_settings`), so that every request
goes where the test says.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from csload.cli import main
from csload.config import RetryPolicy, Settings
from csload.simulator import ServerHandle, SimConfig, Simulator
from tests.support.doctorkit import SIM_START
from tests.support.proxy import ForwardingProxy
from tests.support.simenv import sim_settings, sim_variables

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=0.02)
RETRY_TOML = """[retry]
max_attempts = 3
base_delay = 0.01
max_delay = 0.05
max_retry_after = 0.02
"""
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
                   "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(seed=7, days=3, sessions_per_day=40, start_time=SIM_START)


@pytest.fixture
def settings(simulator: Simulator, sim_thread: ServerHandle) -> Settings:
    return sim_settings(simulator, sim_thread.base_url, retry=FAST_RETRY)


@pytest.fixture
def sim_env(simulator: Simulator, sim_thread: ServerHandle) -> dict[str, str]:
    return sim_variables(simulator, sim_thread.base_url)


@pytest.fixture
def cli(sim_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> Callable[..., Result]:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "csload.toml").write_text(RETRY_TOML)
    for name in [n for n in os.environ if n.startswith("CONTENTSQUARE_")]:
        monkeypatch.delenv(name)

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(main, ["doctor", *args], env={**sim_env, **(env or {})},
                                  catch_exceptions=False)

    return run


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cs.duckdb"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def closed_url() -> str:
    return f"http://127.0.0.1:{_free_port()}"


class _TokenOnly(BaseHTTPRequestHandler):
    endpoint = ""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps({"access_token": "token-only-" + "x" * 24, "token_type": "Bearer",
                           "expires_in": 3600, "endpoint": self.endpoint,
                           "scope": "data-export"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def token_only() -> Iterator[Callable[[str], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(endpoint: str) -> str:
        handler = type("Handler", (_TokenOnly,), {"endpoint": endpoint})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy() -> Iterator[ForwardingProxy]:
    """A forwarding proxy served by a loop of its own, for synchronous callers (the CLI)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    forwarding = ForwardingProxy()

    async def serve() -> None:
        async with forwarding:
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the proxy did not start"
    try:
        yield forwarding
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
