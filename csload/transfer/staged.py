"""The hand-off from the transfer stage to the load stage: a run whose parts are all on disk.

    StagedPart, StagedRun   what csload.transfer.stage made and a store applies
    check_run_parts         the cap on the parts one run may list ([limits] max_run_parts),
                            checked before anything of it is downloaded, and again by a store
                            given runs directly (doctor's trial load, tests)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from csload.errors import ConfigError, part_label

if TYPE_CHECKING:
    # Types only: a staged run carries the API's objects as they came.
    from csload.api.models import Job, Run
    from csload.config import Limits


@dataclass(frozen=True, slots=True)
class StagedPart:
    part_id: int
    path: Path
    bytes: int


@dataclass(frozen=True, slots=True)
class StagedRun:
    """A successful run whose parts are all on local disk. `table` defaults to the job's scope."""

    job: Job
    run: Run
    parts: tuple[StagedPart, ...]
    table: str = ""

    def __post_init__(self) -> None:
        if not self.table:
            object.__setattr__(self, "table", self.job.scope)


def check_run_parts(job_id: int, run_id: int, parts: int, limits: Limits) -> None:
    """ConfigError when a run lists more parts than `limits.max_run_parts`."""
    if parts > limits.max_run_parts:
        raise ConfigError(
            f"{part_label(job_id, run_id, None)}: the run lists {parts} parts, more than the "
            f"{limits.max_run_parts} csload loads in one run; raise [limits] max_run_parts "
            "to load it")
