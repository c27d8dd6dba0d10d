"""The token endpoint and the bearer check (contract section 2)."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from csload.simulator import SimConfig, Simulator
from tests.support.simhttp import Api

JWT_EXPIRED = {"success": False, "errorMessage": "Auth token is expired.",
               "errorCode": "JWT_EXPIRED"}


async def test_token_response(api: Any, simulator: Simulator) -> None:
    reply = await api.request_token()
    assert reply.status == 200
    data = reply.json()
    assert data["endpoint"] == api.base_url + "/api"
    assert data["expires_in"] == 3600
    assert data["token_type"] == "Bearer" and data["scope"] == "data-export"
    assert data["project_id"] == 42
    assert data["access_token"] != api.token, "every token request gets a new token"
    assert simulator.stats.token_requests == 2 and simulator.stats.tokens_issued == 2


async def test_minimal_token_response_variant(api: Any, simulator: Simulator) -> None:
    simulator.variants.minimal_token_response = True
    simulator.config.token_lifetime = 120
    data = (await api.request_token()).json()
    assert set(data) == {"access_token", "expires_in", "endpoint"}
    assert data["expires_in"] == 120


async def test_token_request_without_project_id_and_as_a_form(api: Any) -> None:
    assert (await api.request_token(project_id=None)).status == 200
    client_id, secret, _ = api.sim.credentials
    form = {"client_id": client_id, "client_secret": secret,
            "grant_type": "client_credentials", "scope": "data-export"}
    async with api.session.post(api.base_url + "/v1/oauth/token", data=form) as r:
        assert r.status == 200


@pytest.mark.parametrize(("overrides", "status", "code"), [
    ({"client_secret": "wrong"}, 401, "INVALID_CREDENTIALS"),
    ({"client_id": "someone-else"}, 401, "INVALID_CREDENTIALS"),
    ({"scope": "metrics"}, 403, "FORBIDDEN"),
    ({"scope": None}, 403, "FORBIDDEN"),
    ({"project_id": 43}, 403, "FORBIDDEN"),
    ({"grant_type": "password"}, 400, "UNSUPPORTED_GRANT_TYPE"),
    ({"client_secret": None}, 400, "INVALID_REQUEST"),
])
async def test_token_refusals(api: Any, overrides: dict[str, Any], status: int,
                              code: str) -> None:
    reply = await api.request_token(**overrides)
    assert reply.status == status
    assert reply.json()["errorCode"] == code
    assert reply.json()["success"] is False


async def test_wrong_credentials_as_a_plain_500(api: Any, simulator: Simulator) -> None:
    simulator.variants.credentials_error_500 = True
    reply = await api.request_token(client_secret="wrong")
    assert reply.status == 500
    assert reply.headers["Content-Type"].startswith("text/plain")
    with pytest.raises(orjson.JSONDecodeError):
        reply.json()
    assert (await api.request_token()).status == 200, "right credentials still work"


async def test_account_level_credentials_need_the_project() -> None:
    sim = Simulator(SimConfig(account_level_credentials=True, days=0))
    async with sim.serve() as url, aiohttp.ClientSession() as session:
        api = Api(session, url, sim)
        assert (await api.request_token(project_id=None)).status == 400
        assert (await api.request_token()).status == 200


async def test_expired_token_gets_jwt_expired(api: Any, simulator: Simulator) -> None:
    assert (await api.get("/v1/exports")).status == 200
    simulator.advance(3599)
    assert (await api.get("/v1/exports")).status == 200
    simulator.advance(1)
    reply = await api.get("/v1/exports")
    assert reply.status == 401
    assert reply.json() == JWT_EXPIRED
    await api.login()
    assert (await api.get("/v1/exports")).status == 200


async def test_expire_tokens_knob(api: Any, simulator: Simulator) -> None:
    simulator.expire_tokens()
    assert (await api.get("/v1/custom-vars")).json() == JWT_EXPIRED


async def test_requests_without_a_valid_token(api: Any) -> None:
    reply = await api.get("/v1/exports", auth=False)
    assert reply.status == 401 and reply.json()["errorCode"] == "UNAUTHORIZED"
    api.token = "not-a-token"
    reply = await api.get("/v1/exports")
    assert reply.status == 401 and reply.json()["errorCode"] == "UNAUTHORIZED"
