"""The README's flow, for real: `csload simulate` in one process, `csload jobs` in another."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

CSLOAD = [sys.executable, "-m", "csload"]


def test_simulate_prints_settings_that_the_read_commands_use(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [*CSLOAD, "simulate", "--port", "0", "--days", "2", "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        assert server.stdout is not None
        settings: dict[str, str] = {}
        for line in server.stdout:
            name, sep, value = line.strip().partition("=")
            if sep and name.startswith("CONTENTSQUARE_"):
                settings[name] = value
            if "CONTENTSQUARE_AUTH_URL" in settings:
                break
        assert set(settings) == {"CONTENTSQUARE_CLIENT_ID", "CONTENTSQUARE_CLIENT_SECRET",
                                 "CONTENTSQUARE_PROJECT_ID", "CONTENTSQUARE_AUTH_URL"}
        assert settings["CONTENTSQUARE_AUTH_URL"].startswith("http://127.0.0.1:")
        env = {**os.environ, **settings}
        listed = subprocess.run([*CSLOAD, "jobs", "--json"], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=60, check=False)
        assert listed.returncode == 0, listed.stderr
        jobs = orjson.loads(listed.stdout)
        assert {job["scope"] for job in jobs} == {"sessions", "views"}
        daily = [job for job in jobs if job["frequency"] == "daily" and job["state"] == "ACTIVE"]
        runs = subprocess.run([*CSLOAD, "runs", str(daily[0]["jobId"]), "--json"], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              check=False)
        assert runs.returncode == 0, runs.stderr
        assert len([r for r in orjson.loads(runs.stdout) if r["state"] == "SUCCESS"]) == 2
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_simulate_refuses_a_non_loopback_host(tmp_path: Path) -> None:
    result = subprocess.run([*CSLOAD, "simulate", "--host", "0.0.0.0", "--port", "0"],  # noqa: S104
                            capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            check=False)
    assert result.returncode == 1
    assert "error:" in result.stderr
    assert "Traceback" not in result.stderr
