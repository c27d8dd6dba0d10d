"""A first sync asks for its token, and checks the jobs it was asked for, before it creates
the target.

Wrong credentials are a first day's commonest error; checked after the target was opened,
they left an empty 1.3 MB database (and its staging folder), or a lake folder with only
csload's own, behind a sync that loaded nothing (`--job 99999` did the same). A target that
exists already is opened first, as before: its lock is what tells two syncs apart, and opening
it overlaps the client's import (csload.pipeline.sync._open_importing_client).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from csload.pipeline.discover import Selection, check_jobs_listed

if TYPE_CHECKING:
    # Types only: the sync hands over its target and settings.
    from csload.config import Settings
    from csload.target import Target


def creates_target(target: Target) -> bool:
    """Whether opening `target` would create it here: no database file, or no local lake
    folder (or an empty one). An s3:// lake: False (nothing is left on this machine)."""
    if target.db is not None:
        return not target.db.exists()
    assert target.parquet is not None
    # A lake's module, which Target.of loaded for this lake already.
    from csload.lake.fs import is_s3_url

    if is_s3_url(target.parquet):
        return False
    root = Path(target.parquet)
    try:
        return not root.is_dir() or not any(root.iterdir())
    except OSError:   # unreadable: the open says why
        return False


async def authenticate_before_creating(target: Target, settings: Settings,
                                       selection: Selection) -> None:
    """Get a token (CredentialsRejected, AuthError, ...) when the sync would create `target`,
    and check that the jobs `selection` names exist (`--job 99999` left an empty target too);
    a folder that cannot be written is said first, as without a token (Target.check_writable)."""
    if not creates_target(target):
        return
    target.check_writable()
    from csload.api.client import ExportClient

    async with ExportClient(settings) as client:
        await client.authenticate()
        if selection.job_ids:
            check_jobs_listed(selection, await client.list_jobs(keep_unreadable=True))
