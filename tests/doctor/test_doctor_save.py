"""`--save DIR` holds what a bug report needs and no secret; `--json` carries every check."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import Result

from csload.doctor.report import CHECKS
from csload.simulator import SimConfig, Simulator
from tests.support.doctorkit import SIM_START
from tests.support.other_user import OTHER_UID

CLIENT_ID = "doctor-client-5e1f"
CLIENT_SECRET = "doctor-secret-93ab"
SIGNED = re.compile(r"(?i)x-amz-signature|signature=|[?&]sig=|expires=\d")


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(seed=7, days=3, sessions_per_day=40, start_time=SIM_START,
                     client_id=CLIENT_ID, client_secret=CLIENT_SECRET)


@pytest.fixture
def issued(simulator: Simulator) -> list[str]:
    """Every token the simulator issues (its own object is wrapped: csload is not touched)."""
    tokens: list[str] = []
    issue = simulator.tokens.issue

    def remember(now: datetime, lifetime: int) -> str:
        tokens.append(issue(now, lifetime))
        return tokens[-1]

    simulator.tokens.issue = remember  # type: ignore[method-assign]
    return tokens


def test_saved_files_hold_no_secret(cli: Callable[..., Result], tmp_path: Path,
                                    issued: list[str]) -> None:
    out = tmp_path / "doctor-out"
    result = cli("--save", str(out))
    assert result.exit_code == 0, result.output
    files = sorted(p for p in out.rglob("*") if p.is_file())
    names = {p.relative_to(out).as_posix() for p in files}
    assert {"README.txt", "report.json"} <= names
    responses = [n for n in names if n.startswith("responses/")]
    kinds = {json.loads((out / n).read_text())["kind"] for n in responses}
    assert kinds == {"token", "api", "storage"}
    assert any("token-POST" in n for n in responses)
    assert any("exportable-fields" in n for n in responses)
    assert sum(n.startswith("samples/") for n in names) == 2
    assert issued, "no token was issued: nothing was checked"
    for path in files:
        text = path.read_text()
        for secret in (CLIENT_SECRET, CLIENT_ID, *issued):
            assert secret not in text, f"{secret[:6]}... in {path.name}"
        assert not SIGNED.search(text), f"{SIGNED.search(text)} in {path.name}"
    token = json.loads(next((out / n).read_text() for n in responses if "token-POST" in n))
    assert token["body"]["access_token"] == "<redacted>"
    assert token["body"]["scope"] == "data-export"
    detail = next(json.loads((out / n).read_text()) for n in responses
                  if re.search(r"runs-\d+\.json$", n))
    urls = [f["url"] for f in detail["body"]["payload"]["files"]]
    assert urls and all(u.endswith("?<redacted>") for u in urls)
    sample = next(p for p in files if p.parent.name == "samples" and "csv" in p.name)
    assert sample.read_text().startswith("project_id,session_id,")   # the header, then rows
    assert "secrets removed" in result.output


def test_saved_files_after_a_failure(cli: Callable[..., Result], tmp_path: Path) -> None:
    out = tmp_path / "doctor-out"
    result = cli("--save", str(out), env={"CONTENTSQUARE_CLIENT_SECRET": "wrong-9f8e7d"})
    assert result.exit_code == 1
    for path in (p for p in out.rglob("*") if p.is_file()):
        text = path.read_text()
        assert "wrong-9f8e7d" not in text and CLIENT_ID not in text


def test_save_folder_must_be_new_or_empty(cli: Callable[..., Result], tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep me")
    result = cli("--save", str(tmp_path / "full"))
    assert result.exit_code == 2, result.output   # a usage error, as a file given for DIR is
    assert "not an empty folder" in result.output
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep me"
    (tmp_path / "a-file").write_text("keep me too")
    result = cli("--save", str(tmp_path / "a-file"))
    assert result.exit_code == 2, result.output
    assert (tmp_path / "a-file").read_text() == "keep me too"


def test_json_carries_every_check(cli: Callable[..., Result]) -> None:
    result = cli("--json")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert [c["id"] for c in report["checks"]] == list(CHECKS)
    assert report["ok"] is True and report["exitCode"] == 0 and report["simulator"] is True
    for check in report["checks"]:
        assert check["verdict"] in ("ok", "warn", "fail", "skip")
        assert check["summary"] and isinstance(check["details"], list)
    assert CLIENT_SECRET not in result.output and CLIENT_ID not in result.output


def test_json_without_settings(cli: Callable[..., Result]) -> None:
    result = cli("--json", env={"CONTENTSQUARE_CLIENT_SECRET": ""})
    assert result.exit_code == 1
    report = json.loads(result.output)
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["settings"]["verdict"] == "fail"
    assert "client_secret" in checks["settings"]["summary"]
    assert checks["settings"]["data"]["sources"]["client_secret"] == "not set"
    assert checks["target"]["verdict"] == "ok"
    assert {c["verdict"] for i, c in checks.items() if i not in ("settings", "target")} == \
        {"skip"}


def test_saved_files_are_private_whatever_the_umask(cli: Callable[..., Result],
                                                   tmp_path: Path) -> None:
    """Under umask 022 they were 0755/0644: samples/ holds the project's rows."""
    out = tmp_path / "doctor-out"
    before = os.umask(0o022)
    try:
        result = cli("--save", str(out))
    finally:
        os.umask(before)
    assert result.exit_code == 0, result.output
    folders = [out, *(p for p in out.rglob("*") if p.is_dir())]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(folders) >= 3 and len(files) >= 4
    assert {stat.S_IMODE(p.stat().st_mode) for p in folders} == {0o700}
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}


def test_save_folder_of_another_user_is_refused(cli: Callable[..., Result],
                                                tmp_path: Path) -> None:
    """An empty 0777 folder another user made was written into: they could read the samples
    and change the report."""
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o777)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    result = cli("--save", str(theirs))
    assert result.exit_code == 2, result.output
    assert f"is owned by another user (uid {OTHER_UID})" in result.output
    assert not any(theirs.iterdir())
