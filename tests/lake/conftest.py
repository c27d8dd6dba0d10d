"""Fixtures of the lake tests: a local lake, and an S3 lake on the moto server on 127.0.0.1
(`s3_server`, tests/conftest.py).

    lake        a Lake on a fresh folder (param "local") or a fresh s3://lake/<test> prefix
                (param "s3"); tests that take it run against both.
    local_lake  / s3_lake: one of them only.
    writer      a partgen.Writer (tests/support/partgen.py) writing parts into the test folder.
    settings    csload's Settings for the simulator served on 127.0.0.1 (`sim_url`).

The lake helpers (tests/support/lakeutil.py) read a lake back two ways: through csload, at the
versions its ledger records (`Lake.connect`), and as any Delta reader does, the tables' latest
versions through their logs (`Lake.listed`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from csload.config import Settings
from csload.simulator import Simulator
from tests.support.hostile_lake import Crafted, build_lake, copy_lake
from tests.support.lakeutil import Lake
from tests.support.partgen import Writer
from tests.support.s3server import S3Server


@pytest.fixture
def local_lake(tmp_path: Path) -> Lake:
    return Lake.local(tmp_path / "lake")


@pytest.fixture
def s3_lake(s3_server: S3Server, request: pytest.FixtureRequest) -> Lake:
    return Lake.s3(s3_server, request.node.name)


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    if request.param == "local":
        return Lake.local(tmp_path / "lake")
    server: S3Server = request.getfixturevalue("s3_server")
    return Lake.s3(server, request.node.name)


@pytest.fixture
def settings(simulator: Simulator, sim_url: str) -> Settings:
    client_id, client_secret, project_id = simulator.credentials
    return Settings(client_id=client_id, client_secret=client_secret, project_id=project_id,
                    auth_url=sim_url)


@pytest.fixture
def writer(tmp_path: Path) -> Writer:
    folder = tmp_path / "parts"
    folder.mkdir()
    return Writer(folder)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lake(tmp_path_factory.mktemp("pristine"))


@pytest.fixture
def crafted(pristine: Path, tmp_path: Path) -> Crafted:
    return copy_lake(pristine, tmp_path)


# --- what csload must do with it ---------------------------------------------------------------
