"""Retry classification, Retry-After parsing and backoff bounds (csload.api.retry)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from csload.api.retry import (
    RequestKind,
    Verdict,
    backoff_delay,
    classify,
    parse_retry_after,
)
from csload.config import RetryPolicy

API = RequestKind.API
CREATE = RequestKind.API_NON_IDEMPOTENT
TOKEN = RequestKind.TOKEN
STORAGE = RequestKind.STORAGE


@pytest.mark.parametrize(
    ("status", "code", "kind", "sent", "expected"),
    [
        (200, None, API, True, Verdict.OK),
        (204, None, STORAGE, True, Verdict.OK),
        (429, "TOO_MANY_REQUESTS", API, True, Verdict.RETRY),
        (500, None, API, True, Verdict.RETRY),
        (502, None, API, True, Verdict.RETRY),
        (503, "SlowDown", STORAGE, True, Verdict.RETRY),
        (504, None, API, True, Verdict.RETRY),
        (None, None, API, True, Verdict.RETRY),
        (None, None, STORAGE, True, Verdict.RETRY),
        (400, "INVALID_PARAMETER", API, True, Verdict.FATAL),
        (403, "FORBIDDEN", API, True, Verdict.FATAL),
        (404, "NOT_FOUND", API, True, Verdict.FATAL),
        (409, None, API, True, Verdict.FATAL),
        (302, None, API, True, Verdict.FATAL),
        (401, "JWT_EXPIRED", API, True, Verdict.RENEW_TOKEN),
        (401, None, API, True, Verdict.RENEW_TOKEN),
        # Storage: 401/403/404 are answers about the URL, not about a token of ours.
        (401, None, STORAGE, True, Verdict.FATAL),
        (403, "AccessDenied", STORAGE, True, Verdict.FATAL),
        (404, "NoSuchKey", STORAGE, True, Verdict.FATAL),
        # The token endpoint.
        (200, None, TOKEN, True, Verdict.OK),
        (401, "INVALID_CREDENTIALS", TOKEN, True, Verdict.CREDENTIALS_REJECTED),
        (401, None, TOKEN, True, Verdict.CREDENTIALS_REJECTED),
        (500, None, TOKEN, True, Verdict.CREDENTIALS_SUSPECT),
        (500, "INTERNAL_SERVER_ERROR", TOKEN, True, Verdict.RETRY),
        (503, None, TOKEN, True, Verdict.RETRY),
        (429, None, TOKEN, True, Verdict.RETRY),
        (403, "FORBIDDEN", TOKEN, True, Verdict.FATAL),
        (None, None, TOKEN, True, Verdict.RETRY),
        # Creating a job: only retried when the server cannot have processed it.
        (200, None, CREATE, True, Verdict.OK),
        (429, None, CREATE, True, Verdict.RETRY),
        (None, None, CREATE, False, Verdict.RETRY),
        (None, None, CREATE, True, Verdict.FATAL),
        (500, None, CREATE, True, Verdict.FATAL),
        (503, None, CREATE, True, Verdict.FATAL),
        (400, "INVALID_PARAMETER", CREATE, True, Verdict.FATAL),
        (401, "JWT_EXPIRED", CREATE, True, Verdict.RENEW_TOKEN),
    ],
)
def test_classify(
    status: int | None, code: str | None, kind: RequestKind, sent: bool, expected: Verdict
) -> None:
    assert classify(status, code, kind=kind, request_sent=sent) is expected


NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("3", 3.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-4", 0.0),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        ("Wed, 25 Nov 2026 12:01:00 GMT", 60.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == expected


def test_backoff_grows_exponentially_up_to_max_delay() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=5.0)
    ceilings = [backoff_delay(n, policy, rand=lambda: 1.0) for n in range(1, 8)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert backoff_delay(1000, policy, rand=lambda: 1.0) == 5.0


def test_backoff_full_jitter_stays_within_bounds() -> None:
    policy = RetryPolicy(base_delay=0.25, max_delay=3.0)
    rng = random.Random(7)
    for attempt in range(1, 10):
        ceiling = min(3.0, 0.25 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, policy, rand=rng.random) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # Full jitter: the draws spread over the whole range, not bunched at the top.
        assert min(delays) < ceiling * 0.1 and max(delays) > ceiling * 0.9
    assert backoff_delay(3, policy, rand=lambda: 0.0) == 0.0


def test_backoff_uses_retry_after_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=5.0, max_retry_after=60.0)
    assert backoff_delay(1, policy, 12.0, rand=lambda: 1.0) == 12.0
    # The server knows better than the jitter: its value is used even above max_delay...
    assert backoff_delay(1, policy, 30.0) == 30.0
    # ...but capped, so one bad header cannot stall a sync.
    assert backoff_delay(1, policy, 86_400.0) == 60.0
    assert backoff_delay(1, policy, 0.0) == 0.0
