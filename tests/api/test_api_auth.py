"""Token parsing and renewal timing (csload.api.auth)."""

from __future__ import annotations

import anyio
import pytest

from csload.api.auth import Token, TokenCache, parse_token_response, renewal_margin
from csload.errors import ApiError, InsecureUrlError

AUTH = "https://api.example.test"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"


def test_token_response_names_the_endpoint() -> None:
    token = parse_token_response(
        {"access_token": JWT, "token_type": "Bearer", "expires_in": 3600,
         "endpoint": "https://api.eu.example.test/", "scope": "data-export", "project_id": 42},
        auth_url=AUTH, obtained_at=100.0)
    assert token.endpoint == "https://api.eu.example.test"
    assert token.lifetime == 3600
    assert token.renew_at == 100.0 + 3600 - 60
    assert token.project_id == 42


@pytest.mark.parametrize(("value", "project"), [
    ("43", 43), (" 43 ", 43), (None, None), (0, None), (-1, None), (True, None), (2**32, None),
    ("4x", None), ("²", None), ("9" * 5000, None), (4.0, None), ({"id": 4}, None)])
def test_the_project_a_token_answer_names_is_used_only_when_it_is_a_project_id(
        value: object, project: int | None) -> None:
    body = {"access_token": JWT, "endpoint": "https://x.test", "project_id": value}
    assert parse_token_response(body, auth_url=AUTH, obtained_at=0.0).project_id == project


def test_token_response_tolerates_missing_optional_fields_and_an_envelope() -> None:
    token = parse_token_response(
        {"success": True, "payload": {"access_token": JWT, "endpoint": "https://x.test"}},
        auth_url=AUTH, obtained_at=0.0)
    assert token.lifetime == 3600
    assert token.endpoint == "https://x.test"


def test_token_response_without_endpoint_falls_back_to_auth_url() -> None:
    token = parse_token_response({"access_token": JWT, "expires_in": "120"},
                                 auth_url=AUTH, obtained_at=0.0)
    assert token.endpoint == AUTH
    assert token.lifetime == 120


def test_loopback_http_endpoint_is_accepted_but_not_remote_http() -> None:
    # Loopback http only in simulator mode: the auth URL is a loopback address too.
    token = parse_token_response({"access_token": JWT, "endpoint": "http://127.0.0.1:8080"},
                                 auth_url="http://127.0.0.1:8080", obtained_at=0.0)
    assert token.endpoint == "http://127.0.0.1:8080"
    with pytest.raises(InsecureUrlError):
        parse_token_response({"access_token": JWT, "endpoint": "http://127.0.0.1:8080"},
                             auth_url=AUTH, obtained_at=0.0)
    with pytest.raises(InsecureUrlError):
        parse_token_response({"access_token": JWT, "endpoint": "http://api.example.test"},
                             auth_url=AUTH, obtained_at=0.0)


@pytest.mark.parametrize("body", [{}, {"access_token": ""}, [], "text", None])
def test_token_response_without_token_is_an_api_error(body: object) -> None:
    with pytest.raises(ApiError):
        parse_token_response(body, auth_url=AUTH, obtained_at=0.0)


def test_token_repr_hides_the_token() -> None:
    token = Token(access_token=JWT, endpoint="https://x.test", lifetime=10, obtained_at=0)
    assert JWT not in repr(token)
    assert JWT not in str(token)


def test_renewal_margin() -> None:
    assert renewal_margin(3600) == 60
    assert renewal_margin(100) == 10
    assert renewal_margin(10) == 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_cache_renews_ahead_of_expiry() -> None:
    clock = Clock()
    fetched: list[Token] = []

    async def fetch() -> Token:
        token = Token(access_token=f"t{len(fetched)}", endpoint="https://x.test",
                      lifetime=100, obtained_at=clock())
        fetched.append(token)
        return token

    cache = TokenCache(fetch, clock=clock)
    first = await cache.get()
    clock.now += 89.9  # renew_at is at 90 s (margin 10% of 100 s)
    assert await cache.get() is first
    clock.now += 0.1
    second = await cache.get()
    assert second is not first
    assert len(fetched) == 2


async def test_concurrent_callers_share_one_renewal() -> None:
    calls = 0
    release = anyio.Event()

    async def fetch() -> Token:
        nonlocal calls
        calls += 1
        await release.wait()
        return Token(access_token="t", endpoint="https://x.test", lifetime=3600, obtained_at=0)

    cache = TokenCache(fetch, clock=lambda: 0.0)
    got: list[Token] = []

    async def get() -> None:
        got.append(await cache.get())

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(get)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert calls == 1
    assert len(got) == 5 and all(t is got[0] for t in got)


async def test_invalidate_drops_only_the_stale_token() -> None:
    tokens = iter(["a", "b", "c"])

    async def fetch() -> Token:
        return Token(access_token=next(tokens), endpoint="https://x.test", lifetime=3600,
                     obtained_at=0)

    cache = TokenCache(fetch, clock=lambda: 0.0)
    stale = await cache.get()
    cache.invalidate(stale)
    fresh = await cache.get()
    assert fresh.access_token == "b"
    # A late caller reporting the old token must not throw away the fresh one.
    cache.invalidate(stale)
    assert await cache.get() is fresh
