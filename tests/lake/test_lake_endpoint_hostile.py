"""Issue 16, the https rule for a lake's S3 endpoint wherever it comes from: the settings'
`[lake] endpoint_url` (tests/api/test_api_hostile.py), and here the environment
(`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`) and the storage options a library caller passes
(`csload.connect`, `Target.of`, `LakeFS.open`).

    a sync            plain http only to a loopback address, and only in simulator mode (the
                      auth URL is loopback too); refused before any request, whatever the
                      storage option `allow_http` says
    a reader          plain http to a loopback address; to another host only with the storage
                      option allow_http="true"

The S3 server is moto's on 127.0.0.1 (`s3_server`); the simulator is served from a thread.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import csload
from csload.cli import main
from csload.config import Settings
from csload.errors import InsecureUrlError
from csload.lake.fs import ENDPOINT_VARIABLES, LakeFS
from csload.pipeline.report import RunStatus
from csload.simulator import ServerHandle, Simulator
from csload.target import Target
from tests.support.lakeutil import Lake
from tests.support.s3server import S3Server

REMOTE = "http://s3.example.com"   # plain http to another host
OUTSIDE_SIMULATOR = "https://api.contentsquare.com"


@pytest.fixture(autouse=True)
def no_endpoint_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port on 127.0.0.1 that records whether anything connected to it."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield server


def connected(server: socket.socket) -> bool:
    try:
        accepted, _ = server.accept()
    except BlockingIOError:
        return False
    accepted.close()
    return True


def credentials(server: S3Server) -> dict[str, str]:
    """The S3 server's options without its endpoint (which the environment gives)."""
    return {key: value for key, value in server.options.items() if key != "endpoint_url"}


def sim_settings(simulator: Simulator, auth_url: str, lake: dict[str, str]) -> Settings:
    client_id, client_secret, project_id = simulator.credentials
    return Settings(client_id=client_id, client_secret=client_secret, project_id=project_id,
                    auth_url=auth_url, lake=lake)


# -- a reader ---------------------------------------------------------------------------------


@pytest.mark.hostile("a lake's S3 endpoint over plain http to another host, from the "
                     "environment or a reader's storage options",
                     "refused (InsecureUrlError naming where it was set) unless the reader "
                     "passes allow_http='true'")
@pytest.mark.parametrize("source", [*ENDPOINT_VARIABLES, "storage option"])
def test_hostile_lake_endpoint_over_plain_http_is_refused_for_a_reader(
        source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    options: dict[str, str] = {"region": "us-east-1"}
    if source == "storage option":
        options["endpoint_url"] = REMOTE
        where = "the lake's storage option endpoint_url must use https"
    else:
        monkeypatch.setenv(source, REMOTE)
        where = f"the lake's S3 endpoint ({source} in the environment) must use https"

    for read in (lambda: csload.connect(parquet="s3://lake/hostile", storage_options=options),
                 lambda: Target.of(db=None, parquet="s3://lake/hostile",
                                   storage_options=options),
                 lambda: csload.read_target_status(parquet="s3://lake/hostile",
                                                   storage_options=options),
                 lambda: LakeFS.open("s3://lake/hostile", options)):
        with pytest.raises(InsecureUrlError) as refused:
            read()
        text = str(refused.value)
        assert text.startswith(where) and REMOTE in text, text
        assert "allow_http='true'" in text, text

    # The reader's explicit choice: opened (nothing is requested until it reads).
    opened = LakeFS.open("s3://lake/hostile", {**options, "allow_http": "true"})
    assert opened.endpoint == REMOTE


def test_a_reader_reaches_a_loopback_endpoint_from_the_environment(
        s3_server: S3Server, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    lake = Lake.s3(s3_server, request.node.name)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    LakeFS.open(lake.root, credentials(s3_server)).check_usable()


# -- a sync -----------------------------------------------------------------------------------


@pytest.mark.hostile("a lake's S3 endpoint over plain http to a loopback address, from the "
                     "environment, outside simulator mode",
                     "the sync is refused before any request (exit 1, one line)")
@pytest.mark.parametrize("variable", ENDPOINT_VARIABLES)
def test_hostile_lake_endpoint_from_the_environment_to_loopback_outside_simulator_mode(
        variable: str, simulator: Simulator, listener: socket.socket, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A process of another user listening on this port would get the export data and the
    signed requests; the auth URL is Contentsquare's, so this is no simulator."""
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    monkeypatch.setenv(variable, endpoint)
    settings = sim_settings(simulator, OUTSIDE_SIMULATOR, {"region": "us-east-1"})

    with pytest.raises(InsecureUrlError) as refused:
        csload.sync(settings, parquet="s3://lake/hostile")
    assert str(refused.value) == (
        f"the lake's S3 endpoint ({variable} in the environment) must use https: plain http "
        "to a loopback address is allowed only when the auth URL is a loopback address too "
        f"(the local simulator): {endpoint}")

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main, ["sync", "--parquet", "s3://lake/hostile"], catch_exceptions=False,
        env={"CONTENTSQUARE_CLIENT_ID": "c", "CONTENTSQUARE_CLIENT_SECRET": "s",
             "CONTENTSQUARE_AUTH_URL": OUTSIDE_SIMULATOR, variable: endpoint})
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [f"error: {refused.value}"]
    assert not connected(listener)


@pytest.mark.hostile("a lake's S3 endpoint over plain http to another host, from the "
                     "environment, for a sync in simulator mode (allow_http given)",
                     "refused before any request: a sync takes no opt-in")
def test_hostile_lake_endpoint_to_another_host_is_refused_for_a_sync_even_with_allow_http(
        simulator: Simulator, sim_thread: ServerHandle,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", REMOTE)
    settings = sim_settings(simulator, sim_thread.base_url,
                            {"region": "us-east-1", "allow_http": "true"})

    with pytest.raises(InsecureUrlError, match=(
            r"^the lake's S3 endpoint \(AWS_ENDPOINT_URL in the environment\) must use https "
            r"\(plain http is allowed only for loopback addresses\): http://s3.example.com$")):
        csload.sync(settings, parquet="s3://lake/hostile")
    assert simulator.stats.token_requests == 0 and simulator.stats.api_requests == 0


def test_a_sync_in_simulator_mode_loads_through_a_loopback_endpoint_from_the_environment(
        simulator: Simulator, sim_thread: ServerHandle, s3_server: S3Server,
        monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    lake = Lake.s3(s3_server, request.node.name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    settings = sim_settings(simulator, sim_thread.base_url, credentials(s3_server))

    report = csload.sync(settings, parquet=lake.root)

    # The seeded world has runs that failed at Contentsquare (no files): nothing else fails.
    loaded = [run for run in report.runs if run.status is RunStatus.LOADED]
    assert loaded and all(run.status in (RunStatus.LOADED, RunStatus.SOURCE_FAILED)
                          for run in report.runs), report.runs
    con = csload.connect(parquet=lake.root, storage_options=credentials(s3_server))
    try:
        rows = 0
        for table in {run.table for run in loaded}:
            counted = con.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
            assert counted is not None
            rows += counted[0]
    finally:
        con.close()
    # A fresh lake: every row is one a run added, less those a later run removed.
    assert rows == sum(run.added - run.removed for run in loaded) > 0
