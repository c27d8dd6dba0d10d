"""`Limits` and `RetryPolicy`: how hard csload pushes the API, the storage host and the disk,
and how long a lake keeps what it replaced; `parse_duration`: how durations are given. Read
from `[limits]` and `[retry]` of csload.toml by csload.config."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

from csload.errors import ConfigError

# The Export API allows 10 concurrent requests per project, shared by every credential.
API_CONCURRENCY_CEILING = 10

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([smhd]?)\s*", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Durations set in csload.toml as text ("7d"), parsed by csload.config.load_settings.
DURATION_LIMITS = ("lock_wait", "lake_file_retention", "lake_log_retention")
_TEN_YEARS = 10 * 365 * 86400.0


def parse_duration(value: object, what: str = "lock_wait") -> float:
    """Seconds from "30s", "5m", "1h", "7d", "90" or a number: how --wait, lock_wait and the
    lake's retention windows are given."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        found = _DURATION.fullmatch(str(value)) if isinstance(value, str) else None
        if found is None:
            raise ConfigError(f"{what}: expected a duration such as 30s, 5m, 1h, 7d or a "
                              f"number of seconds, got {value!r}")
        seconds = float(found[1]) * _UNIT_SECONDS[found[2].lower()]
    if not seconds >= 0:   # nan too (TOML has it); inf is no deadline (backfill's max_wait)
        raise ConfigError(f"{what}: a duration is a number of seconds, at least 0, got "
                          f"{value!r}")
    return seconds


@dataclass(frozen=True, kw_only=True)
class Limits:
    """How hard csload pushes the API and the storage host."""

    api_concurrency: int = 8
    download_concurrency: int = 4
    connect_timeout: float = 30.0
    # A read timeout (time between bytes), never a total timeout: parts can be large.
    read_timeout: float = 120.0
    chunk_size: int = 1 << 20
    # Runs downloaded ahead of the writer (bounds staging disk space and in-flight work). The
    # writer's batches leave one of them per download connection free to keep downloading.
    max_staged_runs: int = 16
    # How long the writer waits for the next run to arrive before it applies what is ready:
    # runs that arrive in quick succession (a fast network) go into one batch, which loads
    # faster than several; on a slow network each run is applied as soon as it arrives.
    batch_linger: float = 0.25
    # Seconds a sync waits for its target while another process holds it (a notebook's
    # connection to the database, another sync), trying again every second; 0 fails at once.
    # `csload sync --wait 10m`, CSLOAD_LOCK_WAIT, or `lock_wait = "10m"` under [limits].
    lock_wait: float = 0.0
    # The most seconds one API call may take, connection to last byte, each attempt: a server
    # sending a byte now and then never trips `read_timeout` (issue 16: one byte every 119 s
    # kept a request alive). Part downloads are not API calls: they have no total.
    api_timeout: float = 300.0
    # The most bytes of an API answer, counted after decompression (csload.api.body): a small
    # gzip answer can inflate to gigabytes. The Export API's answers are far smaller.
    max_response_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        for name in DURATION_LIMITS:   # "12h" in Python too, as in csload.toml and lake.md
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, parse_duration(getattr(self, name), name))
        check_types(self)
        if not 1 <= self.api_concurrency <= API_CONCURRENCY_CEILING:
            raise ConfigError(f"api_concurrency must be between 1 and {API_CONCURRENCY_CEILING} "
                              f"(the API's per-project limit), got {self.api_concurrency}")
        if self.download_concurrency < 1:
            raise ConfigError(f"download_concurrency must be at least 1, got "
                              f"{self.download_concurrency}")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigError("timeouts must be positive")
        if self.max_staged_runs < 1:
            raise ConfigError(f"max_staged_runs must be at least 1, got {self.max_staged_runs}")
        if not 0 <= self.batch_linger <= 60:
            raise ConfigError(f"batch_linger must be between 0 and 60 s, got {self.batch_linger}")
        if self.chunk_size < 1024:
            raise ConfigError(f"chunk_size must be at least 1024 bytes, got {self.chunk_size}")
        if not isinstance(self.api_timeout, int | float) or not 0 < self.api_timeout < math.inf:
            raise ConfigError(f"api_timeout must be a positive number of seconds, got "
                              f"{self.api_timeout!r}")
        if not isinstance(self.max_response_bytes, int) or self.max_response_bytes < 1 << 16:
            raise ConfigError(f"max_response_bytes must be at least 65536, got "
                              f"{self.max_response_bytes!r}")
        if not isinstance(self.lock_wait, int | float) or self.lock_wait < 0:
            raise ConfigError(f"lock_wait must be a number of seconds, at least 0, got "
                              f"{self.lock_wait!r}")
        _check_load_caps(self)
        _check_lake_retention(self)

    # Caps on what one run's files may hold (csload.load.limits): a run beyond one fails with
    # a message naming the cap, never the sync. Columns of one part's header (CSV) or first
    # object (JSONL); characters of one of its column names; its columns the job does not
    # list (each a table column for ever); parts one run may list; bytes of one part (16 GiB).
    max_columns: int = 500
    max_column_name: int = 256
    max_unknown_columns: int = 100
    max_run_parts: int = 10_000
    max_part_bytes: int = 16 << 30
    # Bytes/s a part download must keep over `min_rate_window` s, or it is retried (0: off).
    min_download_rate: float = 1024.0
    min_rate_window: float = 60.0
    # A lake's housekeeping (csload.lake.store, docs/lake.md). The files a batch replaced
    # stay `lake_file_retention` seconds, so running readers and time travel keep working; then
    # the close of a sync that wrote the table deletes them, with the files a crashed sync left
    # (`lake_vacuum = false`: never; vacuum the tables yourself). Log entries older than
    # `lake_log_retention` go at deltalake's checkpoints: time travel reaches back that far at
    # most. Both are also the tables' Delta properties (deletedFileRetentionDuration,
    # logRetentionDuration), which Spark's VACUUM and other writers follow.
    lake_file_retention: float = 7 * 86400.0
    lake_log_retention: float = 30 * 86400.0
    lake_vacuum: bool = True


_KINDS = {"int": "a whole number", "float": "a finite number", "bool": "true or false"}
# Settings whose own check says their type and range in one message.
_TYPES_CHECKED_WITH_RANGE = frozenset({
    "api_timeout", "max_response_bytes", "lock_wait", "max_columns", "max_column_name",
    "max_unknown_columns", "max_run_parts", "max_part_bytes", "min_download_rate",
    "min_rate_window", "lake_file_retention", "lake_log_retention", "lake_vacuum"})


def check_types(settings: Limits | RetryPolicy) -> None:
    """ConfigError naming the setting whose value is not of its type (`api_concurrency =
    8.5` failed deep in a sync as "a bug in csload", `"4"` as "'<' not supported between
    instances of 'str' and 'int'"; `2.5` downloads at once were taken)."""
    for setting in fields(settings):
        if setting.name in _TYPES_CHECKED_WITH_RANGE:
            continue
        value = getattr(settings, setting.name)
        kind = str(setting.type)
        if kind == "bool":
            right = isinstance(value, bool)
        elif kind == "int":
            right = isinstance(value, int) and not isinstance(value, bool)
        else:   # TOML's inf and nan are floats: a timeout of nan timed out every read
            right = (isinstance(value, int | float) and not isinstance(value, bool)
                     and math.isfinite(value))
        if not right:
            raise ConfigError(f"{setting.name} must be {_KINDS.get(kind, kind)}, got {value!r}")


def _check_load_caps(limits: Limits) -> None:
    for name in ("max_columns", "max_column_name", "max_unknown_columns", "max_run_parts",
                 "max_part_bytes"):
        value = getattr(limits, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a whole number, at least 1, got {value!r}")
    for name, least in (("min_download_rate", 0.0), ("min_rate_window", 0.001)):
        value = getattr(limits, name)
        if type(value) not in (int, float) or not least <= value < 1e15:
            raise ConfigError(f"{name} must be a number, at least {least:g}, got {value!r}")


def _shown(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _check_lake_retention(limits: Limits) -> None:
    for name, least in (("lake_file_retention", 0.0), ("lake_log_retention", 3600.0)):
        value = getattr(limits, name)
        if type(value) not in (int, float) or not least <= value <= _TEN_YEARS:
            shown = _shown(value) if type(value) in (int, float) else repr(value)
            raise ConfigError(f"{name} must be a duration from {_shown(least)} to 10 years "
                              f"(\"7d\", \"12h\" or seconds), got {shown}")
    if limits.lake_log_retention < limits.lake_file_retention:
        # Time travel to a version needs its log entry and its files: files kept longer than
        # the log could not be read by anyone.
        raise ConfigError(
            f"lake_log_retention ({_shown(limits.lake_log_retention)}) must be at least "
            f"lake_file_retention ({_shown(limits.lake_file_retention)})")
    if not isinstance(limits.lake_vacuum, bool):
        raise ConfigError(f"lake_vacuum must be true or false, got {limits.lake_vacuum!r}")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with full jitter for 429, 5xx and connection errors."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    # A server's Retry-After above this is capped, so one bad header cannot stall a sync.
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        check_types(self)
        if self.max_attempts < 1:
            raise ConfigError(f"retry max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ConfigError("retry delays must not be negative")
