"""Settings of one simulated Contentsquare project, and the response variants it can serve.

`SimConfig` fields marked *live* are read on every request, so a test may change them on a
running simulator (`sim.config.url_lifetime = 5`); the others are read once, at construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

DEFAULT_CLIENT_ID = "sim-client"
DEFAULT_CLIENT_SECRET = "sim-secret"  # noqa: S105 - a well-known local test credential
DEFAULT_PROJECT_ID = 42


@dataclass
class Variants:
    """Shapes the real service may use (contract sections 2-5) that a client must tolerate.

    Those of sections 2-5 and the API ones of section 9 (6-9) are live: flip them on a running
    simulator. The file ones of section 9 (1-5) shape the part bodies, which are built once per
    run: set them before the first download (at construction, as `Variants.clickhouse()` is).
    """

    # The body is the payload itself, without {"success": true, "payload": ...}.
    no_envelope: bool = False
    # jobId, jobRunId and partId as numeric strings.
    string_ids: bool = False
    # "frequency": "daily" instead of {"value": "daily"} (a once job's dateRange is then lost).
    bare_frequency: bool = False
    # Run detail files without "partId" (clients use the 1-based position).
    files_without_part_id: bool = False
    # Run detail files without "expirationDate".
    files_without_expiration: bool = False
    # Token response with only access_token, expires_in and endpoint.
    minimal_token_response: bool = False
    # Wrong credentials answer a plain-text 500, as the real service was reported to do.
    credentials_error_500: bool = False
    # Storage serves parts without gzip (clients detect gzip by its magic bytes).
    uncompressed_parts: bool = False
    # JSONL parts end with an empty line ("...}\n\n"); the truth does not change.
    jsonl_blank_last_line: bool = False
    # What storage answers for a part whose run is past file retention: 403 or 404.
    expired_files_status: int = 403
    # Storage refuses (400 InvalidArgument, as S3 does for a second auth mechanism) a request
    # that carries an Authorization header; by default it is served and only counted.
    storage_rejects_authorization: bool = False
    # Storage ignores Range headers and answers 200 with the whole body (as some servers and
    # proxies do; S3 serves the range).
    storage_ignores_ranges: bool = False

    # --- contract section 9: what the real export engine (ClickHouse) may do ---------------
    # 1. CSV parts without a header row (ClickHouse's `CSV`; the contract's is `CSVWithNames`).
    csv_without_header: bool = False
    # 2. ClickHouse's CSV quoting: every String, Date and DateTime value double-quoted, arrays
    #    written as TabSeparated does (backslash escapes \\ \' \n \t \r \0 \b \f) then
    #    quoted as a CSV string.
    clickhouse_csv_quoting: bool = False
    # 3. JSONL UInt64/Int64 values as JSON strings ("18446744073709551615", ["1","2"]).
    json_quoted_int64: bool = False
    # 4. DateTime arrays to the minute in JSONL too (CSV always writes some to the minute).
    minute_time_arrays_in_json: bool = False
    # 5. Integer values wider than the contract's guessed widths (session_number > 65535, ...),
    #    and the catalog endpoint answering the documentation's coarse type names.
    wide_integers: bool = False
    coarse_catalog_types: bool = False
    # 6. live: the server clamps `limit` to this page size (None: the contract's 100), and
    #    lists runs oldest first when no `order` is sent.
    page_size: int | None = None
    runs_oldest_first_by_default: bool = False
    # 7. live: the over-limit answer: its status, whether Retry-After is sent, and its code.
    over_limit_status: int = 429
    over_limit_retry_after: bool = True
    over_limit_code: str = "TOO_MANY_REQUESTS"
    # 8. live: /dynamic-var-keys refuses bare dates (only full ISO 8601 timestamps); custom
    #    variable positions read back as strings.
    dynamic_var_keys_timestamps_only: bool = False
    custom_var_position_as_string: bool = False
    # 9. live: what POST /exports answers: "job" (the contract), "id_object" ({"jobId": n}) or
    #    "bare_id" (n); and /exports/successful-runs items without jobId.
    create_response: str = "job"
    successful_runs_without_job_id: bool = False

    @classmethod
    def clickhouse(cls) -> Variants:
        """Every section 9 variant on: what a ClickHouse-faithful server writes by default."""
        return cls(
            csv_without_header=True,
            clickhouse_csv_quoting=True,
            json_quoted_int64=True,
            minute_time_arrays_in_json=True,
            wide_integers=True,
            coarse_catalog_types=True,
            page_size=50,
            runs_oldest_first_by_default=True,
            over_limit_status=400,
            over_limit_retry_after=False,
            over_limit_code="TOO_MANY_CONCURRENT_REQUESTS",
            dynamic_var_keys_timestamps_only=True,
            custom_var_position_as_string=True,
            create_response="id_object",
            successful_runs_without_job_id=True,
        )


DIALECTS = ("contract", "clickhouse")


def dialect_variants(name: str) -> Variants:
    """The variants of a named dialect: `contract` (the default) or `clickhouse`."""
    if name == "contract":
        return Variants()
    if name == "clickhouse":
        return Variants.clickhouse()
    raise ValueError(f"unknown dialect {name!r}: expected one of {', '.join(DIALECTS)}")


@dataclass
class SimConfig:
    """One simulated project. Defaults give a small world: 3 days, 2-6 parts per run."""

    seed: int = 7
    # Days of daily runs seeded at start (the most recent days whose run has finished).
    days: int = 3
    # Mean sessions per day (each day varies by up to 10%); views average ~5 per session.
    sessions_per_day: int = 200
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = field(default=DEFAULT_CLIENT_SECRET, repr=False)
    project_id: int = DEFAULT_PROJECT_ID
    # Account-level credentials must send project_id with the token request.
    account_level_credentials: bool = False
    # Where the simulated clock starts (aware, UTC); None: the real current time.
    start_time: datetime | None = None
    # The clock follows real time from start_time (for `csload simulate`); else it only moves
    # when a test calls clock.advance().
    real_time_clock: bool = False
    # live: seconds a new token is valid.
    token_lifetime: int = 3600
    # live: seconds a new part URL is valid.
    url_lifetime: int = 900
    # live: days a run's files are kept after the run finished.
    file_retention_days: int = 7
    # live: months of data a `once` job may reach back.
    data_retention_months: int = 13
    # Maximum uncompressed bytes per part (a part always holds at least one row).
    part_max_bytes: int = 96 * 1024
    # live: concurrent API requests allowed (token endpoint included, storage excluded).
    max_concurrent_api: int = 10
    # live: Retry-After (seconds) sent with the concurrency 429.
    concurrency_retry_after: int = 1
    # Daily runs are created at this UTC hour of the next day.
    daily_run_hour: int = 4
    # Seconds between a daily run's creation and its end.
    daily_run_seconds: int = 21 * 60 + 13
    # Seconds a `once` job's run spends in each of CREATED, RUNNABLE and RUNNING.
    once_state_seconds: float = 10.0
    # Seed a SUSPENDED job with one SUCCESS and one FAILURE run before the main window.
    seed_suspended_job: bool = True
    # Path under the base URL where the API lives; the token response's endpoint points there.
    api_prefix: str = "/api"
    # live: the base of part URLs handed out, instead of the serving address (security tests:
    # an http URL off this machine, which a client must refuse to fetch). None: the server's.
    storage_base_url: str | None = None
    variants: Variants = field(default_factory=Variants)

    def env_lines(self, base_url: str) -> list[str]:
        """The environment settings a csload user needs to reach this simulator."""
        return [
            f"CONTENTSQUARE_CLIENT_ID={self.client_id}",
            f"CONTENTSQUARE_CLIENT_SECRET={self.client_secret}",
            f"CONTENTSQUARE_PROJECT_ID={self.project_id}",
            f"CONTENTSQUARE_AUTH_URL={base_url}",
        ]
