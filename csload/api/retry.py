"""What to do with a response, and how long to wait before the next attempt. Pure functions.

`classify` is the one place that decides whether an answer is final, worth retrying, or a sign
that the token expired. The API client, the token request and the part download all ask it.

"Slow down" is not only 429: the documentation says only that an error exists beyond 10
concurrent requests (contract section 9, point 7), so any 4xx whose errorCode or message speaks
of a rate, a concurrency or a request limit (`is_over_limit`) is retried too, with backoff
whether or not Retry-After came with it.

`backoff_delay` is exponential backoff with full jitter (delay drawn uniformly from
[0, min(max_delay, base_delay * 2**(attempt-1))]), unless the server sent `Retry-After`: then
the server's value is used as is (capped by `RetryPolicy.max_retry_after`), because the server
knows when its limit frees up and a jittered shorter wait would only earn another 429.
"""

from __future__ import annotations

import enum
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from csload.config import RetryPolicy


class Verdict(enum.Enum):
    OK = enum.auto()
    # Transient: back off and try again (429, 5xx, a cut connection, a timeout).
    RETRY = enum.auto()
    # The API token expired (or was refused): renew it once and retry at once.
    RENEW_TOKEN = enum.auto()
    # Retrying cannot help (a 4xx other than 429, or a non-idempotent request that may have
    # been processed).
    FATAL = enum.auto()
    # The token endpoint refused the client id / secret.
    CREDENTIALS_REJECTED = enum.auto()
    # The token endpoint answered a plain 500: the live service's way of saying "wrong
    # credentials", or a real outage. Worth exactly one more try.
    CREDENTIALS_SUSPECT = enum.auto()


class RequestKind(enum.Enum):
    API = enum.auto()
    # A request that may change state if the server saw it (POST /exports creates a job).
    API_NON_IDEMPOTENT = enum.auto()
    TOKEN = enum.auto()
    STORAGE = enum.auto()


# What an over-limit answer says, once camelCase and snake_case are spelt as words: "too many
# (concurrent) requests", "rate limit(ed)", "throttled", "concurrency limit", "concurrent
# requests", "request(s) limit", "limit of 10 (concurrent) requests", S3's "SlowDown". Narrow
# on purpose: a 4xx that means "fix the request" must stay final.
_OVER_LIMIT = re.compile(
    r"\btoo many\b.{0,40}?\b(?:requests?|calls?|queries|concurren\w*)\b"
    r"|\brate ?limit|\bthrottl"
    r"|\bconcurrency\b|\bconcurrent (?:requests?|calls?|connections?|limit)\b"
    r"|\brequests? limit|\blimit (?:of|on) (?:\d+ )?(?:concurrent |simultaneous )?requests?\b"
    r"|\bslow ?down\b"
)
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def _words(text: str) -> str:
    return " ".join(_CAMEL.sub(" ", text).replace("_", " ").replace("-", " ").lower().split())


def is_over_limit(status: int | None, error_code: str | None = None,
                  message: str | None = None) -> bool:
    """Whether an answer says "too many requests": 429, or a 4xx that speaks of a limit."""
    if status == 429:
        return True
    if status is None or not 400 <= status < 500:
        return False
    return any(_OVER_LIMIT.search(_words(text)) for text in (error_code, message) if text)


def classify(
    status: int | None,
    error_code: str | None = None,
    *,
    message: str | None = None,
    kind: RequestKind = RequestKind.API,
    request_sent: bool = True,
) -> Verdict:
    """The verdict for one attempt.

    `status` is None when no response arrived (connection refused or cut, timeout);
    `request_sent` is False only when the connection could not even be opened, so the server
    cannot have seen the request. `error_code` and `message` are the error body's.
    """
    if status is not None and 200 <= status < 300:
        return Verdict.OK
    if is_over_limit(status, error_code, message):
        # Refused before any work, whatever the request: even a create is safe to send again,
        # and the token endpoint counts against the same limit.
        return Verdict.RETRY
    if kind is RequestKind.TOKEN and status is not None:
        if status == 401:
            return Verdict.CREDENTIALS_REJECTED
        # Plain: no error code. A 500 with a code is the service describing an outage.
        if status == 500 and not error_code:
            return Verdict.CREDENTIALS_SUSPECT
    if kind is RequestKind.API_NON_IDEMPOTENT:
        # Retrying a create after a 5xx or a cut connection could create the job twice.
        if status is None and not request_sent:
            return Verdict.RETRY
        if status == 401:
            return Verdict.RENEW_TOKEN
        return Verdict.FATAL
    if status is None or 500 <= status < 600:
        return Verdict.RETRY
    if status == 401 and kind is RequestKind.API:
        # Any 401, not only JWT_EXPIRED: one renewal is cheap, and the live API's codes are
        # partly assumed. A second 401 in a row is fatal.
        return Verdict.RENEW_TOKEN
    return Verdict.FATAL


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if seconds != seconds or seconds in (float("inf"), float("-inf")):
            return None
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(
    attempt: int,
    policy: RetryPolicy,
    retry_after: float | None = None,
    *,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    if retry_after is not None:
        return min(max(0.0, retry_after), policy.max_retry_after)
    exponent = min(max(attempt, 1) - 1, 62)
    ceiling = min(policy.max_delay, policy.base_delay * (2.0**exponent))
    return rand() * ceiling
