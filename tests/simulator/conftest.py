"""Fixtures of the simulator's own tests: `api`, a raw HTTP client (simhttp.Api), logged in."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from csload.simulator import Simulator

sys.path.insert(0, str(Path(__file__).parent))

from simhttp import Api


@pytest.fixture
async def api(simulator: Simulator, sim_url: str) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        client = Api(session, sim_url, simulator)
        await client.login()
        yield client
