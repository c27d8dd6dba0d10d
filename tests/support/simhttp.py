"""A raw HTTP client of the simulator, for the simulator's own tests.

It is deliberately not csload's client: these tests check the simulator against the contract
with plain aiohttp requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from csload.simulator import Simulator


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def payload(self) -> Any:
        data = self.json()
        assert data["success"] is True, data
        return data["payload"]


class Api:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, sim: Simulator) -> None:
        self.session = session
        self.base_url = base_url
        self.sim = sim
        self.token: str | None = None
        self.endpoint: str | None = None

    async def request_token(self, **overrides: Any) -> Reply:
        client_id, secret, project = self.sim.credentials
        body: dict[str, Any] = {"client_id": client_id, "client_secret": secret,
                                "grant_type": "client_credentials", "scope": "data-export",
                                "project_id": project}
        body.update(overrides)
        body = {k: v for k, v in body.items() if v is not None}
        async with self.session.post(self.base_url + "/v1/oauth/token", json=body) as r:
            return Reply(r.status, r.headers, await r.read())

    async def login(self) -> None:
        reply = await self.request_token()
        assert reply.status == 200, reply.body
        data = reply.json()
        self.token = data["access_token"]
        self.endpoint = data["endpoint"]

    def _headers(self, auth: bool) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}

    async def get(self, path: str, params: dict[str, Any] | None = None, *,
                  auth: bool = True) -> Reply:
        assert self.endpoint is not None
        async with self.session.get(self.endpoint + path, params=params,
                                    headers=self._headers(auth)) as r:
            return Reply(r.status, r.headers, await r.read())

    async def post(self, path: str, body: Any) -> Reply:
        assert self.endpoint is not None
        async with self.session.post(self.endpoint + path, json=body,
                                     headers=self._headers(True)) as r:
            return Reply(r.status, r.headers, await r.read())

    async def download(self, url: str, headers: dict[str, str] | None = None) -> Reply:
        async with self.session.get(url, headers=headers or {}) as r:
            return Reply(r.status, r.headers, await r.read())

    async def run_detail(self, job_id: int, run_id: int) -> dict[str, Any]:
        reply = await self.get(f"/v1/exports/{job_id}/runs/{run_id}")
        assert reply.status == 200, reply.body
        payload: dict[str, Any] = reply.payload()
        return payload

    async def download_run(self, job_id: int, run_id: int) -> list[bytes]:
        """Every part of a run, as served."""
        bodies = []
        for entry in (await self.run_detail(job_id, run_id))["files"]:
            reply = await self.download(entry["url"])
            assert reply.status == 200, reply.body
            bodies.append(reply.body)
        return bodies


def assert_s3_error(reply: Reply, status: int, code: str) -> None:
    """An S3-style XML error with this status and code."""
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"].startswith("application/xml")
    assert f"<Code>{code}</Code>".encode() in reply.body
