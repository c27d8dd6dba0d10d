"""Third-party (aiohttp, OS, timeout) errors translated into safe text, in one place.

aiohttp's exceptions put the full request URL, query string included, into their str(): for a
part URL that is the signature. Nothing from them is shown as is: known types get a fixed
description, and any other text has its URLs reduced by `redact_url` and is then scrubbed by
`redact_text`. Callers raise csload errors `from None` so the original chain (which holds the
raw URL) is not printed with a traceback.

The aiohttp session is made and checked here too (`new_session`, `check_session`): the one
ExportClient makes for itself, and the rules a session passed in must follow.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import aiohttp

from csload.errors import ConfigError
from csload.redact import redact_text, redact_url

if TYPE_CHECKING:
    from csload.config import Limits

# What a request can raise that means "no usable response": worth a retry.
# (File errors are not among them: a full disk is no reason to retry a download.)
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    TimeoutError,
    ConnectionError,
)

class CallTimedOut(TimeoutError):
    """An API call ran out of its total time (`Limits.api_timeout`, csload.api.answer)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete answer within {seconds:g} s ([limits] api_timeout)")


_URL = re.compile(r"(?i)\b(?:https?|wss?)://[^\s'\"<>)]+")


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Free text with URLs reduced to scheme://host/path, known secrets and tokens removed."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    return redact_text(text)


def request_was_sent(exc: BaseException) -> bool:
    """False only when the connection could not be opened: the server never saw the request."""
    return not isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a transport error."""
    if isinstance(exc, CallTimedOut):
        return str(exc)
    if isinstance(exc, aiohttp.InvalidURL):
        # Its text is the URL itself.
        return "not a valid URL"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "timed out connecting"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return "timed out waiting for data"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return f"cannot connect ({reason})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the connection broke before the whole body arrived"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.TooManyRedirects):   # a ClientResponseError of status 0
        return "too many redirects (a redirect loop?)"
    if isinstance(exc, aiohttp.ClientResponseError):
        # Its str() carries the full URL; status and reason are all that is useful.
        return f"HTTP {exc.status} {scrub(exc.message or '')}".strip()
    detail = scrub(str(exc))
    name = type(exc).__name__
    return f"{name}: {detail}" if detail else name


def check_session(session: aiohttp.ClientSession) -> None:
    """A shared session must not add credentials to every request (storage would get them),
    nor take proxies and ~/.netrc credentials from the environment (csload.api.proxy)."""
    if "Authorization" in session.headers or session.auth is not None:
        raise ConfigError(
            "the aiohttp session given to ExportClient must not carry a default "
            "Authorization header or auth: part downloads would send it to the storage host")
    if session.trust_env:
        raise ConfigError(
            "the aiohttp session given to ExportClient must not have trust_env=True: it would "
            "send ~/.netrc credentials; csload reads the proxy settings itself")


def new_session(limits: Limits, **extra: Any) -> aiohttp.ClientSession:
    """The aiohttp session ExportClient makes for itself (`extra`: more options, such as
    doctor's trace hooks)."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=limits.connect_timeout, sock_read=limits.read_timeout),
        # Storage hosts must never get anything back from the API (or each other).
        cookie_jar=aiohttp.DummyCookieJar(),
        # Buffer a whole download chunk per connection: with aiohttp's 64 KiB the socket was
        # paused and resumed every 128 KiB (parts downloaded at ~600 MB/s on loopback, against
        # ~800 MB/s with this).
        read_bufsize=limits.chunk_size,
        **extra,
    )
