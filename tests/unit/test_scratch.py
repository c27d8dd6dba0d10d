"""csload.scratch: a sync's own folders, held by flock(2) while its process lives.

Real processes: a child makes a folder and waits; while it runs its folder is never removed,
and once it is killed (SIGKILL: no cleanup of its own) the next `remove_abandoned` removes it.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from csload.scratch import OwnFolder, remove_abandoned
from tests.support.other_user import OTHER_UID

HOLDER = """
import sys, time
from pathlib import Path
from csload.scratch import OwnFolder
own = OwnFolder.make(Path(sys.argv[1]), "csload-lake-")
(own.path / "work.duckdb").write_bytes(b"rows")
print(own.path, flush=True)
time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A process that made and holds a folder in tmp_path; killed at the end."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc, Path(proc.stdout.readline().strip())
    finally:
        proc.kill()
        proc.wait()


def test_a_folder_is_private_held_and_removed_whole(tmp_path: Path) -> None:
    own = OwnFolder.make(tmp_path, "csload-lake-")
    assert own.path.parent == tmp_path and own.path.name.startswith("csload-lake-")
    assert stat.S_IMODE(own.path.stat().st_mode) == 0o700
    (own.path / "spill").mkdir()
    (own.path / "spill" / "block").write_bytes(b"x")
    # Held by this process: another remover (this same call in another sync) leaves it.
    assert remove_abandoned(tmp_path, "csload-lake-") == []
    own.remove()
    assert not own.path.exists()
    own.remove()   # again: nothing


def test_a_running_syncs_folder_is_kept_and_a_killed_ones_removed(
        tmp_path: Path, holder: tuple[subprocess.Popen[str], Path]) -> None:
    proc, theirs = holder
    assert (theirs / "work.duckdb").read_bytes() == b"rows"

    assert remove_abandoned(tmp_path, "csload-lake-") == []
    assert (theirs / "work.duckdb").read_bytes() == b"rows"

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert theirs.is_dir()   # a kill leaves it: no cleanup ran
    assert remove_abandoned(tmp_path, "csload-lake-") == [theirs]
    assert not theirs.exists()


def test_only_the_users_own_folders_with_the_prefix_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / "csload-lake-dead"     # a killed sync's: no one holds it
    dead.mkdir()
    (dead / "work.duckdb").write_bytes(b"rows")
    others = tmp_path / "csload-lake-others"
    others.mkdir()
    os.chown(others, OTHER_UID, OTHER_UID)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "csload-lake-link"
    link.symlink_to(elsewhere, target_is_directory=True)
    a_file = tmp_path / "csload-lake-file"
    a_file.write_bytes(b"")
    not_ours = tmp_path / "other-prefix"
    not_ours.mkdir()

    assert remove_abandoned(tmp_path, "csload-lake-") == [dead]

    assert not dead.exists()
    assert others.is_dir() and others.lstat().st_uid == OTHER_UID
    assert link.is_symlink() and elsewhere.is_dir()
    assert a_file.is_file() and not_ours.is_dir()


def test_a_folder_removed_before_it_was_held_is_made_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The moment between mkdtemp and the flock: another sync's remover may take the new
    folder (free for that moment); `make` then makes another, never one it does not hold."""
    import csload.scratch as scratch

    made: list[str] = []
    real_mkdtemp = scratch.tempfile.mkdtemp

    def mkdtemp_then_a_remover(**kwargs: str) -> str:
        made.append(real_mkdtemp(**kwargs))
        if len(made) == 1:
            remove_abandoned(tmp_path, "csload-lake-")   # another sync, at that moment
        return made[-1]

    monkeypatch.setattr(scratch.tempfile, "mkdtemp", mkdtemp_then_a_remover)
    own = OwnFolder.make(tmp_path, "csload-lake-")
    monkeypatch.undo()
    assert len(made) == 2 and not Path(made[0]).exists() and own.path == Path(made[1])
    assert own.path.is_dir()
    assert remove_abandoned(tmp_path, "csload-lake-") == []   # held
    own.remove()
