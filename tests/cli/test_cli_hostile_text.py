"""Issue 16, untrusted text at the terminal: what the read and manage commands, `doctor` and
`--json` print of an API's answers carries no control character, and rich markup in it is
printed as it is.

The API is a hostile one of the test's own on 127.0.0.1 (served from a thread, as csload's
CLI runs its own event loop): every string it sends (job, field and variable names, states,
descriptions, an error message) carries terminal escapes (retitle the terminal, clear the
screen, an 8-bit CSI), a bell, a carriage return and line break that would forge a log line,
a right-to-left override, and rich markup. The commands run in-process (click's runner,
stdout and stderr apart).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from csload.cli import main

# Retitle the terminal, ring the bell, clear the screen, forge a log line, flip the text's
# direction, an 8-bit CSI and DEL; `[red]...[/]` is rich markup, which must print as it is.
HOSTILE = ("Daily\x1b]0;pwned\x07 [red]sessions[/]\x1b[2J\r\n2026-01-01 ERROR forged"
           "\u202e\x9b31m\x7f")
# What a terminal acts on; the scrubbed text keeps the rest of the name, markup included.
CONTROLS = ("\x1b", "\x07", "\r", "\u202e", "\x9b", "\x7f")
SHOWN = "Daily]0;pwned [red]sessions[/][2J  2026-01-01 ERROR forged31m"
JOB_ID = 7
SECRET = "hostile-text-secret"


def _job() -> dict[str, Any]:
    return {"jobId": JOB_ID, "name": HOSTILE, "format": "JSONL" + HOSTILE,
            "scope": "sessions" + HOSTILE, "frequency": {"value": "daily" + HOSTILE},
            "state": "ACTIVE" + HOSTILE, "deviceLabel": "all" + HOSTILE,
            "fields": [{"fieldName": "session_id"},
                       {"fieldName": "url", "aliasName": "page" + HOSTILE},
                       {"fieldName": "dynamic_var", "dynamicVarKey": "utm" + HOSTILE},
                       {"fieldName": "custom" + HOSTILE}],
            "createdAt": "2026-11-20T00:00:00.000Z"}


def _ok(payload: Any) -> web.Response:
    return web.json_response({"success": True, "payload": payload})


class HostileTextApi:
    """The Export API's read endpoints, every string of their answers hostile (HOSTILE), and
    job creation: refused with a hostile error message, or (`accept_create`) answered with the
    hostile job; served from a thread on 127.0.0.1."""

    def __init__(self) -> None:
        self.base_url = ""
        self.requests: list[str] = []
        self.accept_create = False

    async def token(self, request: web.Request) -> web.Response:
        self.requests.append(f"POST {request.path}")
        return web.json_response({"access_token": "hostile-token", "expires_in": 3600,
                                  "endpoint": self.base_url})

    async def get(self, request: web.Request) -> web.Response:
        self.requests.append(f"GET {request.path}")
        if request.query.get("page", "1") != "1":
            return _ok([])   # one page of everything
        path = request.path.removeprefix("/v1")
        if path == "/exports":
            return _ok([_job()])
        if path == f"/exports/{JOB_ID}":
            return _ok(_job())
        if path == f"/exports/{JOB_ID}/runs":
            return _ok([{"jobRunId": 70, "jobId": JOB_ID, "state": "SUCCESS" + HOSTILE,
                         "startDate": "2026-11-19T00:00:00.000Z",
                         "endDate": "2026-11-20T00:00:00.000Z"}])
        if path == "/exportable-fields":
            return _ok([{"name": "session_id", "type": "UInt64", "description": HOSTILE},
                        {"name": "url" + HOSTILE, "type": "String" + HOSTILE}])
        if path in ("/custom-vars", "/custom_vars"):
            return _ok([{"position": 1, "name": HOSTILE}])
        if path == "/dynamic-var-keys":
            return _ok([{"key": "utm" + HOSTILE, "type": "String" + HOSTILE}])
        return web.json_response({"success": False, "errorCode": "NOT_FOUND",
                                  "errorMessage": HOSTILE}, status=404)

    async def create(self, request: web.Request) -> web.Response:
        self.requests.append(f"POST {request.path}")
        if self.accept_create:
            return _ok(_job())
        return web.json_response({"success": False, "errorCode": "INVALID_PARAMETER",
                                  "errorMessage": HOSTILE}, status=400)


@pytest.fixture
def api() -> Iterator[HostileTextApi]:
    served = HostileTextApi()
    app = web.Application()
    app.router.add_post("/v1/oauth/token", served.token)
    app.router.add_post("/v1/exports", served.create)
    app.router.add_get("/v1/{tail:.*}", served.get)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, handle_signals=False, access_log=None)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        served.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    loop.run_until_complete(start())
    thread = threading.Thread(target=loop.run_forever, name="hostile-text-api", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


@pytest.fixture
def env(api: HostileTextApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no stray csload.toml
    for name in list(os.environ):
        if name.startswith("CONTENTSQUARE_"):
            monkeypatch.delenv(name)
    # COLUMNS: wide enough that no table cell is folded, so the text can be looked for whole.
    return {"CONTENTSQUARE_CLIENT_ID": "hostile", "CONTENTSQUARE_CLIENT_SECRET": SECRET,
            "CONTENTSQUARE_AUTH_URL": api.base_url, "COLUMNS": "1000"}


def invoke(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def assert_no_control(result: Result) -> None:
    for stream in (result.stdout, result.stderr):
        found = [char for char in CONTROLS if char in stream]
        assert not found, (found, stream)
    assert "Traceback" not in result.stderr


READ_COMMANDS = {
    "jobs": ["jobs"],
    "jobs show": ["jobs", "show", str(JOB_ID)],
    "runs": ["runs", str(JOB_ID)],
    "fields": ["fields", "--scope", "sessions"],
    "custom-vars": ["custom-vars"],
    "dynamic-vars": ["dynamic-vars", "--from", "2026-11-01", "--to", "2026-11-02"],
}


@pytest.mark.hostile("control characters and markup in the API's names, states and "
                     "descriptions",
                     "jobs, jobs show, runs, fields, custom-vars and dynamic-vars print them "
                     "scrubbed; markup as it is")
@pytest.mark.parametrize("command", list(READ_COMMANDS))
def test_hostile_api_text_in_read_commands_never_reaches_the_terminal(
        command: str, env: dict[str, str]) -> None:
    result = invoke(READ_COMMANDS[command], env)

    assert result.exit_code == 0, result.output
    assert_no_control(result)
    # The rest of the text is shown, rich markup included, on one line (run states are
    # upper-cased).
    assert SHOWN.lower() in result.stdout.lower(), result.stdout
    assert not any(line.startswith("2026-01-01") for line in result.stdout.splitlines())


@pytest.mark.hostile("control characters in API strings under --json (DEL, C1 controls, "
                     "bidi overrides pass JSON escaping)",
                     "escaped as \\uXXXX: the same JSON value, nothing a terminal acts on")
@pytest.mark.parametrize("command", list(READ_COMMANDS))
def test_hostile_api_text_in_json_output_is_escaped(command: str, env: dict[str, str]) -> None:
    result = invoke([*READ_COMMANDS[command], "--json"], env)

    assert result.exit_code == 0, result.output
    assert_no_control(result)
    # Escaped, not removed: the document holds exactly what the API sent.
    document = orjson.loads(result.stdout)
    assert any(HOSTILE.lower() in text.lower() for text in strings(document)), document


def strings(value: object) -> Iterator[str]:
    """Every string of a JSON document."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@pytest.mark.hostile("an API scope with control characters quoted by a usage error "
                     "(jobs create --like)",
                     "click's `Error:` line is scrubbed; exit 2")
def test_hostile_api_text_in_a_usage_error_is_scrubbed(env: dict[str, str],
                                                       api: HostileTextApi) -> None:
    result = invoke(["jobs", "create", "--like", str(JOB_ID), "--scope", "views",
                     "--daily", "--dry-run"], env)

    assert result.exit_code == 2, result.output
    assert_no_control(result)
    assert f"--scope views differs from job {JOB_ID}'s scope sessions" in result.stderr
    assert "POST /v1/exports" not in api.requests


@pytest.mark.hostile("control characters in the job the API answers a creation with",
                     "jobs create prints it scrubbed")
def test_hostile_api_text_in_the_created_job_is_scrubbed(env: dict[str, str],
                                                         api: HostileTextApi) -> None:
    api.accept_create = True

    result = invoke(["jobs", "create", "--name", "mine", "--scope", "sessions", "--daily",
                     "--field", "session_id"], env)

    assert result.exit_code == 0, result.output
    assert "POST /v1/exports" in api.requests
    assert_no_control(result)
    assert f"created job {JOB_ID}: {SHOWN}" in result.stdout, result.stdout


@pytest.mark.hostile("an API error message with control characters, for a job backfill "
                     "creates",
                     "backfill's table, its failure lines and its progress lines are "
                     "scrubbed; the window fails, exit 3")
def test_hostile_api_text_in_backfill_output_is_scrubbed(env: dict[str, str],
                                                         api: HostileTextApi) -> None:
    day = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()

    result = invoke(["backfill", "--scope", "sessions", "--from", day, "--to", day,
                     "--field", "session_id", "--db", "cs.duckdb", "--poll-interval", "0"],
                    env)

    assert result.exit_code == 3, result.output
    assert "POST /v1/exports" in api.requests
    assert_no_control(result)
    # The API's message reaches the table's note and the failure line, scrubbed.
    assert result.stdout.count(SHOWN) >= 2, result.stdout
    assert SECRET not in result.output


@pytest.mark.hostile("control characters in the job names and field names doctor reports",
                     "every line of doctor's report is scrubbed")
def test_hostile_api_text_in_doctor_output_is_scrubbed(env: dict[str, str]) -> None:
    result = invoke(["doctor", "--db", "cs.duckdb"], env)

    assert result.exit_code in (0, 1), result.output
    assert_no_control(result)
    # csload.doctor shows control characters escaped (`clean`), markup as it is.
    assert "7 Daily\\x1b]0;pwned\\x07 [red]sessions[/]" in result.stdout, result.stdout
