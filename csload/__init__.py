"""csload: load Contentsquare Data Export API runs into DuckDB or Parquet, exactly once."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The errors are cheap (no imports of their own) and every caller wants them: eager.
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

if TYPE_CHECKING:
    from csload.backfills.engine import BackfillReport, backfill, backfill_async
    from csload.config import Limits, RetryPolicy, Settings, load_settings
    from csload.doctor import DoctorReport, run_doctor, run_doctor_async
    from csload.load.status import StoreStatus
    from csload.pipeline.report import RunOutcome, RunStatus, SyncReport
    from csload.pipeline.sync import sync, sync_async
    from csload.target import connect_target as connect
    from csload.target import read_status, read_target_status

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
    "DoctorReport",
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
    "run_doctor",
    "run_doctor_async",
    "sync",
    "sync_async",
]

# Lazy (PEP 562): the rest of the public API is imported on first use, so that `import csload`
# (which every `csload` command does first) does not import the backfill engine, the pipeline,
# DuckDB and aiohttp for a command that needs none of them: eagerly, `import csload` took
# ~0.33 s instead of ~0.01 s. Public name -> (module, name in that module).
_LAZY: dict[str, tuple[str, str]] = {
    "BackfillReport": ("csload.backfills.engine", "BackfillReport"),
    "backfill": ("csload.backfills.engine", "backfill"),
    "backfill_async": ("csload.backfills.engine", "backfill_async"),
    "Limits": ("csload.config", "Limits"),
    "RetryPolicy": ("csload.config", "RetryPolicy"),
    "Settings": ("csload.config", "Settings"),
    "load_settings": ("csload.config", "load_settings"),
    "sync": ("csload.pipeline.sync", "sync"),
    "sync_async": ("csload.pipeline.sync", "sync_async"),
    "RunOutcome": ("csload.pipeline.report", "RunOutcome"),
    "RunStatus": ("csload.pipeline.report", "RunStatus"),
    "SyncReport": ("csload.pipeline.report", "SyncReport"),
    "StoreStatus": ("csload.load.status", "StoreStatus"),
    "read_status": ("csload.target", "read_status"),
    "read_target_status": ("csload.target", "read_target_status"),
    "connect": ("csload.target", "connect_target"),
    "DoctorReport": ("csload.doctor", "DoctorReport"),
    # Not `doctor`: that name is the package csload.doctor, which importing would rebind.
    "run_doctor": ("csload.doctor", "run_doctor"),
    "run_doctor_async": ("csload.doctor", "run_doctor_async"),
}

# Hidden from static type checkers, which see the real names above: with a visible
# `__getattr__`, a typo such as `csload.synk` would type-check as Any.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        try:
            module_name, attribute = _LAZY[name]
        except KeyError:
            # Also how `from csload import pipeline` falls back to importing the submodule.
            raise AttributeError(f"module 'csload' has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module_name), attribute)
        globals()[name] = value  # once imported, a plain module attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
