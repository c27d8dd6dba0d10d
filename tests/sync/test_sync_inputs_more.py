"""Inputs checked where they enter, continued (issue 19, point 4): a backfill's days and scope,
OS errors on the local disk as one line that says what to do, the staging folder as a setting
(csload only ever removes a folder of its own in it), csload.toml keys, missing settings.

Each refusal comes before anything is opened or requested: no database file, no request to the
simulator. Permissions are real: as root (which chmod does not stop) the command runs under
`setpriv` without capabilities, so that the kernel refuses it as it would a user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import anyio
import pytest
from click.testing import Result

import csload
from csload.config import RetryPolicy, Settings
from csload.errors import ConfigError, StoreError
from csload.pipeline.report import EventKind, SyncEvent
from csload.simulator import Simulator
from csload.target import Target
from tests.support.syncref import SESSIONS_JOB

BACKFILL_FIELDS = ["session_id", "view_number", "view_time", "url:page_url"]


def requests(simulator: Simulator) -> int:
    return sum(simulator.stats.requests.values())


def assert_one_line_error(result: Result | subprocess.CompletedProcess[str], code: int,
                          *words: str) -> str:
    """The command failed with `code` and one `error:` line holding every word (a usage error:
    click's `Error:` line); returns that line."""
    output = result.output if isinstance(result, Result) else result.stdout + result.stderr
    exit_code = result.exit_code if isinstance(result, Result) else result.returncode
    assert exit_code == code, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.lower().startswith("error:")]
    assert len(lines) == 1, output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# -- a backfill's days and scope --------------------------------------------------------------


@pytest.fixture
def loop_settings(simulator: Simulator, sim_url: str) -> Settings:
    """Settings reaching the simulator served in the test's own loop, whose clock the
    backfill's waits move (a backfill polls its runs)."""
    client_id, client_secret, project_id = simulator.credentials
    return Settings(client_id=client_id, client_secret=client_secret, project_id=project_id,
                    auth_url=sim_url, retry=RetryPolicy(max_attempts=3, base_delay=0.01))


async def test_a_backfill_takes_its_days_as_iso_strings(
        loop_settings: Settings, simulator: Simulator, db_path: Path) -> None:
    async def sleep(seconds: float) -> None:
        simulator.advance(seconds)
        await anyio.sleep(0)

    report = await csload.backfill_async(
        loop_settings, scope="views", date_from="2026-11-20", date_to=" 2026-11-21 ",
        fields=BACKFILL_FIELDS, table="views_archive", db=db_path, sleep=sleep,
        clock=simulator.clock.now, poll_interval=10)

    assert report.exit_code == 0, report.to_json()
    assert [(i.window.start, i.window.last) for i in report.items] == [
        (date(2026, 11, 20), date(2026, 11, 21))]
    con = csload.connect(db_path, read_only=True)
    try:
        days = con.execute("SELECT DISTINCT _date FROM views_archive ORDER BY 1").fetchall()
    finally:
        con.close()
    assert days == [(date(2026, 11, 20),), (date(2026, 11, 21),)]


@pytest.mark.parametrize(("options", "message"), [
    ({"date_from": "2026/11/20", "date_to": "2026-11-21"},
     r"date_from must be a day \(a datetime.date or 'YYYY-MM-DD'\), got '2026/11/20'"),
    ({"date_from": datetime(2026, 11, 20), "date_to": "2026-11-21"},
     r"date_from must be a day .*got datetime.datetime\(2026, 11, 20, 0, 0\)"),
    ({"date_from": "2026-11-20", "date_to": "2026-11-31"}, r"date_to must be a day"),
    ({"date_from": "2026-11-21", "date_to": "2026-11-20"},
     r"date_to 2026-11-20 is before date_from 2026-11-21"),
    ({"date_from": "2026-11-20", "date_to": "2026-11-21", "scope": "pageviews"},
     r"scope must be one of sessions, views, got 'pageviews'; did you mean views\?"),
    ({"date_from": "2026-11-20", "date_to": "2026-11-21", "scope": None, "like": 0,
      "fields": ()}, r"like: a job id is a positive integer, got 0"),
    ({"date_from": "2026-11-20", "date_to": "2026-11-21", "staging_dir": "no-such-folder"},
     r"staging folder no-such-folder does not exist: create it, or choose another"),
])
def test_a_bad_backfill_argument_is_refused_before_anything(
        settings: Settings, simulator: Simulator, db_path: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, options: dict[str, object], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    arguments: dict[str, object] = {"scope": "views", "fields": BACKFILL_FIELDS, **options}
    with pytest.raises(ConfigError, match=message):
        csload.backfill(settings, db=db_path, **arguments)
    assert not db_path.exists()
    assert requests(simulator) == 0


@pytest.mark.parametrize(("arguments", "words"), [
    (["--from", "2026-11-21", "--to", "2026-11-20", "--scope", "views", "--field", "url"],
     ["--to 2026-11-20 is before --from 2026-11-21"]),
    (["--from", "2026-11-20", "--to", "2026-11-21", "--like", "0"],
     ["--like: a job id is a positive integer, got 0"]),
    (["--gaps", "--field", "url"], ["--gaps", "--like or --field"]),
])
def test_bad_backfill_options_are_usage_errors(
        cli: Callable[..., Result], simulator: Simulator, db_path: Path,
        arguments: list[str], words: list[str]) -> None:
    result = cli("backfill", "--db", str(db_path), *arguments)

    assert_one_line_error(result, 2, *words)
    assert not db_path.exists()
    assert requests(simulator) == 0


# -- OS errors on the local disk --------------------------------------------------------------


def test_a_file_in_the_way_of_the_staging_folder_is_one_line_that_says_what_to_do(
        settings: Settings, simulator: Simulator, db_path: Path,
        cli: Callable[..., Result]) -> None:
    in_the_way = Target(db=db_path).staging_dir()
    in_the_way.write_text("not a folder")

    with pytest.raises(StoreError) as raised:
        csload.sync(settings, db=db_path)
    assert str(raised.value) == (
        f"cannot use the staging folder {in_the_way} for the downloads: a file has that name; "
        "move that file away, or choose a staging folder elsewhere (--staging-dir, "
        "staging_dir in csload.toml, or CSLOAD_STAGING_DIR)")
    # Refused when the target opened, before the API: a first sync asks for its token only
    # (csload.pipeline.first_sync).
    assert dict(simulator.stats.requests) == {"token": 1}
    result = cli("sync", "--db", str(db_path))
    assert_one_line_error(result, 1, str(in_the_way), "a file has that name", "--staging-dir")
    assert in_the_way.read_text() == "not a folder"   # not csload's to remove


def test_a_database_under_a_file_is_one_line(
        settings: Settings, simulator: Simulator, tmp_path: Path,
        cli: Callable[..., Result]) -> None:
    (tmp_path / "plain").write_text("")
    db = tmp_path / "plain" / "cs.duckdb"

    with pytest.raises(ConfigError, match=f"cannot create the database {db}: "
                                          f"{tmp_path / 'plain'} is a file, not a folder"):
        csload.sync(settings, db=db)
    assert_one_line_error(cli("sync", "--db", str(db)), 1, "is a file, not a folder")
    assert requests(simulator) == 0


def test_a_zero_byte_database_file_is_one_line_that_says_what_to_do(
        settings: Settings, tmp_path: Path, cli: Callable[..., Result]) -> None:
    # What a first sync killed while DuckDB created the file leaves (QA's kill soak): every
    # command failed with DuckDB's "exists, but it is not a valid DuckDB database file".
    db = tmp_path / "cs.duckdb"
    db.write_bytes(b"")
    said = (f"{db} is an empty file (0 bytes), not a DuckDB database: a sync stopped while "
            "DuckDB created it leaves one. It holds nothing: delete it and run the command "
            "again")

    with pytest.raises(StoreError) as raised:
        csload.sync(settings, db=db)
    assert str(raised.value) == said
    with pytest.raises(StoreError) as raised:
        csload.status(db)
    assert str(raised.value) == said
    for command in ("sync", "status"):
        assert_one_line_error(cli(command, "--db", str(db)), 1, "is an empty file (0 bytes)",
                              "delete it")
    assert db.stat().st_size == 0   # left to the user: another process may be creating it
    db.unlink()
    assert csload.sync(settings, db=db).exit_code == 0


def test_an_empty_target_path_is_refused_not_taken_for_the_current_folder(
        settings: Settings, simulator: Simulator, tmp_path: Path,
        cli: Callable[..., Result]) -> None:
    """`csload sync --parquet "$LAKE"` with LAKE unset made the current folder a lake (its
    `_csload/` and a folder per table); `--db ""` failed on DuckDB's "Could not read from
    file ...: Is a directory"."""
    for target in ({"db": ""}, {"db": " "}, {"db": Path("")}, {"parquet": ""}):
        with pytest.raises(ConfigError, match=r"path is empty \(an unset variable"):
            csload.sync(settings, **target)   # type: ignore[arg-type]
    for flag in ("--db", "--parquet"):
        for command in (("sync",), ("status",)):
            assert_one_line_error(cli(*command, flag, ""), 1, "path is empty")
    assert requests(simulator) == 0
    assert list(tmp_path.iterdir()) == []   # the folder the CLI ran in: nothing made


def unprivileged() -> list[str]:
    """The command prefix that makes the kernel check permissions for this process as for a
    user: none for a user; for root, `setpriv` dropping every capability (CAP_DAC_OVERRIDE
    lets root write anywhere)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "as root, this test needs setpriv (util-linux) to drop caps"
    return [setpriv, "--bounding-set=-all", "--inh-caps=-all"]


@contextmanager
def read_only_folder(path: Path) -> Iterator[Path]:
    path.mkdir()
    path.chmod(0o555)
    try:
        yield path
    finally:
        path.chmod(0o755)


def csload_child(child_env: dict[str, str], cwd: Path, *args: str
                 ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*unprivileged(), sys.executable, "-m", "csload", *args],
                          env=child_env, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


def test_a_database_folder_that_is_not_writable_is_one_line(
        child_env: dict[str, str], simulator: Simulator, tmp_path: Path) -> None:
    with read_only_folder(tmp_path / "readonly") as folder:
        done = csload_child(child_env, tmp_path, "sync", "--db", "readonly/cs.duckdb")

        line = assert_one_line_error(done, 1, "cannot write in folder readonly",
                                     "readonly/cs.duckdb", "Permission denied",
                                     "make the folder writable, or choose another database")
        assert ".staging" not in line
        assert list(folder.iterdir()) == []
    assert requests(simulator) == 0


def test_a_staging_folder_that_is_not_writable_is_one_line(
        child_env: dict[str, str], simulator: Simulator, tmp_path: Path) -> None:
    with read_only_folder(tmp_path / "stage") as stage:
        done = csload_child(child_env, tmp_path, "sync", "--db", "cs.duckdb",
                            "--staging-dir", "stage")

        assert_one_line_error(done, 1, "cannot write in the staging folder stage",
                              "Permission denied", "--staging-dir")
        assert list(stage.iterdir()) == []
    assert not (tmp_path / "cs.duckdb").exists()
    assert requests(simulator) == 0


# -- the staging folder, a setting ------------------------------------------------------------


class StagedParts:
    """An event sink that lists, at each downloaded part, the part files staged under `root`
    and beside the database (where they go by default)."""

    def __init__(self, root: Path, db: Path) -> None:
        self.root, self.db = root, db
        self.seen: set[Path] = set()
        self.beside_db: set[Path] = set()

    def __call__(self, event: SyncEvent) -> None:
        if event.kind is EventKind.PART_DOWNLOADED:
            self.seen.update(self.root.glob("**/part-*.gz"))
            self.beside_db.update(self.db.parent.glob(f".{self.db.name}.staging/**/*.gz"))


def test_downloads_are_staged_in_a_folder_of_csloads_own_inside_the_chosen_one(
        settings: Settings, tmp_path: Path, db_path: Path) -> None:
    stage = tmp_path / "stage"
    (stage / "mine").mkdir(parents=True)
    (stage / "mine" / "notes.txt").write_text("the user's")
    (stage / "keep.csv").write_text("the user's")
    ours = Target.of(db=db_path, parquet=None, staging_dir=stage).staging_dir()
    assert ours.parent == stage and ours.name.startswith("csload-downloads-")
    # A killed sync's leftover, in csload's own folder: removed when the next sync opens.
    (ours / "job-1" / "run-2").mkdir(parents=True)
    (ours / "job-1" / "run-2" / "part-00001.csv.gz").write_bytes(b"stale")
    parts = StagedParts(stage, db_path)

    report = csload.sync(settings, db=db_path, jobs=[SESSIONS_JOB], staging_dir=stage,
                         on_event=parts)

    assert report.exit_code == 0 and report.loaded
    assert parts.seen and all(path.is_relative_to(ours) for path in parts.seen)
    assert ours / "job-1" / "run-2" / "part-00001.csv.gz" not in parts.seen
    assert not parts.beside_db
    assert sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*")) == [
        "keep.csv", "mine", "mine/notes.txt"]


def test_settings_staging_dir_is_where_a_sync_stages(
        settings: Settings, tmp_path: Path, db_path: Path) -> None:
    stage = tmp_path / "stage"
    stage.mkdir()
    parts = StagedParts(stage, db_path)
    chosen = Settings(client_id=settings.client_id, client_secret=settings.client_secret,
                      project_id=settings.project_id, auth_url=settings.auth_url,
                      retry=settings.retry, staging_dir=stage)

    assert csload.sync(chosen, db=db_path, jobs=[SESSIONS_JOB], on_event=parts).loaded
    assert parts.seen and not parts.beside_db


@pytest.mark.parametrize("how", ["flag", "environment", "file"])
def test_the_cli_stages_where_it_is_told(
        cli: Callable[..., Result], sim_env: dict[str, str], tmp_path: Path, db_path: Path,
        how: str) -> None:
    stage = tmp_path / "stage"
    stage.mkdir()
    leftover = Target.of(db=db_path, parquet=None, staging_dir=stage).staging_dir() / "old"
    leftover.mkdir(parents=True)
    args = ["sync", "--db", str(db_path), "--job", str(SESSIONS_JOB)]
    if how == "flag":
        result = cli(*args, "--staging-dir", str(stage))
    elif how == "environment":
        sim_env["CSLOAD_STAGING_DIR"] = str(stage)
        result = cli(*args)
    else:
        (tmp_path / "csload.toml").write_text(f"staging_dir = {str(stage)!r}\n")
        result = cli(*args)

    assert result.exit_code == 0, result.output
    # The sync emptied csload's own folder there (and removed it when done), nothing else.
    assert not leftover.exists() and list(stage.iterdir()) == []


def test_a_staging_dir_that_is_not_a_folder_is_refused_before_anything(
        settings: Settings, simulator: Simulator, tmp_path: Path, db_path: Path,
        cli: Callable[..., Result]) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")

    with pytest.raises(ConfigError, match=f"staging folder {plain} is not a folder"):
        csload.sync(settings, db=db_path, staging_dir=plain)
    with pytest.raises(ConfigError, match="does not exist"):
        csload.sync(settings, db=db_path, staging_dir=tmp_path / "missing")
    assert_one_line_error(cli("sync", "--db", str(db_path), "--staging-dir", str(plain)), 2,
                          "--staging-dir")
    assert not db_path.exists()
    assert requests(simulator) == 0


# -- csload.toml and missing settings, from the command line ----------------------------------


@pytest.mark.parametrize("command", [["sync"], ["status"], ["backfill", "--gaps"]])
def test_a_misplaced_settings_key_stops_every_command(
        cli: Callable[..., Result], simulator: Simulator, tmp_path: Path, db_path: Path,
        command: list[str]) -> None:
    (tmp_path / "csload.toml").write_text('concurrency = 2\n[limits]\nlock_wait = "1m"\n')

    result = cli(*command, "--db", str(db_path))

    assert_one_line_error(result, 1, 'csload.toml: unknown key "concurrency" at the top '
                                     "level; did you mean [limits] download_concurrency?")
    assert not db_path.exists()
    assert requests(simulator) == 0


def test_every_missing_setting_is_said_at_once(
        cli: Callable[..., Result], sim_env: dict[str, str], simulator: Simulator) -> None:
    for name in ("CONTENTSQUARE_CLIENT_ID", "CONTENTSQUARE_CLIENT_SECRET"):
        del sim_env[name]

    result = cli("sync", "--dry-run")

    assert_one_line_error(result, 1, "missing settings: client_id (set CONTENTSQUARE_CLIENT_ID,"
                                     " pass --client-id, or put client_id in csload.toml) and "
                                     "client_secret (set CONTENTSQUARE_CLIENT_SECRET")
    assert requests(simulator) == 0


def test_a_home_path_is_expanded_for_a_database_and_a_lake(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`parquet="~/lake"`: the lake opened at the home folder and staged its downloads in
    `./~/lake`, and every sync failed; `db="~/cs.duckdb"` was a file in a `~` folder, not
    found by status (QA, 2026-12-08)."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)

    lake = csload.sync(settings, parquet="~/lake", jobs=[SESSIONS_JOB])
    db = csload.sync(settings, db="~/cs.duckdb", jobs=[SESSIONS_JOB])

    assert lake.exit_code == 0 and db.exit_code == 0, (lake.to_json(), db.to_json())
    assert (home / "lake" / "sessions").is_dir() and (home / "cs.duckdb").is_file()
    assert list(elsewhere.iterdir()) == []
    for target in ({"parquet": "~/lake"}, {"db": "~/cs.duckdb"}):
        [table] = [t for t in csload.status(**target).tables if t.table == "sessions"]
        assert table.rows > 0
