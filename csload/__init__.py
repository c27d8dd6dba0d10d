"""csload: load Contentsquare Data Export API runs into DuckDB or Parquet, exactly once."""

from csload.backfill_engine import BackfillReport, backfill, backfill_async
from csload.config import Limits, RetryPolicy, Settings, load_settings
from csload.errors import (
    ApiError,
    ApiRequestError,
    ApiUnavailable,
    AuthError,
    ConfigError,
    CredentialsRejected,
    CsloadError,
    DownloadError,
    IncompleteDownload,
    InsecureUrlError,
    PartError,
    PartParseError,
    PartUrlExpired,
    StoreError,
    StoreLockedError,
)
from csload.pipeline import sync, sync_async
from csload.report import RunOutcome, RunStatus, SyncReport
from csload.status import StoreStatus, read_status, read_target_status
from csload.target import connect_target as connect

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "ApiRequestError",
    "ApiUnavailable",
    "AuthError",
    "BackfillReport",
    "ConfigError",
    "CredentialsRejected",
    "CsloadError",
    "DownloadError",
    "IncompleteDownload",
    "InsecureUrlError",
    "Limits",
    "PartError",
    "PartParseError",
    "PartUrlExpired",
    "RetryPolicy",
    "RunOutcome",
    "RunStatus",
    "Settings",
    "StoreError",
    "StoreLockedError",
    "StoreStatus",
    "SyncReport",
    "__version__",
    "backfill",
    "backfill_async",
    "connect",
    "load_settings",
    "read_status",
    "read_target_status",
    "sync",
    "sync_async",
]
