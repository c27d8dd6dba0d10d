"""Fixtures of the CLI tests.

    env   the CONTENTSQUARE_* variables reaching the simulator served from a thread, for
          click's CliRunner; the test runs in its own folder (no stray csload.toml) with no
          CONTENTSQUARE_* variable of the caller's environment.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from csload.simulator import ServerHandle, Simulator


@pytest.fixture
def env(sim_thread: ServerHandle, simulator: Simulator, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> dict[str, str]:
    client_id, client_secret, project_id = simulator.credentials
    monkeypatch.chdir(tmp_path)  # no stray csload.toml from the working directory
    for name in list(os.environ):
        if name.startswith("CONTENTSQUARE_"):
            monkeypatch.delenv(name)
    return {"CONTENTSQUARE_CLIENT_ID": client_id,
            "CONTENTSQUARE_CLIENT_SECRET": client_secret,
            "CONTENTSQUARE_PROJECT_ID": str(project_id),
            "CONTENTSQUARE_AUTH_URL": sim_thread.base_url}
