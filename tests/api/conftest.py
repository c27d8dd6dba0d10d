"""Fixtures of the API client's tests: settings, a fake sleep, aioresponses, a tiny storage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from aioresponses import aioresponses

from csload.api.client import ExportClient
from csload.config import Limits, RetryPolicy, Settings
from tests.support.api_fakes import AUTH_URL, CLIENT_SECRET, FakeSleep, FakeStorage, MockResponse


@pytest.fixture
def sleeper() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def api_settings() -> Settings:
    return Settings(
        client_id="client-1",
        client_secret=CLIENT_SECRET,
        project_id=42,
        auth_url=AUTH_URL,
        limits=Limits(api_concurrency=4, chunk_size=4096),
        retry=RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=8.0, max_retry_after=60.0),
    )


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    monkeypatch.setattr("aioresponses.core.ClientResponse", MockResponse)
    with aioresponses() as m:
        yield m


@pytest.fixture
async def client(api_settings: Settings, sleeper: FakeSleep) -> AsyncIterator[ExportClient]:
    async with ExportClient(api_settings, sleep=sleeper) as c:
        yield c


@pytest.fixture
async def storage() -> AsyncIterator[FakeStorage]:
    fake = FakeStorage()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.base_url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()
