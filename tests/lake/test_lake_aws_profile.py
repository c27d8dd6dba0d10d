"""An S3 lake whose keys are in an AWS profile (`AWS_PROFILE`, ~/.aws/credentials), as
docs/lake.md lists among the credential sources. pyarrow read the profile, deltalake did not:
the bucket check passed, then every command failed with "Kernel error -> Generic S3 error"
(found by QA, 2026-12-07). csload now reads the profile's keys itself."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import csload
from csload.errors import ConfigError
from csload.lake.aws_profile import profile_keys
from csload.simulator import ServerHandle, Simulator
from tests.support.lakeutil import Lake
from tests.support.s3server import S3Server
from tests.support.simenv import sim_settings

KEY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
                 "AWS_CONFIG_FILE")


def test_an_s3_lake_syncs_and_reads_with_the_keys_of_a_named_profile(
        simulator: Simulator, sim_thread: ServerHandle, s3_server: S3Server, s3_lake: Lake,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[default]\naws_access_key_id = wrong\naws_secret_access_key = x\n"
                           f"[qa]\naws_access_key_id = {s3_server.access_key}\n"
                           f"aws_secret_access_key = {s3_server.secret_key}\n")
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_PROFILE", "qa")
    # The endpoint and region only: the keys are the profile's.
    where = {k: v for k, v in s3_server.options.items() if k in ("endpoint_url", "region")}
    settings = dataclasses.replace(sim_settings(simulator, sim_thread.base_url), lake=where)

    report = csload.sync(settings, parquet=s3_lake.root)

    assert report.loaded and not report.failed and report.exit_code == 0
    shown = {t.table: t.rows for t in csload.status(parquet=s3_lake.root,
                                                    storage_options=where).tables}
    loaded = {o.table for o in report.loaded}
    assert loaded <= set(shown) and all(shown[t] > 0 for t in loaded)


def test_a_named_profile_without_keys_is_said_with_the_way_out(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[profile sso]\nsso_start_url = https://example.invalid/start\n")
    env = {"AWS_PROFILE": "sso", "AWS_CONFIG_FILE": str(config),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    with pytest.raises(ConfigError) as raised:
        profile_keys(env)
    assert "AWS profile 'sso'" in str(raised.value)
    assert "aws configure export-credentials --profile sso" in str(raised.value)
    # Keys in the config file's [profile NAME] count; the environment's keys come first.
    config.write_text("[profile sso]\naws_access_key_id = AK\naws_secret_access_key = SK\n")
    assert profile_keys(env) == {"access_key_id": "AK", "secret_access_key": "SK"}
    assert profile_keys({**env, "AWS_ACCESS_KEY_ID": "ENV"}) == {}
    # No profile named and no default one: nothing (an instance role answers then).
    assert profile_keys({"HOME": str(tmp_path)}) == {}
