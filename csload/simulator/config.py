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

    All live: flip them on a running simulator.
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
