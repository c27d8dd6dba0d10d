"""`csload.status`, `csload.connect` and `lake_files` of an s3:// lake read ./csload.toml's
`[lake]`, as the CLI does (the README: settings come from the environment and ./csload.toml, as
for the CLI). They ignored it and reached AWS instead of the endpoint the file names (found
2026-12-07)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import csload
from csload.cli import main
from csload.lake import lake_files
from csload.simulator import ServerHandle, Simulator
from tests.support.lakeutil import Lake
from tests.support.s3server import S3Server
from tests.support.simenv import sim_settings


def test_status_and_connect_of_an_s3_lake_use_the_settings_file(
        simulator: Simulator, sim_thread: ServerHandle, s3_server: S3Server, s3_lake: Lake,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = dataclasses.replace(sim_settings(simulator, sim_thread.base_url),
                                   lake=s3_server.options)
    report = csload.sync(settings, parquet=s3_lake.root)
    assert report.loaded and not report.failed
    expected = {table.table: table.rows for table in s3_lake.status().tables}
    assert expected and all(expected.values())

    monkeypatch.chdir(tmp_path)
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "csload.toml"
    # The simulator's auth URL, a loopback one, lets the endpoint be plain http (the https rule).
    config.write_text(f'auth_url = "{sim_thread.base_url}"\n[lake]\n' + "".join(
        f'{key} = "{value}"\n' for key, value in s3_server.options.items()))
    config.chmod(0o600)

    assert {t.table: t.rows for t in csload.status(parquet=s3_lake.root).tables} == expected
    con = csload.connect(parquet=s3_lake.root)
    try:
        # The lake's own table names (sessions, views, ...).
        counted = {table: con.execute(f'SELECT count(*) FROM "{table}"').fetchone()  # noqa: S608
                   for table in expected}
    finally:
        con.close()
    assert counted == {table: (rows,) for table, rows in expected.items()}
    # docs/lake.md's list of files for plain Parquet readers, as well (it went to AWS).
    files = lake_files(s3_lake.root)
    assert set(files) == set(expected) and all(f.startswith("s3://") for f in files["views"])

    # From another folder, `csload status` and `csload lake upgrade` take the file as --config
    # (they had no such option: an S3 lake set up that way could not be given to them).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    shown = CliRunner().invoke(main, ["status", "--parquet", s3_lake.root, "--json",
                                      "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    assert {t["table"]: t["rows"] for t in orjson.loads(shown.stdout)["tables"]} == expected
    upgraded = CliRunner().invoke(main, ["lake", "upgrade", s3_lake.root, "--config",
                                         str(config)])
    assert upgraded.exit_code == 0 and "nothing" in upgraded.output, upgraded.output
