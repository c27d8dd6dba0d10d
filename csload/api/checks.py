"""Checks of what a caller passes to the public API: days, a scope, job ids.

Each returns the value in its checked form or raises one ConfigError naming the parameter
(or the CLI flag) and the value. Shared by the sync's selection (csload.pipeline.discover),
the backfill's plan and the API calls (csload.api.calls): one rule per kind of input.
"""

from __future__ import annotations

import difflib
import numbers
import re
from collections.abc import Iterable
from datetime import date, datetime

from csload.api.schemas import SCOPES
from csload.errors import ConfigError

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def check_day(value: object, name: str) -> date | None:
    """A day given as a `datetime.date` or an ISO "YYYY-MM-DD" string (None: not given)."""
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DAY.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{name} must be a day (a datetime.date or 'YYYY-MM-DD'), got {value!r}")


def check_window(since: object, until: object, *, flags: bool = False
                 ) -> tuple[date | None, date | None]:
    """`since` and `until` as days, refused when `since` is after `until`."""
    prefix = "--" if flags else ""
    first = check_day(since, f"{prefix}since")
    last = check_day(until, f"{prefix}until")
    if first is not None and last is not None and first > last:
        raise ConfigError(f"{prefix}since {first} is after {prefix}until {last}: "
                          "no run window can start between them")
    return first, last


def check_scope(scope: object, *, name: str = "scope") -> str | None:
    """One of SCOPES, or None (every scope)."""
    if scope is None or (isinstance(scope, str) and scope in SCOPES):
        return scope
    hint = ""
    if isinstance(scope, str):
        close = difflib.get_close_matches(scope.strip().lower(), SCOPES, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
    raise ConfigError(f"{name} must be one of {', '.join(SCOPES)}, got {scope!r}{hint}")


def check_job_ids(jobs: object, *, name: str = "jobs") -> tuple[int, ...]:
    """Job ids: a collection of positive integers."""
    if isinstance(jobs, (str, bytes)) or not isinstance(jobs, Iterable):
        raise ConfigError(f"{name} must be a list of job ids (positive integers), got {jobs!r}")
    out: list[int] = []
    for job in jobs:
        if isinstance(job, bool) or not isinstance(job, numbers.Integral) or job < 1:
            raise ConfigError(f"{name}: a job id is a positive integer, got {job!r}")
        out.append(int(job))
    return tuple(out)
