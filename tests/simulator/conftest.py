"""Fixtures of the simulator's own tests: `api`, a raw HTTP client (simhttp.Api), logged in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from csload.simulator import Simulator
from tests.support.simhttp import Api


@pytest.fixture
async def api(simulator: Simulator, sim_url: str) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        client = Api(session, sim_url, simulator)
        await client.login()
        yield client
