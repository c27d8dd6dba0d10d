"""Serving: in the test's loop, from a thread, and forever (what `csload simulate` runs)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from csload.simulator import ServerHandle, SimConfig, Simulator, run_forever


def post_json(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),  # noqa: S310
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def get_json(url: str, token: str) -> Any:
    request = urllib.request.Request(  # noqa: S310
        url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def login(base_url: str, sim: Simulator) -> tuple[str, str]:
    client_id, secret, project = sim.credentials
    data = post_json(base_url + "/v1/oauth/token", {
        "client_id": client_id, "client_secret": secret, "grant_type": "client_credentials",
        "scope": "data-export", "project_id": project})
    return data["access_token"], data["endpoint"]


def test_start_in_thread_serves_sync_callers(sim_thread: ServerHandle,
                                            simulator: Simulator) -> None:
    assert sim_thread.base_url.startswith("http://127.0.0.1:")
    token, endpoint = login(sim_thread.base_url, simulator)
    jobs = get_json(endpoint + "/v1/exports", token)["payload"]
    assert len(jobs) == 3
    # Python-side changes reach the serving thread.
    simulator.variants.no_envelope = True
    assert isinstance(get_json(endpoint + "/v1/exports", token), list)


def test_stopping_the_thread_closes_the_port(simulator: Simulator) -> None:
    with simulator.start_in_thread() as handle:
        url = handle.base_url
        login(url, simulator)
    with pytest.raises(urllib.error.URLError):
        login(url, simulator)


def test_pause_and_resume_from_another_thread(sim_thread: ServerHandle,
                                              simulator: Simulator) -> None:
    token, endpoint = login(sim_thread.base_url, simulator)
    simulator.pause_api()
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(
        get_json(endpoint + "/v1/custom-vars", token)))
    worker.start()
    asyncio.run_coroutine_threadsafe(simulator.wait_api_held(1), sim_thread.loop).result(30)
    assert results == []
    simulator.resume_api()
    worker.join(30)
    assert results and results[0]["success"] is True


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "localhost"])  # noqa: S104
async def test_only_loopback_addresses(host: str) -> None:
    sim = Simulator(SimConfig(days=0))
    with pytest.raises(ValueError, match="loopback"):
        async with sim.serve(host=host):
            pass
    with pytest.raises(ValueError, match="loopback"):
        sim.start_in_thread(host=host)


def test_run_forever_until_stopped() -> None:
    ready: list[str] = []
    started = threading.Event()
    stop = threading.Event()

    def on_ready(url: str) -> None:
        ready.append(url)
        started.set()

    config = SimConfig(days=1, sessions_per_day=10)
    thread = threading.Thread(target=run_forever, args=("127.0.0.1", 0, config, on_ready),
                              kwargs={"stop": stop})
    thread.start()
    try:
        assert started.wait(30)
        (url,) = ready
        sim_view = Simulator(config)  # same credentials
        token, endpoint = login(url, sim_view)
        assert endpoint == url + "/api"
        assert get_json(endpoint + "/v1/exports", token)["success"] is True
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def test_env_lines() -> None:
    lines = SimConfig().env_lines("http://127.0.0.1:8765")
    assert lines == [
        "CONTENTSQUARE_CLIENT_ID=sim-client",
        "CONTENTSQUARE_CLIENT_SECRET=sim-secret",
        "CONTENTSQUARE_PROJECT_ID=42",
        "CONTENTSQUARE_AUTH_URL=http://127.0.0.1:8765",
    ]
