"""csload: load Contentsquare Data Export API runs into DuckDB or Parquet, exactly once."""

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

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "ApiRequestError",
    "ApiUnavailable",
    "AuthError",
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
    "Settings",
    "StoreError",
    "StoreLockedError",
    "__version__",
    "load_settings",
]
