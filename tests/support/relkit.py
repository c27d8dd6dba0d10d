"""Shared pieces of the reliability suite: budgets, the secrets scan, row accounting, summary.

    RETRY, LIMITS      the retry budget and concurrency limits every cell runs with.
    Secrets.watch(sim) records every token the simulator issues and every URL signature it
                       signs; `.scan(texts)` fails if any of them, the client secret, or
                       anything shaped like a signature parameter or a bearer token appears in
                       the texts; `.check_storage(sim)` fails if any storage request carried
                       an Authorization header or a token anywhere.
    compare(db, sim, run_ids) -> Accounting
                       rows expected (syncref.expected_tables), loaded, lost, duplicated and
                       unexpected over every table; `.assert_exact()` then checks every column
                       of every row (syncref.assert_db_matches).
    Summary            what the suite ran, written as JSON for render_results.py.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import threading
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from csload.config import Limits, RetryPolicy
from csload.simulator import SimConfig, Simulator
from csload.simulator.formats import NULL, csv_quote
from tests.support.syncref import (
    SIM_START,
    assert_db_matches,
    expected_tables,
    row_diff,
    table_names,
    table_rows,
)

# Ten attempts per request; backoff waits at most 20 ms, a server's Retry-After (the
# simulator's: 1 s) is honoured up to 60 ms, so a cell never waits on the wall clock for long
# and the log ("retrying in 0.1 s" vs "0.0 s") shows which rule set each wait.
RETRY = RetryPolicy(max_attempts=10, base_delay=0.002, max_delay=0.02, max_retry_after=0.06)
# Default API and download concurrency (8 and 4); at most two runs staged ahead of the writer,
# so that run details, downloads and loads interleave over the whole sync (a token or URL that
# expires mid-sync then meets requests still to come).
LIMITS = Limits(max_staged_runs=2)



CLIENT_SECRET = "cs-secret-7f3a9c51e2b84d06"


def world(slow: bool) -> SimConfig:
    """The simulated project of the suite: 3 days (7 when slow) of daily runs of both scopes,
    parts of at most 16 KiB (3-12 parts a run, so faults and crashes land mid-run), and a
    client secret that is easy to spot in any text. Files are kept 14 days, so that no run of
    the week (nor the suspended job's older run) has expired: every run is expected loaded."""
    return SimConfig(seed=7, days=7 if slow else 3, sessions_per_day=160 if slow else 80,
                     part_max_bytes=16 * 1024, start_time=SIM_START,
                     client_secret=CLIENT_SECRET, file_retention_days=14)


def is_slow(config: pytest.Config) -> bool:
    """`pytest --slow` or CSLOAD_SLOW=1: the long version of the suite."""
    return bool(config.getoption("--slow", default=False)) or os.environ.get(
        "CSLOAD_SLOW", "") not in ("", "0")


_SIGNATURE_PARAM = re.compile(r"(?i)signature=(?!<redacted>)[0-9a-f]{8,}")
_BEARER = re.compile(r"(?i)bearer\s+(?!<redacted>)[A-Za-z0-9._~+/=-]{12,}")


@dataclass
class Secrets:
    """What must never appear in a log line, an error, a report or an exception."""

    client_secret: str
    tokens: set[str] = field(default_factory=set)
    signatures: set[str] = field(default_factory=set)
    # What the scans covered (for the summary).
    texts_scanned: int = 0
    storage_requests_checked: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def watch(cls, sim: Simulator) -> Secrets:
        found = cls(client_secret=sim.config.client_secret)
        sim.stats.keep_requests = True
        issue, sign = sim.tokens.issue, sim.signer.sign

        def issue_and_remember(now: datetime, lifetime: int) -> str:
            token = issue(now, lifetime)
            with found._lock:
                found.tokens.add(token)
            return token

        def sign_and_remember(base_url: str, path: str, expires: int) -> str:
            with found._lock:
                found.signatures.add(sim.signer.signature(path, expires))
            return sign(base_url, path, expires)

        # Instance attributes of the simulator's own objects: csload is not touched.
        sim.tokens.issue = issue_and_remember  # type: ignore[method-assign]
        sim.signer.sign = sign_and_remember  # type: ignore[method-assign]
        return found

    def values(self) -> list[str]:
        with self._lock:
            return [self.client_secret, *self.tokens, *self.signatures]

    def scan(self, texts: Iterable[str], what: str = "output") -> int:
        """Fail if a secret is in any text; returns how many texts were scanned."""
        secrets = self.values()
        count = 0
        for text in texts:
            count += 1
            for secret in secrets:
                assert secret not in text, f"a secret leaked into {what}: {text[:300]!r}"
            for pattern in (_SIGNATURE_PARAM, _BEARER):
                leak = pattern.search(text)
                assert leak is None, f"{what} holds {leak.group(0)[:20]}...: {text[:300]!r}"
        self.texts_scanned += count
        return count

    def check_storage(self, sim: Simulator) -> int:
        """No storage request carried a token or an Authorization header; returns how many
        storage requests were checked."""
        tokens = list(self.tokens)
        assert tokens, "the simulator issued no token: nothing was checked"
        checked = 0
        for seen in sim.stats.seen:
            if not seen.kind.startswith("storage"):
                continue
            checked += 1
            names = {name.lower() for name, _ in seen.headers}
            assert "authorization" not in names, f"storage got an Authorization header: {seen}"
            blob = " ".join([seen.path, seen.query, *(value for _, value in seen.headers)])
            for token in tokens:
                assert token not in blob, f"the API token reached the storage host: {seen.path}"
        assert sim.stats.storage_with_authorization == 0
        self.storage_requests_checked += checked
        return checked


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every captured log line, formatted, with its traceback if any."""
    handler = logging.Formatter()
    out = [caplog.text]
    for record in caplog.records:
        out.append(record.getMessage())
        if record.exc_info:
            out.append(handler.formatException(record.exc_info))
    return out


def exception_texts(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


@dataclass
class Accounting:
    db: Path
    expected: Mapping[str, tuple[set[str], list[dict[str, Any]]]]
    rows_expected: int = 0
    rows_loaded: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0

    def count(self, rows: list[dict[str, Any]], table: str) -> None:
        """Add one table's loaded `rows` against what is expected of it."""
        want = self.expected[table][1] if table in self.expected else []
        diff = row_diff(rows, want)
        self.rows_expected += diff.expected
        self.rows_loaded += diff.loaded
        self.lost += diff.lost
        self.duplicated += diff.duplicated
        self.unexpected += diff.unexpected

    def fields(self) -> dict[str, int]:
        return {"rows_expected": self.rows_expected, "rows_loaded": self.rows_loaded,
                "rows_lost": self.lost, "rows_duplicated": self.duplicated,
                "rows_unexpected": self.unexpected}

    def assert_exact(self) -> None:
        assert (self.lost, self.duplicated, self.unexpected) == (0, 0, 0), self.fields()
        assert_db_matches(self.db, self.expected)


def compare(db: Path, sim: Simulator, run_ids: Sequence[int],
            expected: Mapping[str, tuple[set[str], list[dict[str, Any]]]] | None = None
            ) -> Accounting:
    """Rows of the database against the reference of `run_ids` (or `expected`), counted."""
    if expected is None:
        expected = expected_tables(sim, run_ids)
    acc = Accounting(db, expected)
    present = table_names(db) if db.exists() else set()
    for table in sorted(set(expected) | present):
        acc.count(table_rows(db, table)[1] if table in present else [], table)
    return acc


@dataclass
class Summary:
    """Lines of the results table, by area; written once at the end of the session."""

    mode: str = "default"
    entries: list[dict[str, Any]] = field(default_factory=list)

    def add(self, nodeid: str, area: str, case: str, **fields: Any) -> None:
        self.entries.append({"test": nodeid, "area": area, "case": case, **fields})

    def write(self, path: Path, outcomes: Mapping[str, str]) -> None:
        entries = [{**e, "outcome": outcomes.get(e["test"], "unknown")} for e in self.entries]
        path.write_text(json.dumps({
            "written": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": self.mode,
            "entries": entries,
        }, indent=1, default=str) + "\n")


def csv_records(text: str) -> list[tuple[int, int, list[str]]]:
    """(first physical line, last physical line, fields) of every CSV record, header first."""
    reader = csv.reader(io.StringIO(text, newline=""))
    out, previous = [], 0
    for fields in reader:
        out.append((previous + 1, reader.line_num, fields))
        previous = reader.line_num
    return out


def csv_field(value: str) -> str:
    """A field read by the csv module, written back as the export engine would: an unquoted
    \\N (NULL) stays unquoted."""
    return value if value == NULL else csv_quote(value)
