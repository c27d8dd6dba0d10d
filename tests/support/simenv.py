"""Reaching a simulator served on 127.0.0.1, three ways: as library Settings, as the
CONTENTSQUARE_* variables a user sets for the CLI, and as the whole environment of a `csload`
subprocess. The folders' conftests build their `settings`, `sim_env` and `child_env` fixtures
from these (each with its own retry policy and limits).
"""

from __future__ import annotations

import os
from typing import Any

from csload.config import Settings
from csload.simulator import Simulator


def sim_settings(sim: Simulator, base_url: str, **options: Any) -> Settings:
    """Settings with the simulator's credentials, its base URL as the auth URL, and `options`
    (retry=..., limits=...)."""
    client_id, client_secret, project_id = sim.credentials
    return Settings(client_id=client_id, client_secret=client_secret, project_id=project_id,
                    auth_url=base_url, **options)


def sim_variables(sim: Simulator, base_url: str) -> dict[str, str]:
    """The CONTENTSQUARE_* variables that reach the simulator at `base_url`."""
    return dict(line.split("=", 1) for line in sim.config.env_lines(base_url))


def sim_child_env(sim: Simulator, base_url: str) -> dict[str, str]:
    """This process's environment, with the simulator's CONTENTSQUARE_* variables instead of
    any of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTENTSQUARE_")}
    env.update(sim_variables(sim, base_url))
    return env
