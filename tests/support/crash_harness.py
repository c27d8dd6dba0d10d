"""The kill -9 harness shared by the DuckDB and the lake crash suites
(tests/reliability/test_rel_crash.py, test_rel_crash_parquet.py): the seeded crash points, the
world's broken part, running and counting a crash child (tests.support.sync_child,
tests.support.lake_sync_child), and filling a disk."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from csload.simulator import Simulator
from tests.support.children import child_command, child_environ
from tests.support.simenv import sim_child_env
from tests.support.syncref import SESSIONS_JOB, run_of

SEED = 20261126
POINTS_SLOW, POINTS_DEFAULT = 20, 6
SEAMS = {
    "download": ("download", "part-verified", "staged"),
    "load": ("store-apply", "insert", "apply", "window-rule"),
    "ledger": ("ledger-ensure", "ledger-run", "before-commit", "after-commit", "record-failed",
               "discard"),
}
# One write (of a small part) per chunk is the minimum: parts are counted, not chunks, which
# vary with how the bytes arrive.
COUNTED_AS = {"download": "part-verified"}
TOML = "[limits]\nmax_staged_runs = 1\n"


def crash_points(slow: bool, seams: Mapping[str, tuple[str, ...]] = SEAMS,
                 default: int = POINTS_DEFAULT) -> list[tuple[str, float]]:
    """Every seam once (in a seeded order, the phases taking turns), then seeded random ones
    up to 20; each with a seeded fraction of the times the sync reaches it."""
    rng = random.Random(SEED)
    queues = [rng.sample(phase, len(phase)) for phase in seams.values()]
    order: list[str] = []
    while any(queues):
        for queue in queues:
            if queue:
                order.append(queue.pop(0))
    everywhere = sorted(seam for phase in seams.values() for seam in phase)
    while len(order) < POINTS_SLOW:
        order.append(rng.choice(everywhere))
    points = [(seam, rng.random()) for seam in order]
    return points if slow else points[:default]


def parametrize_points(metafunc: pytest.Metafunc, points: list[tuple[str, float]]) -> None:
    if "point" in metafunc.fixturenames:
        metafunc.parametrize("point", points, ids=[f"{i + 1:02d}-{seam}@{frac:.2f}"
                                                   for i, (seam, frac) in enumerate(points)])


def broken_part(sim: Simulator) -> tuple[int, int, bytes]:
    """(run, part, body): a part of a sessions run whose third line is not JSON."""
    run = run_of(sim, SESSIONS_JOB, "2026-11-23")
    body = gzip.decompress(sim.part_bodies(SESSIONS_JOB, run, compressed=True)[0])
    lines = body.split(b"\n")
    lines[2] = b'{"session_id": 17, "visitor_id": '
    return run, 1, gzip.compress(b"\n".join(lines))


def run_sync_child(module: str, target: list[str], folder: Path, env: dict[str, str],
                   stop: str, action: str = "kill") -> subprocess.CompletedProcess[str]:
    """`csload sync <target>` through the crash child `module` (tests.support.sync_child, or the
    lake's tests.support.lake_sync_child), stopped at `stop` ("<seam>:<n>")."""
    config = folder / "csload.toml"
    config.write_text(TOML)
    return subprocess.run(
        child_command(module, "sync", *target, "--config", str(config)),
        env=child_environ({**env, "CSLOAD_TEST_STOP": stop, "CSLOAD_TEST_ACTION": action,
                           "CSLOAD_TEST_COUNTS": str(folder / "counts.json")}),
        cwd=folder, capture_output=True, text=True, timeout=300, check=False)


def count_seams(sim: Simulator, folder: Path, module: str, target: list[str],
                seams: Iterable[str]) -> dict[str, int]:
    """How many times an uninterrupted sync into `target` reaches each seam; each of `seams`
    must be reached (the world of `sim` has one broken part: the sync exits 3)."""
    with sim.start_in_thread() as handle:
        proc = run_sync_child(module, target, folder, sim_child_env(sim, handle.base_url), "",
                              action="count")
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    counts: dict[str, int] = json.loads((folder / "counts.json").read_text())
    for seam in seams:
        assert counts.get(COUNTED_AS.get(seam, seam), 0) > 0, f"the sync never reaches {seam}"
    return counts


def fill(folder: Path, leave: int) -> Path:
    """Fill the file system of `folder` until `leave` bytes are free."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    filler = folder / "filler"
    with filler.open("wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler
