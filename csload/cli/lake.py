"""`csload lake upgrade ROOT`: a lake an older csload wrote, upgraded to Delta tables in place
(csload.lake_upgrade; a sync does the same when it first opens such a lake)."""

from __future__ import annotations

from pathlib import Path

import click

from csload.cli.common import fail, scrub, stdout
from csload.config import lake_options_for, read_lake_options
from csload.errors import CsloadError, StoreError


@click.group()
def lake() -> None:
    """Maintain a lake of Delta tables (what `--parquet ROOT` writes)."""


@lake.command()
@click.argument("root", metavar="ROOT")
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help="Settings file, for an s3:// lake's [lake] [default: ./csload.toml if "
                   "present]")
def upgrade(root: str, config_file: Path | None) -> None:
    """Upgrade the lake at ROOT (a folder, or s3://bucket/prefix) from the manifest format of
    an older csload to Delta tables; nothing to do for a lake that has none of it."""
    from csload.lake_upgrade.convert import upgrade as upgrade_lake
    from csload.target import Target

    try:
        options = lake_options_for(root, read_lake_options(config_file))
        # The checks of a lake path and endpoint every command makes (no glob character).
        target = Target.of(db=None, parquet=root, storage_options=options)
        assert target.parquet is not None
        changed = upgrade_lake(target.parquet, target.storage_options or None)
        if not changed and not target.exists():
            # "nothing to upgrade", exit 0, read as a success for a mistyped path.
            raise StoreError(f"no csload lake at {root}: check the path")
    except CsloadError as exc:
        fail(exc)
    if changed:
        stdout.print(scrub(f"lake {root}: upgraded to Delta tables"))
    else:
        stdout.print(scrub(f"lake {root}: nothing of an older csload's format to upgrade"))
