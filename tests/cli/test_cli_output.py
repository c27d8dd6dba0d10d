"""`--json` failures (issue 19, point 6): every command that takes --json prints, when it fails,
a JSON error object on stdout, `{"error": {"message", "kind", "exitCode"}}`, as well as the
one `error:` line on stderr, and exits 1 (or 2 for a usage error, click's own included).

Against the simulator over real HTTP: the errors are the real ones (credentials the simulator
rejects, a job it does not have, a database that is not there). In-process (click's runner,
stdout and stderr apart), and once as a real process, whose stdout must parse as it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from csload.cli import main
from csload.cli.common import ts

WRONG_SECRET = "not-the-secret-0123456789"


def invoke(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def error_of(result: Result) -> dict[str, Any]:
    """The error object on stdout: the whole of stdout, one JSON document."""
    document = orjson.loads(result.stdout)
    assert set(document) == {"error"}, document
    error: dict[str, Any] = document["error"]
    assert set(error) == {"message", "kind", "exitCode"}, error
    return error


# Every API command with --json, made to fail the same way: the simulator rejects the secret.
API_COMMANDS = {
    "sync": ["sync", "--db", "cs.duckdb"],
    "sync --dry-run": ["sync", "--dry-run", "--db", "cs.duckdb"],
    "jobs": ["jobs"],
    "jobs show": ["jobs", "show", "1120"],
    "runs": ["runs", "1120"],
    "fields": ["fields", "--scope", "views"],
    "custom-vars": ["custom-vars"],
    "dynamic-vars": ["dynamic-vars", "--from", "2026-11-22", "--to", "2026-11-23"],
    "backfill": ["backfill", "--scope", "views", "--from", "2026-11-20", "--to", "2026-11-20",
                 "--field", "session_id", "--db", "cs.duckdb"],
}


@pytest.mark.parametrize("command", API_COMMANDS)
def test_a_failing_api_command_prints_a_json_error_on_stdout(env: dict[str, str],
                                                              command: str) -> None:
    result = invoke([*API_COMMANDS[command], "--json"],
                    {**env, "CONTENTSQUARE_CLIENT_SECRET": WRONG_SECRET})
    assert result.exit_code == 1, result.output
    error = error_of(result)
    assert error["kind"] == "CredentialsRejected"
    assert error["exitCode"] == 1
    assert "credentials rejected" in error["message"]
    # The same message as the line on stderr, which is as before.
    assert result.stderr == f"error: {error['message']}\n"
    assert WRONG_SECRET not in result.output


def test_without_json_a_failure_prints_nothing_on_stdout(env: dict[str, str]) -> None:
    result = invoke(["jobs"], {**env, "CONTENTSQUARE_CLIENT_SECRET": WRONG_SECRET})
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: credentials rejected")


@pytest.mark.parametrize("target", [["--db", "new.duckdb"], ["--parquet", "lake"],
                                    ["--parquet", "empty-lake"]])
def test_a_first_sync_refused_at_the_token_leaves_nothing_behind(env: dict[str, str],
                                                                 tmp_path: Path,
                                                                 target: list[str]) -> None:
    # Wrong credentials are a first day's commonest error: no empty database, staging folder
    # or lake folder is left for the user to find and wonder about.
    (tmp_path / "empty-lake").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = invoke(["sync", *target], {**env, "CONTENTSQUARE_CLIENT_SECRET": WRONG_SECRET})
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: credentials rejected")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("target", [["--db", "new.duckdb"], ["--parquet", "lake"]])
def test_a_first_sync_of_a_job_that_does_not_exist_leaves_nothing_behind(
        env: dict[str, str], tmp_path: Path, target: list[str]) -> None:
    result = invoke(["sync", *target, "--job", "99999"], env)
    assert result.exit_code == 1, result.output
    assert result.stderr == "error: no such export job: 99999\n"
    assert list(tmp_path.iterdir()) == []


def test_a_sync_refused_at_the_token_keeps_its_existing_database(env: dict[str, str],
                                                                  tmp_path: Path) -> None:
    assert invoke(["sync", "--db", "cs.duckdb"], env).exit_code == 0
    loaded = (tmp_path / "cs.duckdb").read_bytes()
    result = invoke(["sync", "--db", "cs.duckdb"],
                    {**env, "CONTENTSQUARE_CLIENT_SECRET": WRONG_SECRET})
    assert result.exit_code == 1 and "credentials rejected" in result.stderr
    assert (tmp_path / "cs.duckdb").read_bytes() == loaded


def test_an_api_error_names_its_kind(env: dict[str, str]) -> None:
    result = invoke(["jobs", "show", "999999", "--json"], env)
    assert result.exit_code == 1, result.output
    error = error_of(result)
    assert error["kind"] == "ApiRequestError" and "999999" in error["message"]


def test_status_of_a_missing_database(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.duckdb"
    result = invoke(["status", "--db", str(missing), "--json"], env)
    assert result.exit_code == 1, result.output
    error = error_of(result)
    assert error["kind"] == "StoreError" and str(missing) in error["message"]
    assert result.stderr == f"error: {error['message']}\n"
    assert not missing.exists()


def test_ctrl_c_outside_the_commands_own_handling_exits_130(
        env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Ctrl-C while a command starts (before its signal handling) reached click, which said
    # "Aborted!" and exited 1, a failure's code, with nothing on stdout (QA's kill soak).
    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("csload.target.read_target_status", interrupted)
    result = invoke(["status", "--db", str(tmp_path / "cs.duckdb"), "--json"], env)
    assert result.exit_code == 130, result.output
    error = error_of(result)
    assert error["kind"] == "Interrupted" and error["exitCode"] == 130
    assert result.stderr.startswith("error: interrupted by SIGINT"), result.stderr
    assert "Aborted" not in result.output


def test_a_permission_the_machine_refuses_is_no_bug_in_csload(
        env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lake another user made under umask 077 (root passes any permission, so the refusal
    is raised here where the lake's log is read): it said "unexpected PermissionError ...
    (a bug in csload ...)"."""
    log = tmp_path / "lake" / "_delta_log"

    def refused(**_: object) -> None:
        raise PermissionError(13, "Permission denied", str(log))

    monkeypatch.setattr("csload.target.read_target_status", refused)
    result = invoke(["status", "--parquet", str(tmp_path / "lake"), "--json"], env)
    assert result.exit_code == 1, result.output
    error = error_of(result)
    assert error["kind"] == "PermissionError"
    assert error["message"] == (f"permission denied: {log}: csload cannot use it as this "
                                "user; fix its permissions, or run csload as its owner")
    assert "a bug in csload" not in result.output


def test_doctor_refusing_its_save_folder(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "kept"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    result = invoke(["doctor", "--json", "--save", str(folder)], env)
    assert result.exit_code == 2, result.output
    error = error_of(result)
    assert error["kind"] == "UsageError" and "not an empty folder" in error["message"]


# Usage errors: click's own (a value that does not convert, an unknown option, given after or
# before --json) and csload's checks of the command line.
USAGE_ERRORS = {
    "bad date after --json": (["sync", "--json", "--since", "2026-13-01"], "BadParameter"),
    "bad date before --json": (["sync", "--since", "2026-13-01", "--json"], "BadParameter"),
    "two targets": (["sync", "--json", "--db", "a.duckdb", "--parquet", "lake"], "UsageError"),
    "unknown option": (["status", "--json", "--colour"], "NoSuchOption"),
    "not a job id": (["runs", "--json", "latest"], "BadParameter"),
    "jobs show": (["jobs", "--json", "show", "x"], "BadParameter"),
    # A job id of 0 was a plain failure (exit 1), "x" a usage error (exit 2).
    "jobs show 0": (["jobs", "show", "--json", "0"], "BadParameter"),
    "runs 0": (["runs", "--json", "0"], "BadParameter"),
    "backfill without days": (["backfill", "--json", "--scope", "views"], "UsageError"),
    "dynamic-vars reversed": (["dynamic-vars", "--json", "--from", "2026-11-23", "--to",
                               "2026-11-22"], "BadParameter"),
}


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_a_usage_error_prints_a_json_error_and_exits_2(env: dict[str, str], case: str) -> None:
    args, kind = USAGE_ERRORS[case]
    result = invoke(args, env)
    assert result.exit_code == 2, result.output
    error = error_of(result)
    assert error == {"message": error["message"], "kind": kind, "exitCode": 2}
    # click's own lines stay on stderr, with the same message.
    assert f"Error: {error['message']}" in result.stderr


def test_a_usage_error_without_json_prints_nothing_on_stdout(env: dict[str, str]) -> None:
    result = invoke(["sync", "--since", "2026-13-01"], env)
    assert result.exit_code == 2 and result.stdout == ""
    # After "--", "--json" is an argument, not the option.
    result = invoke(["runs", "--", "--json"], env)
    assert result.exit_code == 2 and result.stdout == ""


def test_a_real_process_prints_one_json_document(env: dict[str, str], tmp_path: Path) -> None:
    child = {k: v for k, v in os.environ.items() if not k.startswith("CONTENTSQUARE_")}
    child.update(env, CONTENTSQUARE_CLIENT_SECRET=WRONG_SECRET)
    done = subprocess.run([sys.executable, "-m", "csload", "sync", "--db",
                           str(tmp_path / "cs.duckdb"), "--json"], env=child,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    error = orjson.loads(done.stdout)["error"]
    assert error["kind"] == "CredentialsRejected" and error["exitCode"] == 1
    assert done.stderr == f"error: {error['message']}\n"


def test_a_lake_and_a_database_taken_for_each_other_are_said(tmp_path: Path) -> None:
    """csload.connect of a lake's folder said DuckDB's "IO Error: ... Is a directory";
    connect(parquet=) of a database file advised `csload sync --parquet` into the file."""
    import duckdb

    import csload
    from csload.errors import StoreError

    folder, database = tmp_path / "lake", tmp_path / "x.duckdb"
    folder.mkdir()
    duckdb.connect(str(database)).close()
    with pytest.raises(StoreError, match=r"is a folder, not a database file \(a lake\? "
                       r"csload.connect\(parquet="):
        csload.connect(str(folder))
    with pytest.raises(StoreError, match=r"is a file, not a lake's folder \(a DuckDB database"):
        csload.connect(parquet=str(database))


def test_the_apis_times_are_shown_in_utc() -> None:
    """The jobs and runs tables say "times in UTC": a time the API gave with an offset is
    shown in UTC, not in its own zone (QA, 2026-12-08)."""
    assert ts(datetime(2026, 11, 20, 1, 30, tzinfo=timezone(timedelta(hours=2)))) == \
        "2026-11-19 23:30"
    assert ts(datetime(2026, 11, 20, 1, 30)) == "2026-11-20 01:30" and ts(None) == ""
