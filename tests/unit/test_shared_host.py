"""Issue 16, a shared host: what csload creates on local disk is the user's alone, and what
another local user can put in its way is refused, never used (tests run as root: another
user's folder is faked with os.chown to an unused uid).

Against the simulator over real HTTP, into a real DuckDB file (or a moto S3 lake): staging
folders another user owns, a leftover with open permissions, a guessable folder in the
temporary folder, glob characters in paths, and a `csload.toml` another user could write.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pytest

import csload
from csload.config import load_settings
from csload.errors import ConfigError, StoreError
from csload.load.sqltext import quote_ident
from csload.pipeline.report import EventKind, SyncEvent
from csload.simulator import ServerHandle, Simulator
from csload.target import Target
from tests.support.other_user import OTHER_UID

if TYPE_CHECKING:
    from tests.support.s3server import S3Server

SESSIONS_JOB = 1120


@pytest.fixture
def settings(simulator: Simulator, sim_thread: ServerHandle) -> csload.Settings:
    client_id, client_secret, project_id = simulator.credentials
    return csload.Settings(client_id=client_id, client_secret=client_secret,
                           project_id=project_id, auth_url=sim_thread.base_url)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def truth_rows(simulator: Simulator, job_id: int) -> int:
    return sum(len(simulator.truth(job_id, run.run_id)) for run in simulator.runs(job_id))


def rows_in(db: Path, table: str) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        found = con.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()  # noqa: S608
    finally:
        con.close()
    assert found is not None
    return int(found[0])


class StagingModes:
    """At each downloaded part: the modes of the staging folders and files found under `root`."""

    def __init__(self, root: Path, pattern: str) -> None:
        self.root, self.pattern = root, pattern
        self.folders: dict[Path, int] = {}
        self.files: dict[Path, int] = {}

    def __call__(self, event: SyncEvent) -> None:
        if event.kind is EventKind.PART_DOWNLOADED:
            for staging in self.root.glob(self.pattern):
                self.folders[staging] = mode(staging)
                for path in staging.rglob("part-*"):
                    self.files[path] = mode(path)


# -- staging folders --------------------------------------------------------------------------


@pytest.mark.parametrize("planted", ["folder", "link"])
@pytest.mark.hostile("a staging folder (or a link) another user planted where csload stages",
                     "refused, nothing downloaded into it")
def test_hostile_staging_folder_of_another_user_is_refused(
        settings: csload.Settings, simulator: Simulator, tmp_path: Path, planted: str) -> None:
    db = tmp_path / "cs.duckdb"
    staging = Target(db=db).staging_dir()
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o777)
    (theirs / "part-00001.csv.gz").write_bytes(b"swapped by another user")
    os.chown(theirs, OTHER_UID, OTHER_UID)
    if planted == "folder":
        theirs.rename(staging)
        kept = staging
    else:
        staging.symlink_to(theirs, target_is_directory=True)
        os.lchown(staging, OTHER_UID, OTHER_UID)
        kept = theirs

    with pytest.raises(StoreError) as raised:
        csload.sync(settings, db=db, jobs=[SESSIONS_JOB])

    message = str(raised.value)
    assert f"the staging folder {staging}" in message and f"uid {OTHER_UID}" in message, message
    assert "neither uses nor removes it" in message and "--staging-dir" in message
    assert (kept / "part-00001.csv.gz").read_bytes() == b"swapped by another user"
    assert kept.lstat().st_uid == OTHER_UID


@pytest.mark.hostile("a staging leftover of ours that others can read or write",
                     "replaced by a private (0700) folder")
def test_hostile_open_staging_leftover_is_replaced_by_a_private_folder(
        settings: csload.Settings, simulator: Simulator, tmp_path: Path) -> None:
    db = tmp_path / "cs.duckdb"
    staging = Target(db=db).staging_dir()
    planted = staging / "job-1120" / "run-1" / "part-00001.csv.gz"
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"not ours to load")
    for folder in (staging, planted.parent.parent, planted.parent):
        folder.chmod(0o777)
    seen = StagingModes(tmp_path, ".cs.duckdb.staging")

    report = csload.sync(settings, db=db, jobs=[SESSIONS_JOB], on_event=seen)

    assert report.exit_code == 0 and report.loaded
    assert seen.folders and set(seen.folders.values()) == {0o700}, seen.folders
    assert planted not in seen.files
    assert rows_in(db, "sessions") == truth_rows(simulator, SESSIONS_JOB)


@pytest.mark.hostile("a new database file on a shared host",
                     "created 0600")
def test_hostile_new_database_file_is_private(
        settings: csload.Settings, tmp_path: Path) -> None:
    db = tmp_path / "cs.duckdb"
    previous = os.umask(0o022)   # the usual umask: files readable by all
    try:
        assert csload.sync(settings, db=db, jobs=[SESSIONS_JOB]).exit_code == 0
    finally:
        os.umask(previous)
    assert mode(db) == 0o600
    assert os.umask(previous) == previous   # the process umask is as it was
    os.umask(previous)


@pytest.mark.hostile("a new database file made by the user's csload.connect(create=True), "
                     "then synced", "created 0600")
def test_hostile_database_created_by_connect_is_private(
        settings: csload.Settings, tmp_path: Path) -> None:
    """It was 0644, and kept so by the sync that filled it (QA, 2026-12-08)."""
    db = tmp_path / "mine.duckdb"
    previous = os.umask(0o022)
    try:
        csload.connect(db, create=True).close()
        assert mode(db) == 0o600
        assert csload.sync(settings, db=db, jobs=[SESSIONS_JOB]).exit_code == 0
    finally:
        os.umask(previous)
    assert mode(db) == 0o600


@pytest.mark.hostile("a guessable world-readable folder in the temporary folder (S3 lake staging)",
                     "not used: a private per-sync folder instead")
def test_hostile_guessable_temporary_staging_folder_is_not_used_for_an_s3_lake(
        settings: csload.Settings, s3_server: S3Server, tmp_path: Path) -> None:
    root = f"s3://lake/shared-host-{tmp_path.name}"
    guessable = Target(parquet=root).staging_dir()
    # Another user made the folder a sync of this lake used to stage in, open to all.
    guessable.mkdir(mode=0o777)
    guessable.chmod(0o777)
    (guessable / "job-1120").mkdir()
    os.chown(guessable, OTHER_UID, OTHER_UID)
    seen = StagingModes(guessable.parent, f"{guessable.name}-*")
    try:
        report = csload.sync(dataclasses.replace(settings, lake=s3_server.options),
                             parquet=root, jobs=[SESSIONS_JOB], on_event=seen)

        assert report.exit_code == 0 and report.loaded
        assert list(guessable.iterdir()) == [guessable / "job-1120"]   # never used
        assert guessable.lstat().st_uid == OTHER_UID
        # Staged in a folder made for that sync, of a name no one could guess, 0700.
        assert len(seen.folders) == 1 and set(seen.folders.values()) == {0o700}
        assert seen.files
        assert not any(path.exists() for path in seen.folders)   # removed when done
    finally:
        os.chown(guessable, os.geteuid(), os.getegid())
        for leftover in (guessable / "job-1120", guessable):
            leftover.rmdir()


# -- glob characters in paths -----------------------------------------------------------------


@pytest.mark.hostile("`[`, `*`, `?` in the database folder (DuckDB read a decoy folder's parts: 0"
                     " rows, \"successfully\")",
                     "paths are escaped: only its own staged parts are read, rows exact")
def test_hostile_glob_characters_in_the_database_folder_read_only_its_own_parts(
        settings: csload.Settings, simulator: Simulator, tmp_path: Path) -> None:
    """`data[1]/` as a pattern matches `data1/`: DuckDB read a decoy folder's empty parts
    there (0 rows, "successfully") instead of the staged ones."""
    db = tmp_path / "data[1]" / "cs.duckdb"
    db.parent.mkdir()
    decoy = tmp_path / "data1" / ".cs.duckdb.staging"
    job = simulator.job(SESSIONS_JOB)
    for run in simulator.runs(SESSIONS_JOB):
        for number, body in enumerate(simulator.part_bodies(SESSIONS_JOB, run.run_id), 1):
            header = body.split(b"\n", 1)[0] + b"\n" if job.format == "CSV" else b""
            part = decoy / f"job-{SESSIONS_JOB}" / f"run-{run.run_id}" / (
                f"part-{number:05d}.{job.format.lower()}.gz")
            part.parent.mkdir(parents=True, exist_ok=True)
            part.write_bytes(gzip.compress(header))

    report = csload.sync(settings, db=db, jobs=[SESSIONS_JOB])

    assert report.exit_code == 0
    assert rows_in(db, "sessions") == truth_rows(simulator, SESSIONS_JOB) > 0


@pytest.mark.parametrize(("name", "why"), [
    ("lake[1]", "which DuckDB reads as a file pattern"),
    ("lake*", "which DuckDB reads as a file pattern"),
    ("lake?", "which DuckDB reads as a file pattern"),
    # deltalake decodes it: a local lake failed at its first commit ("File not found: .../
    # lake x/..."), an S3 one was written under two prefixes (2026-12-07)
    ("lake%20x", "holds %, which Delta Lake's readers and writers read as an escape")])
@pytest.mark.hostile("glob characters or % in a lake path",
                     "refused with a clear error")
def test_hostile_glob_characters_in_a_lake_path_are_refused(
        settings: csload.Settings, tmp_path: Path, name: str, why: str) -> None:
    root = tmp_path / name
    with pytest.raises(ConfigError, match=why):
        csload.sync(settings, parquet=root, jobs=[SESSIONS_JOB])
    assert not root.exists()


# -- csload.toml ------------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "csload.toml"
    path.write_text('client_id = "id"\nclient_secret = "s3cr3t"\n')
    path.chmod(0o600)
    yield path


@pytest.mark.hostile("a `csload.toml` owned by another user (it could redirect `auth_url`, and "
                     "the secret with it)",
                     "refused, not read")
def test_hostile_config_file_of_another_user_is_refused(config_file: Path) -> None:
    os.chown(config_file, OTHER_UID, OTHER_UID)
    with pytest.raises(ConfigError) as raised:
        load_settings(config_file=config_file, environ={})
    assert str(raised.value).startswith(
        f"{config_file}: the settings file is owned by another user (uid {OTHER_UID}), so "
        "csload does not read it")
    with pytest.raises(ConfigError, match="owned by another user"):
        csload.config.read_lake_options(config_file)


@pytest.mark.hostile("a `csload.toml` others can write",
                     "refused, not read")
def test_hostile_config_file_others_can_write_is_refused(config_file: Path) -> None:
    config_file.chmod(0o666)
    with pytest.raises(ConfigError, match=r"can be written by other users \(mode 0666\).*"
                                          "chmod go-w"):
        load_settings(config_file=config_file, environ={})


@pytest.mark.hostile("a `csload.toml` holding a secret and readable by others, or naming a "
                     "foreign `auth_url`",
                     "read, with a warning for each")
def test_hostile_config_warnings(config_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="csload.config"):
        load_settings(config_file=config_file, environ={})
    assert not caplog.records   # 0600, no auth_url: nothing to say

    config_file.chmod(0o644)
    config_file.write_text('client_id = "id"\nclient_secret = "s3cr3t"\n'
                           'auth_url = "https://collector.example.net/?token=abc"\n')
    with caplog.at_level(logging.WARNING, logger="csload.config"):
        load_settings(config_file=config_file, environ={})
    said = [record.getMessage() for record in caplog.records]
    assert said == [
        f"{config_file} holds client_secret and other users can read it (mode 0644): run "
        f"`chmod 600 {config_file}`",
        f"{config_file} sets auth_url to https://collector.example.net/?<redacted>, which is "
        "not a Contentsquare host: the client id and secret are sent there"]
    assert not any("s3cr3t" in line or "abc" in line for line in said)


@pytest.mark.hostile("an `auth_url` of Contentsquare or loopback",
                     "no warning")
def test_hostile_config_auth_url_of_contentsquare_or_loopback_is_quiet(
        config_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    for url in ("https://api.eu-west-1.contentsquare.com", "http://127.0.0.1:8080"):
        config_file.write_text(f'client_id = "id"\nclient_secret = "s"\nauth_url = "{url}"\n')
        with caplog.at_level(logging.WARNING, logger="csload.config"):
            load_settings(config_file=config_file, environ={})
    assert not caplog.records


def test_temporary_folder_is_where_the_guessable_name_was(tmp_path: Path) -> None:
    # The S3 test's premise: the old staging folder of an S3 lake, in the temporary folder.
    assert Target(parquet="s3://lake/x").staging_dir().parent == Path(tempfile.gettempdir())
