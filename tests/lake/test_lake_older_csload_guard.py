"""A lake of Delta tables keeps a csload of before them out (csload.lake.layout.LEGACY_GUARD).

Found rolling a customer's csload back to a version of the manifest format (7dad507, 459b71c):
it found no `_csload/manifest/`, took the Delta lake for a new, empty one, synced into it (exit
0), and the Delta tables' data files were gone; every later sync of the current csload failed.
Such a csload reads the highest `_csload/manifest/<12 digits>.json` as the lake's current
version and refuses one of a newer format version (its `Manifest.from_bytes`, replayed in
`older_csload_reads`).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import orjson
import pytest

import csload
from csload.lake.layout import LEGACY_GUARD, LEGACY_MANIFEST_DIR
from csload.simulator import ServerHandle, Simulator
from tests.support.lakeutil import Lake
from tests.support.simenv import sim_settings

OLDER_FORMAT_VERSION = 1   # the manifest format's only version


def older_csload_reads(lake: Lake) -> str:
    """What a csload of the manifest format makes of the lake: its current version's name, or
    its refusal (the checks of its manifest.read_current and Manifest.from_bytes, in order)."""
    names = [f.rsplit("/", 1)[-1] for f in lake.files(LEGACY_MANIFEST_DIR)]
    versions = sorted(n for n in names if re.fullmatch(r"\d{12}\.json", n))
    if not versions:
        return "no lake: a new one"
    data = orjson.loads(lake.fs().read_bytes(f"{LEGACY_MANIFEST_DIR}/{versions[-1]}") or b"")
    assert data["format"] == "csload-lake", data
    if int(data["format_version"]) > OLDER_FORMAT_VERSION:
        return "refused: newer than this csload understands, upgrade csload"
    return versions[-1]


def test_a_synced_lake_refuses_an_older_csload_and_stays_a_lake(
        local_lake: Lake, simulator: Simulator, sim_thread: ServerHandle) -> None:
    settings = sim_settings(simulator, sim_thread.base_url)
    report = csload.sync(settings, parquet=local_lake.root)
    assert report.loaded and not report.failed
    assert older_csload_reads(local_lake) == ("refused: newer than this csload understands, "
                                              "upgrade csload")
    # The guard is no older format to this csload: the lake reads and syncs as before.
    simulator.advance_days(1)
    again = csload.sync(settings, parquet=local_lake.root)
    assert again.loaded and not again.failed
    assert csload.status(parquet=local_lake.root).tables


def test_a_lake_made_before_the_guard_gets_it_at_its_next_sync(
        lake: Lake, simulator: Simulator, sim_thread: ServerHandle) -> None:
    settings = dataclasses.replace(sim_settings(simulator, sim_thread.base_url),
                                   lake=lake.options or {})
    csload.sync(settings, parquet=lake.root)
    lake.fs().delete_files([LEGACY_GUARD])
    assert older_csload_reads(lake) == "no lake: a new one"
    report = csload.sync(settings, parquet=lake.root)
    assert not report.loaded and not report.failed
    assert older_csload_reads(lake).startswith("refused: ")


def test_a_folder_holding_only_the_guard_is_no_older_lake(
        tmp_path: Path, simulator: Simulator, sim_thread: ServerHandle) -> None:
    root = tmp_path / "lake"
    (root / LEGACY_MANIFEST_DIR).mkdir(parents=True)
    (root / LEGACY_GUARD).write_bytes(b"{}")
    report = csload.sync(sim_settings(simulator, sim_thread.base_url), parquet=root)
    assert report.loaded and not report.failed


@pytest.mark.parametrize("name", ["000000000001.json"])
def test_an_older_lake_beside_the_guard_is_still_upgraded_first(
        tmp_path: Path, name: str) -> None:
    """The guard's name is skipped when the older format's versions are read."""
    from csload.lake.fs import LakeFS
    from csload.lake_upgrade.older_format import manifest_versions

    root = tmp_path / "lake"
    (root / LEGACY_MANIFEST_DIR).mkdir(parents=True)
    (root / LEGACY_GUARD).write_bytes(b"{}")
    (root / LEGACY_MANIFEST_DIR / name).write_bytes(b"{}")
    assert manifest_versions(LakeFS.open(str(root), None, {})) == [1]
