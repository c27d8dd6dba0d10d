"""Doctor passes against the simulator, and says what it found: the contract's files, and the
ClickHouse preset's (contract section 9: no CSV header, every string quoted, 64-bit integers as
JSON strings, timestamp arrays to the minute, wide integers, pages of 50)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from csload.config import Settings
from csload.doctor import DoctorReport, Verdict, run_doctor
from csload.simulator import Simulator
from tests.support.doctorkit import clickhouse_config

SAMPLED = ("sample_csv", "sample_jsonl")


def assert_passes(report: DoctorReport) -> None:
    verdicts = {c.id: c.verdict for c in report.checks.values()}
    assert report.exit_code == 0, verdicts
    assert all(v is Verdict.OK for v in verdicts.values()), verdicts


def test_contract_simulator(settings: Settings, db_path: Path) -> None:
    report = run_doctor(settings, db=db_path)
    assert_passes(report)
    assert report.simulator
    csv, jsonl = report["sample_csv"].data, report["sample_jsonl"].data
    assert csv["file"]["header"] is True
    assert csv["file"]["quoting"] == "minimal"
    assert csv["gzip"] is True and csv["whole"] is True
    assert csv["load"]["loaded"] and csv["load"]["rows"] == csv["file"]["records"] > 0
    assert jsonl["file"]["int64"] == "numbers"
    assert jsonl["load"]["loaded"] and jsonl["load"]["rows"] == jsonl["file"]["records"] > 0
    # The contract writes some CSV timestamp arrays to the minute, JSONL ones to the second.
    assert csv["file"]["timestampArrays"]["errors.error_time"] == "to the minute"
    assert set(jsonl["file"]["timestampArrays"].values()) == {"to the second"}
    assert report["paging"].data == {"asked": 100, "learnt": None, "longestList": 3}
    assert report["over_limit"].data["answers"] == 0
    assert report["scope"].data == {"scope": "data-export"}
    assert report["proxy"].data == {"api": None, "storage": None}
    assert abs(report["clock"].data["skewSeconds"]) < 30
    assert "does not exist yet" in report["target"].summary
    assert not db_path.exists()   # doctor creates nothing a sync would


@pytest.mark.parametrize("sim_config", [clickhouse_config()])
def test_clickhouse_preset(settings: Settings, db_path: Path) -> None:
    report = run_doctor(settings, db=db_path)
    assert_passes(report)
    csv, jsonl = report["sample_csv"].data, report["sample_jsonl"].data
    assert csv["file"]["header"] is False
    assert csv["file"]["quoting"] == "clickhouse"
    assert csv["load"]["loaded"] and csv["load"]["rows"] == csv["file"]["records"] > 0
    assert jsonl["file"]["int64"] == "strings"
    assert jsonl["file"]["timestampArrays"]["app_events.event_time"] == "to the minute"
    assert jsonl["file"]["wideIntegers"]   # values wider than the catalog's UInt16/UInt32
    assert jsonl["load"]["loaded"]
    assert report["paging"].data["learnt"] == 50
    assert report["paging"].data["asked"] == 100


def test_cli_contract(cli: Callable[..., Result], db_path: Path) -> None:
    result = cli("--db", str(db_path))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "(simulator mode)" in out
    for expected in ("header row: yes", "quoting: minimal RFC 4180 quoting",
                     "64-bit integers: JSON numbers", "csload loads it",
                     "result: csload can work with this project"):
        assert expected in out
    # Where each setting came from, never the secret itself.
    assert "client secret: set (environment CONTENTSQUARE_CLIENT_SECRET)" in out
    assert "sim-secret" not in out


@pytest.mark.parametrize("sim_config", [clickhouse_config()])
def test_cli_clickhouse(cli: Callable[..., Result], db_path: Path) -> None:
    result = cli("--db", str(db_path))
    assert result.exit_code == 0, result.output
    for expected in ("header row: no", "quoting: every string, date and array quoted",
                     "64-bit integers: JSON strings", "timestamp array app_events.event_time:"
                     " to the minute", "the server serves pages of 50 items",
                     "CSV without a header row, ClickHouse quoting; csload loads it"):
        assert expected in result.output


def test_sample_is_bounded(settings: Settings, simulator: Simulator, db_path: Path) -> None:
    """Never the whole part when it is larger than the sample: a ranged read that stops; the
    sample is cut at its last complete record and still loads."""
    report = run_doctor(settings, db=db_path, sample_bytes=4096)
    assert_passes(report)
    for check_id in SAMPLED:
        data = report[check_id].data
        assert data["bytes"] > 4096 and data["sampled"] == 4096 and data["whole"] is False
        assert data["load"]["rows"] == data["file"]["records"] > 0
    storage = [r.content for r in report.responses if r.content["kind"] == "storage"]
    assert [r["status"] for r in storage] == [206, 206]
    assert all(r["headers"]["Content-Range"].startswith("bytes 0-4095/") for r in storage)
    assert simulator.stats.storage_with_authorization == 0


def test_storage_that_ignores_ranges(settings: Settings, simulator: Simulator,
                                     db_path: Path) -> None:
    simulator.variants.storage_ignores_ranges = True
    report = run_doctor(settings, db=db_path, sample_bytes=4096)
    assert_passes(report)
    for check_id in SAMPLED:
        data = report[check_id].data
        assert data["sampled"] == 4096 and data["whole"] is False


@pytest.mark.parametrize("variant", ["uncompressed_parts", "jsonl_blank_last_line"])
def test_other_variants(settings: Settings, simulator: Simulator, db_path: Path,
                        variant: str) -> None:
    setattr(simulator.variants, variant, True)
    report = run_doctor(settings, db=db_path)
    assert_passes(report)
    if variant == "uncompressed_parts":
        assert report["sample_csv"].data["gzip"] is False
        assert "compression: none (plain text)" in report["sample_csv"].details


def test_existing_database_ledger(settings: Settings, db_path: Path) -> None:
    import csload

    csload.sync(settings, db=db_path)
    report = run_doctor(settings, db=db_path)
    assert_passes(report)
    target = report["target"]
    assert "is writable and its ledger readable" in target.summary
    assert target.data["jobs"] == 3 and target.data["failedRuns"] == 0


def test_existing_lake_ledger(settings: Settings, tmp_path: Path) -> None:
    import csload

    lake = tmp_path / "lake"
    csload.sync(settings, parquet=str(lake))
    report = run_doctor(settings, parquet=lake)
    assert_passes(report)
    target = report["target"]
    assert target.data["kind"] == "lake" and target.data["jobs"] == 3
    assert "is writable and its ledger readable" in target.summary


def test_cli_warns_of_a_settings_file_others_can_read(
        cli: Callable[..., Result], db_path: Path, tmp_path: Path, sim_env: dict[str, str],
        caplog: pytest.LogCaptureFixture) -> None:
    """The warning was logged twice on stderr, while the settings check said ok and --json
    did not carry it."""
    config = tmp_path / "csload.toml"
    config.write_text(f'client_secret = "{sim_env["CONTENTSQUARE_CLIENT_SECRET"]}"\n'
                      + config.read_text())
    config.chmod(0o644)
    env = {"CONTENTSQUARE_CLIENT_SECRET": ""}
    result = cli("--db", str(db_path), env=env)
    assert result.exit_code == 0, result.output
    said = "csload.toml holds client_secret and other users can read it (mode 0644)"
    assert "warn  settings" in result.stdout and said in result.stdout
    assert sum(said in record.getMessage() for record in caplog.records) == 1
    check = json.loads(cli("--db", str(db_path), "--json", env=env).stdout)["checks"]
    [settings] = [c for c in check if c["id"] == "settings"]
    assert settings["verdict"] == "warn" and said in settings["data"]["fileWarnings"][0]
