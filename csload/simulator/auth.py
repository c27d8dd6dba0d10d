"""Tokens: the token endpoint, and the bearer check every API call passes.

Tokens are opaque random strings mapped to their expiry on the simulated clock.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from datetime import datetime, timedelta
from typing import Any, Literal

from aiohttp import web

from csload.simulator import responses
from csload.simulator.config import SimConfig

TokenStatus = Literal["ok", "expired", "unknown"]
SCOPE = "data-export"

JWT_EXPIRED_MESSAGE = "Auth token is expired."


class TokenStore:
    def __init__(self) -> None:
        self._expiry: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def issue(self, now: datetime, lifetime: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._expiry[token] = now + timedelta(seconds=lifetime)
        return token

    def check(self, token: str, now: datetime) -> TokenStatus:
        with self._lock:
            expiry = self._expiry.get(token)
        if expiry is None:
            return "unknown"
        return "ok" if now < expiry else "expired"

    def expire_all(self, now: datetime) -> None:
        with self._lock:
            for token in self._expiry:
                self._expiry[token] = min(self._expiry[token], now)


async def _read_body(request: web.Request) -> dict[str, Any] | None:
    """The token request as a dict: JSON (the contract) or a form (what the docs also allow)."""
    if request.content_type == "application/x-www-form-urlencoded":
        return dict(await request.post())
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _same(given: Any, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


async def token_response(request: web.Request, config: SimConfig, tokens: TokenStore,
                         now: datetime, api_endpoint: str) -> tuple[web.Response, bool]:
    """(the response, whether a token was issued)."""
    body = await _read_body(request)
    if body is None:
        return responses.error(400, "INVALID_REQUEST", "the body must be a JSON object"), False
    if body.get("grant_type") != "client_credentials":
        return responses.error(400, "UNSUPPORTED_GRANT_TYPE",
                               "grant_type must be 'client_credentials'"), False
    if not body.get("client_id") or not body.get("client_secret"):
        return responses.error(400, "INVALID_REQUEST",
                               "client_id and client_secret are required"), False
    if not (_same(body.get("client_id"), config.client_id)
            and _same(body.get("client_secret"), config.client_secret)):
        if config.variants.credentials_error_500:
            return responses.plain_500(), False
        return responses.error(401, "INVALID_CREDENTIALS", "Invalid client credentials."), False
    scopes = str(body.get("scope") or "").split()
    if SCOPE not in scopes:
        return responses.error(403, "FORBIDDEN",
                               f"These credentials are not allowed the scope {SCOPE!r}."), False
    project = body.get("project_id")
    if project in (None, ""):
        if config.account_level_credentials:
            return responses.error(400, "INVALID_REQUEST",
                                   "project_id is required with account-level credentials"), False
    elif str(project).strip() != str(config.project_id):
        return responses.error(403, "FORBIDDEN",
                               "These credentials give no access to that project."), False

    lifetime = config.token_lifetime
    token = tokens.issue(now, lifetime)
    payload: dict[str, Any] = {"access_token": token, "token_type": "Bearer",
                               "expires_in": lifetime, "endpoint": api_endpoint,
                               "scope": SCOPE, "project_id": config.project_id}
    if config.variants.minimal_token_response:
        payload = {k: payload[k] for k in ("access_token", "expires_in", "endpoint")}
    return web.json_response(payload), True


def check_bearer(request: web.Request, tokens: TokenStore, now: datetime) -> web.Response | None:
    """None when the request carries a valid token, else the 401 to send."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return responses.error(401, "UNAUTHORIZED", "Missing bearer token.")
    status = tokens.check(token.strip(), now)
    if status == "expired":
        return responses.error(401, "JWT_EXPIRED", JWT_EXPIRED_MESSAGE)
    if status == "unknown":
        return responses.error(401, "UNAUTHORIZED", "Invalid auth token.")
    return None
