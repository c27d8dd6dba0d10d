"""Every error csload raises, grouped by what the caller should do about it.

    CsloadError                      the root: catch this to catch everything csload raises
    ├── ConfigError                  a setting is missing or invalid; fix the configuration
    │   ├── InsecureUrlError         an http:// URL that is not a loopback address
    │   └── InvalidJobSpec           a job to create breaks the API's rules; nothing was sent
    ├── AuthError                    authentication failed
    │   └── CredentialsRejected      wrong client id / secret (401, or the service's plain 500)
    ├── ApiError                     the Export API answered with an error
    │   ├── ApiRequestError          a 4xx that retrying cannot fix (400 validation, 404, ...)
    │   └── ApiUnavailable           429 / 5xx / connection errors outlasted the retry budget
    ├── PartError                    one part of a run could not be had; its run fails, others go on
    │   ├── DownloadError            the download failed (status, connection) after retries
    │   │   ├── PartUrlExpired       storage answered 403: the signed URL or the files expired
    │   │   │   └── StorageRefused   ... with storage's clock at the time (`server_time`)
    │   │   ├── PartFilesGone        storage answered 404/410: the run's files are gone (7 days)
    │   │   │   └── StorageGone      ... with storage's clock at the time (`server_time`)
    │   │   ├── IncompleteDownload   body shorter than Content-Length, or gzip ended early
    │   │   │   └── DamagedDownload  staged parts found damaged at load time: download again
    │   │   ├── PartTooLarge         larger than `[limits] max_part_bytes` (not retried)
    │   │   └── StorageTooSlow       slower than `[limits] min_download_rate` (retried)
    │   └── PartParseError           the part's content does not parse (names the line)
    ├── RunExpired                   storage no longer serves the run's files: backfill its days
    └── StoreError                   the target database or lake cannot be used
        └── StoreLockedError         another csload process holds the target
            └── LakeConflict         another process committed to the lake during this batch

Messages name the job, run and part (and line) where they apply, and never contain a secret,
a token or a URL signature: build messages from `csload.redact` helpers only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date, datetime

    from csload.api.jobspec import Problem
    from csload.pipeline.report import SyncReport


class CsloadError(Exception):
    """Root of every csload error.

    `report`: when `csload.sync` raises it after it had committed runs (a lake's later batch
    meeting LakeConflict, a full disk), the sync's report up to the error. Those runs stay in
    the target, and the next sync loads exactly the rest. None otherwise.
    """

    report: SyncReport | None = None


class ConfigError(CsloadError):
    """A setting is missing or invalid."""


class InsecureUrlError(ConfigError):
    """A URL uses plain http and is not a loopback address."""


class InvalidJobSpec(ConfigError):
    """A create-job request breaks one or more rules of the API; nothing was sent."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            text = f"invalid job: {self.problems[0]}"
        else:
            # One line, as every error csload prints (lines and dashes ran into one another).
            text = f"invalid job ({len(self.problems)} problems): " + "; ".join(
                f"{i}. {problem}" for i, problem in enumerate(self.problems, start=1))
        super().__init__(text)


class AuthError(CsloadError):
    """Authentication against the Export API failed."""


class CredentialsRejected(AuthError):
    """The token endpoint rejected the client id / secret."""


class ApiError(CsloadError):
    """The Export API answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.method = method
        self.path = path


class ApiRequestError(ApiError):
    """A client error (4xx other than 429) that a retry cannot fix."""


class ApiUnavailable(ApiError):
    """429, 5xx or connection errors persisted beyond the retry budget."""


class PartError(CsloadError):
    """One part of a run could not be obtained or read."""

    def __init__(
        self,
        message: str,
        *,
        job_id: int | None = None,
        run_id: int | None = None,
        part_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.run_id = run_id
        self.part_id = part_id


class DownloadError(PartError):
    """Downloading a part failed."""


class PartUrlExpired(DownloadError):
    """Storage refused the part URL (403): the signed URL or the run's files expired."""


class StorageRefused(PartUrlExpired):
    """Storage answered 403, and what its clock said then (its `Date` header, if any).

    A 403 is what storage answers both for a signed URL past its lifetime and for files past
    the storage retention; only the second is final. The server's time lets the caller tell
    them apart against the files' expiration date without trusting the local clock.
    """

    def __init__(self, message: str, *, server_time: datetime | None = None,
                 job_id: int | None = None, run_id: int | None = None,
                 part_id: int | None = None) -> None:
        super().__init__(message, job_id=job_id, run_id=run_id, part_id=part_id)
        self.server_time = server_time


class PartFilesGone(DownloadError):
    """Storage answered 404/410: the run's files are gone (kept 7 days); backfill those days."""


class StorageGone(PartFilesGone):
    """Storage answered 404/410, and what its clock said then (see StorageRefused)."""

    def __init__(self, message: str, *, server_time: datetime | None = None,
                 job_id: int | None = None, run_id: int | None = None,
                 part_id: int | None = None) -> None:
        super().__init__(message, job_id=job_id, run_id=run_id, part_id=part_id)
        self.server_time = server_time


class IncompleteDownload(DownloadError):
    """The body was shorter than announced, or its gzip stream ended early or is corrupt."""


class DamagedDownload(IncompleteDownload):
    """Staged parts of a run found at load time not to be whole gzip streams: download them
    again. `part_ids`: every damaged part of the run (`part_id` is the first)."""

    def __init__(self, message: str, *, job_id: int, run_id: int, part_ids: tuple[int, ...]
                 ) -> None:
        super().__init__(message, job_id=job_id, run_id=run_id, part_id=part_ids[0])
        self.part_ids = part_ids


class PartParseError(PartError):
    """A part's content could not be parsed."""

    def __init__(
        self,
        message: str,
        *,
        job_id: int | None = None,
        run_id: int | None = None,
        part_id: int | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message, job_id=job_id, run_id=run_id, part_id=part_id)
        self.line = line


class PartTooLarge(DownloadError):
    """The part is larger than `[limits] max_part_bytes` (not retried: it would be again)."""


class StorageTooSlow(DownloadError):
    """Storage sent fewer bytes in a window than `[limits] min_download_rate` asks (retried)."""


def backfill_command(job_id: int, frequency: str | None, first: date | None,
                     last: date | None) -> str:
    """The command that exports a job's missing days `first`..`last` again: `--gaps` fills a
    daily job's gaps only; an hourly or once job's days need `--like` (or no days known)."""
    if frequency == "daily" or first is None or last is None:
        return "csload backfill --gaps"
    return f"csload backfill --like {job_id} --from {first} --to {last}"


def window_backfill_command(job_id: int, frequency: str | None, start: datetime | None,
                            end: datetime | None) -> str:
    """`backfill_command` for the UTC days of a run's window [start, end)."""
    from datetime import UTC, timedelta

    if start is None or end is None:
        return backfill_command(job_id, frequency, None, None)
    first = start.astimezone(UTC).date()
    last = max(first, (end.astimezone(UTC) - timedelta(microseconds=1)).date())
    return backfill_command(job_id, frequency, first, last)


def source_failed_message(job_id: int, frequency: str | None, start: datetime | None,
                          end: datetime | None) -> str:
    """What a run that FAILED at Contentsquare is recorded and reported with. It named
    `csload backfill --gaps` for every job, which fills a daily job's days only: for an
    hourly job it answered "nothing to do" (QA, 2026-12-08)."""
    command = window_backfill_command(job_id, frequency, start, end)
    return ("the run failed at Contentsquare (state FAILURE): it has no files; "
            f"`{command}` exports its days again with a once job")


class RunExpired(CsloadError):
    """The run's files are no longer served (older than the storage retention)."""

    def __init__(self, job_id: int, run_id: int, cause: str,
                 backfill: str = "csload backfill --gaps") -> None:
        super().__init__(
            f"job {job_id}, run {run_id}: the run's files have expired ({cause}); files are "
            f"kept 7 days after a run: backfill these days with a once job (`{backfill}` "
            "does it)"
        )
        self.job_id = job_id
        self.run_id = run_id


class StoreError(CsloadError):
    """The target store cannot be used."""


class StoreLockedError(StoreError):
    """Another process holds the target store. `holder` says which process holds what (the
    message without its advice: "database X is in use by another process (PID 12: ...)");
    `pid` is that process's id when known (it may be on another machine, for an S3 lake)."""

    def __init__(self, message: str, *, holder: str | None = None, pid: int | None = None
                 ) -> None:
        super().__init__(message)
        self.holder = holder if holder is not None else message
        self.pid = pid


class LakeConflict(StoreLockedError):
    """Another process committed to a table of the lake while this sync was writing it (the
    Delta log's optimistic concurrency): nothing of this batch was counted."""


def part_label(job_id: int | None, run_id: int | None, part_id: int | None) -> str:
    """The 'job J, run R, part P' prefix used in every part-level message."""
    bits = []
    if job_id is not None:
        bits.append(f"job {job_id}")
    if run_id is not None:
        bits.append(f"run {run_id}")
    if part_id is not None:
        bits.append(f"part {part_id}")
    return ", ".join(bits)
