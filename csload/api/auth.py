"""The OAuth token: parsing the token response, and when to ask for a new one.

Tokens come from the client-credentials grant and live `expires_in` seconds (an hour); there is
no refresh token, so renewal is simply a new token request. `TokenCache` renews ahead of expiry
by a margin (10% of the lifetime, at most 60 s), so a long sync never sends a token about to
lapse, and renews on demand after the API answered 401. One renewal at a time: requests that
find the token stale while another task renews wait for that renewal instead of starting their
own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from csload.api.models import PROJECT_ID_TEXT
from csload.errors import ApiError
from csload.https_rule import plain_http_allowed, require_secure_url
from csload.redact import redact_url

logger = logging.getLogger("csload.api")

DEFAULT_LIFETIME = 3600.0
# What to do when the token endpoint rejects the credentials (contract section 9: OAuth
# credentials expire one year after they are created).
CREDENTIALS_HINT = ("check the client id and secret; credentials expire a year after they are "
                    "created: create new ones in the Contentsquare console")
MAX_RENEWAL_MARGIN = 60.0


@dataclass(frozen=True)
class Token:
    access_token: str = field(repr=False)
    endpoint: str
    lifetime: float
    # On the cache's monotonic clock.
    obtained_at: float
    # The project the token is for, when the answer says (contract section 2: may be absent).
    project_id: int | None = None

    @property
    def renew_at(self) -> float:
        return self.obtained_at + self.lifetime - renewal_margin(self.lifetime)

    def __repr__(self) -> str:
        return f"Token(endpoint={redact_url(self.endpoint)!r}, lifetime={self.lifetime})"


def renewal_margin(lifetime: float) -> float:
    return min(MAX_RENEWAL_MARGIN, 0.1 * lifetime)


def parse_token_response(body: Any, *, auth_url: str, obtained_at: float) -> Token:
    """The token of a successful token response (enveloped or not).

    `endpoint` is the base URL of every later call; without one, the auth URL serves (the
    contract says it is always sent, but falling back beats failing). It must be https, or
    http to a loopback address when the auth URL is one too (the https rule, csload.https_rule).
    """
    if isinstance(body, dict) and isinstance(body.get("payload"), dict):
        body = body["payload"]
    if not isinstance(body, dict):
        raise ApiError("the token endpoint answered without a JSON object")
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise ApiError("the token endpoint answered without an access_token")
    endpoint = body.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.strip():
        logger.warning("token response has no endpoint; using %s", redact_url(auth_url))
        endpoint = auth_url
    endpoint = require_secure_url(endpoint.strip().rstrip("/"), "the API endpoint",
                                  loopback_http=plain_http_allowed(auth_url))
    lifetime = DEFAULT_LIFETIME
    raw_lifetime = body.get("expires_in")
    if raw_lifetime is not None:
        try:
            lifetime = float(raw_lifetime)
        except (TypeError, ValueError):
            logger.warning("token response has an unreadable expires_in; assuming one hour")
        else:
            if lifetime <= 0:
                lifetime = DEFAULT_LIFETIME
    project = body.get("project_id")
    if isinstance(project, str) and PROJECT_ID_TEXT.match(project.strip()):
        project = int(project.strip())
    if not isinstance(project, int) or isinstance(project, bool) or not 0 < project < 2**32:
        project = None   # absent, or not a project id (UInt32): not used
    return Token(access_token=access_token, endpoint=endpoint, lifetime=lifetime,
                 obtained_at=obtained_at, project_id=project)


class TokenCache:
    """The current token, renewed ahead of expiry or on demand, one renewal at a time."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Token]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._token: Token | None = None
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"TokenCache(token={self._token!r})"

    @property
    def current(self) -> Token | None:
        return self._token

    async def get(self) -> Token:
        """A token that is not due for renewal."""
        token = self._token
        if token is not None and self._clock() < token.renew_at:
            return token
        async with self._lock:
            # Another task may have renewed while this one waited for the lock.
            token = self._token
            if token is None or self._clock() >= token.renew_at:
                token = await self._fetch()
                self._token = token
            return token

    def invalidate(self, token: Token) -> None:
        """Drop `token` (the API refused it) unless a newer one already replaced it."""
        if self._token is token:
            self._token = None
