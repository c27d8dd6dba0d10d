"""The connection every call of the Contentsquare Data Export API shares (ApiConnection).

How it behaves:

- One `aiohttp.ClientSession` (its own, closed on exit, or one passed in, left open). The
  session carries no default Authorization header and no cookies: the token is added per API
  request, so a part download from the storage host never sees it.
- Auth: client credentials at `{auth_url}/v1/oauth/token`; every later call goes to the
  `endpoint` the token response names. That endpoint, part URLs and their redirects are
  https, or plain http to a loopback address only when the auth URL is one too (the
  simulator: csload.https_rule). Renewed ahead of expiry, and once
  more when the API answers 401 (then that request is retried once).
- At most `limits.api_concurrency` API requests in flight, the token request included; the
  wait between retries holds no slot. Storage downloads are not limited here.
- Retries: over-limit answers (429, or a 4xx speaking of a rate or request limit), 5xx and
  connection errors with exponential backoff and full jitter, or the server's Retry-After (see
  `retry.py`), up to `retry.max_attempts` attempts, then ApiUnavailable. Creating a job is
  retried only when the server cannot have processed it (over the limit, or the connection
  never opened): a blind retry could create the job twice.
- Lists are read to their end whatever the server's page size (`paging.py`), with `order`
  sent explicitly (jobs ASC, runs DESC unless asked otherwise). Proxies come from
  HTTPS_PROXY / HTTP_PROXY / NO_PROXY per URL, never from ~/.netrc (`proxy.py`).
- Each attempt of an API call has a total timeout (`limits.api_timeout`) and a ceiling on its
  body, counted after decompression (`limits.max_response_bytes`; csload.api.answer); a list
  page holding more items than the `limit` asked for is an ApiError (csload.api.paging).
- Errors: ApiRequestError (4xx: status, errorCode and the server's message), ApiUnavailable,
  CredentialsRejected / AuthError for the token endpoint, DownloadError and its subclasses for
  parts. No message, log line or repr holds the client secret, a token or a URL signature.
- Tests inject `sleep` (no real waiting) and `clock` (token expiry).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

import aiohttp
import anyio
import orjson

from csload.api import envelope, transport
from csload.api.answer import Answer, ask
from csload.api.auth import CREDENTIALS_HINT, Token, TokenCache, parse_token_response
from csload.api.observed import ClientObservations
from csload.api.paging import DEFAULT_PAGE_SIZE, read_all_pages
from csload.api.proxy import Proxies, shown
from csload.api.retry import (
    RequestKind,
    Verdict,
    backoff_delay,
    classify,
    is_over_limit,
)
from csload.errors import (
    ApiRequestError,
    ApiUnavailable,
    AuthError,
    CredentialsRejected,
)
from csload.https_rule import plain_http_allowed

if TYPE_CHECKING:
    from csload.config import Limits, Settings

__all__ = ["SCOPE", "TOKEN_PATH", "ApiConnection"]

logger = logging.getLogger("csload.api")

Sleep = Callable[[float], Awaitable[None]]

TOKEN_PATH = "/v1/oauth/token"  # noqa: S105 (a path, not a secret)
SCOPE = "data-export"


class ApiConnection:
    """What every call of the Export API shares, for one project: the session, the token,
    the limiter, retries and errors (see the module docstring). csload.api.client.ExportClient
    adds the endpoints; use it as an async context manager."""

    def __init__(
        self,
        settings: Settings,
        *,
        session: aiohttp.ClientSession | None = None,
        sleep: Sleep = anyio.sleep,
        clock: Callable[[], float] = time.monotonic,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        if session is not None:
            transport.check_session(session)
        self._settings = settings
        self._session = session
        self._owns_session = session is None
        self._sleep = sleep
        self._clock = clock
        self._page_size = page_size
        self._limiter = anyio.CapacityLimiter(settings.limits.api_concurrency)
        self._tokens = TokenCache(self._request_token, clock=clock)
        self._auth_host = urlsplit(settings.auth_url).netloc
        self._loopback_http = plain_http_allowed(settings.auth_url)
        self._proxies = Proxies.from_environment()
        self._observed = ClientObservations(page_size_asked=page_size)

    def __repr__(self) -> str:
        token = self._tokens.current
        endpoint = token.endpoint if token else None
        return (
            f"{type(self).__name__}(client_id={self._settings.client_id!r}, "
            f"auth_url={self._settings.auth_url!r}, endpoint={endpoint!r}, "
            f"api_concurrency={self._settings.limits.api_concurrency})"
        )

    async def __aenter__(self) -> Self:
        if self._session is None:
            self._session = transport.new_session(self._settings.limits)
            self._owns_session = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @property
    def endpoint(self) -> str | None:
        """The API base URL the token endpoint named (None before the first call)."""
        token = self._tokens.current
        return token.endpoint if token else None

    @property
    def project_id(self) -> int | None:
        """The project this client works on: the settings' (account-level credentials), else
        the one the token answer names (None before the first call, or if it names none)."""
        if self._settings.project_id is not None:
            return self._settings.project_id
        token = self._tokens.current
        return token.project_id if token else None

    @property
    def observed(self) -> ClientObservations:
        """What the client learnt of the service so far (for `csload doctor`); live."""
        return self._observed

    @property
    def proxies(self) -> Proxies:
        """The proxy settings the client took from the environment when it was made."""
        return self._proxies

    @property
    def limits(self) -> Limits:
        """The limits it works under (csload.transfer.stage checks a run's parts against them)."""
        return self._settings.limits

    async def authenticate(self) -> None:
        """Get a token now (the first call gets one anyway): CredentialsRejected or AuthError."""
        await self._tokens.get()

    # -- what the storage host's downloads share with the API calls (csload.transfer.host) ------

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open connection pool. It carries no token: parts are fetched with it too."""
        return self._require_session()

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def sleep(self) -> Callable[[float], Awaitable[None]]:
        """How the client waits between attempts (tests inject a fake)."""
        return self._sleep

    @property
    def loopback_http(self) -> bool:
        """Whether plain http to a loopback address is allowed (simulator mode)."""
        return self._loopback_http

    # -- plumbing ----------------------------------------------------------------------------

    async def _read_list(self, path: str, params: dict[str, str], what: str) -> list[Any]:
        async def fetch_page(page: int, limit: int) -> list[Any]:
            raw = await self._call("GET", path, params={**params, "page": str(page),
                                                        "limit": str(limit)})
            return envelope.payload_list(raw, what)

        def clamped(size: int) -> None:
            self._observed.page_size = size

        return await read_all_pages(fetch_page, limit=self._page_size,
                                    what=f"{what} (GET /v1{path})", on_clamped=clamped)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        idempotent: bool = True,
    ) -> bytes:
        """The raw body of a successful API call, after renewals and retries."""
        kind = RequestKind.API if idempotent else RequestKind.API_NON_IDEMPOTENT
        what = f"{method} /v1{path}"
        policy = self._settings.retry
        failures = 0
        renewed = False
        while True:
            token = await self._tokens.get()
            answer = await self._send(method, f"{token.endpoint}/v1{path}", token=token,
                                      params=params, json_body=json_body)
            code, message = self._error_details(answer)
            if answer.error is not None:
                verdict = classify(None, kind=kind,
                                   request_sent=transport.request_was_sent(answer.error))
            else:
                verdict = classify(answer.status, code, message=message, kind=kind)
            if verdict is Verdict.OK:
                return answer.raw
            problem = self._problem(answer, code, message)
            if verdict is Verdict.RENEW_TOKEN:
                if renewed:
                    raise AuthError(f"{what}: the API refused a freshly issued token ({problem})")
                renewed = True
                logger.info("%s: token refused (%s); renewing it", what, problem)
                self._tokens.invalidate(token)
                continue
            if verdict is Verdict.RETRY:
                # Only a second 401 *in a row* is fatal (retry.py): after another answer, a
                # token that expires during the retries is renewed again (found by
                # tests/reliability: a 429 storm across a token expiry failed the run).
                renewed = False
                failures += 1
                if failures >= policy.max_attempts:
                    raise ApiUnavailable(
                        f"{what}: {problem}; gave up after {failures} attempts",
                        status=answer.status, error_code=code, method=method, path=path)
                delay = backoff_delay(failures, policy, answer.retry_after)
                logger.warning("%s: %s (attempt %d/%d); retrying in %.1f s",
                               what, problem, failures, policy.max_attempts, delay)
                await self._sleep(delay)
                continue
            if answer.status is None or answer.status >= 500:
                raise ApiUnavailable(
                    f"{what}: {problem}; not retried because the API may have processed the "
                    "request (check before trying again)",
                    status=answer.status, error_code=code, method=method, path=path)
            raise ApiRequestError(
                f"{what}: the API rejected the request ({problem})",
                status=answer.status, error_code=code, method=method, path=path)

    async def _request_token(self) -> Token:
        """A new token from the token endpoint (called by TokenCache, one at a time)."""
        settings = self._settings
        body: dict[str, Any] = {
            "client_id": settings.client_id,
            "client_secret": settings.client_secret,
            "grant_type": "client_credentials",
            "scope": SCOPE,
        }
        if settings.project_id is not None:
            body["project_id"] = settings.project_id
        url = f"{settings.auth_url}{TOKEN_PATH}"
        host = self._auth_host
        policy = settings.retry
        failures = 0
        while True:
            # The token's lifetime counts from the request, not the answer: on the safe side.
            started = self._clock()
            answer = await self._send("POST", url, token=None, json_body=body)
            code, message = self._error_details(answer)
            verdict = (classify(None, kind=RequestKind.TOKEN) if answer.error is not None
                       else classify(answer.status, code, message=message,
                                     kind=RequestKind.TOKEN))
            if verdict is Verdict.OK:
                token = parse_token_response(envelope.decode(answer.raw),
                                             auth_url=settings.auth_url, obtained_at=started)
                logger.debug("token obtained from %s; API endpoint %s", host, token.endpoint)
                return token
            problem = self._problem(answer, code, message)
            if verdict is Verdict.CREDENTIALS_REJECTED:
                raise CredentialsRejected(
                    f"credentials rejected by {host} ({problem}): {CREDENTIALS_HINT}")
            if verdict is Verdict.CREDENTIALS_SUSPECT and (failures >= 1
                                                           or policy.max_attempts == 1):
                raise CredentialsRejected(
                    f"credentials rejected by {host} (it answered {problem} twice, the "
                    "service's answer to unknown credentials; if they are right, the service "
                    f"is failing): {CREDENTIALS_HINT}")
            if verdict in (Verdict.RETRY, Verdict.CREDENTIALS_SUSPECT):
                failures += 1
                if failures >= policy.max_attempts:
                    raise ApiUnavailable(
                        f"token request to {host}: {problem}; gave up after {failures} attempts",
                        status=answer.status, error_code=code, method="POST", path=TOKEN_PATH)
                delay = backoff_delay(failures, policy, answer.retry_after)
                logger.warning("token request to %s: %s (attempt %d/%d); retrying in %.1f s",
                               host, problem, failures, policy.max_attempts, delay)
                await self._sleep(delay)
                continue
            if answer.status == 403:
                project = "" if settings.project_id is None else (
                    f", or access to project {settings.project_id} (check the project id: "
                    "--project-id, CONTENTSQUARE_PROJECT_ID or csload.toml)")
                raise AuthError(
                    f"{host} refused a token ({problem}): the credentials lack the "
                    f"'{SCOPE}' scope (enable the Data Export API for them){project}")
            raise AuthError(f"token request to {host} failed ({problem})")

    async def _send(
        self,
        method: str,
        url: str,
        *,
        token: Token | None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> Answer:
        """One HTTP attempt inside the API limiter; transport errors become an Answer."""
        session = self._require_session()
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token.access_token}"
        data = None
        if json_body is not None:
            data = orjson.dumps(json_body)
            headers["Content-Type"] = "application/json"
        proxy = self._proxies.for_url(url)
        # The token request's proxy until the API is called: then the API endpoint's.
        self._observed.proxy = shown(proxy)
        path = urlsplit(url).path
        async with self._limiter:
            answer = await ask(session, method, url, limits=self._settings.limits,
                               what=f"{method} {path}", headers=headers, params=params,
                               data=data, proxy=proxy)
        if answer.status is not None:
            if token is not None:
                self._observed.saw_date(answer.date)
            logger.debug("%s %s -> %d", method, path, answer.status)
        return answer

    def _error_details(self, answer: Answer) -> tuple[str | None, str]:
        if answer.error is not None or answer.status is None or answer.status < 300:
            return None, ""
        code, message = envelope.error_details(answer.raw)
        message = self._scrub(message)
        if is_over_limit(answer.status, code, message):
            self._observed.saw_over_limit(answer.retry_after is not None)
        return code, message

    def _problem(self, answer: Answer, code: str | None, message: str) -> str:
        """What went wrong in one attempt, as safe text: 'HTTP 400 CODE: message'."""
        if answer.error is not None:
            return self._scrub(transport.describe(answer.error))
        text = f"HTTP {answer.status}"
        if code:
            text += f" {code}"
        if message:
            text += f": {message}"
        return text

    def _scrub(self, text: str) -> str:
        token = self._tokens.current
        secrets = (self._settings.client_secret, token.access_token if token else "")
        return transport.scrub(text, secrets)

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("ExportClient is not open: use `async with ExportClient(...)`")
        return self._session
