"""Files as served parse back, with an independent decoder, to exactly the simulator's truth."""

from __future__ import annotations

import gzip
from datetime import datetime
from typing import Any

import pytest

from csload.api.models import Job
from csload.simulator import Simulator
from tests.support.exportfmt import decode_part, decode_parts, job_column_types

HIGH = 2**63


def _walk_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _walk_strings(v)]
    return []


def hard_cases(rows: list[dict[str, Any]]) -> set[str]:
    """Which of the hard cases occur in these rows."""
    found: set[str] = set()
    for row in rows:
        for value in row.values():
            if isinstance(value, int) and value >= HIGH:
                found.add("uint64 above 2^63")
            if value is None:
                found.add("null")
            if isinstance(value, list):
                found.add("empty array" if not value else "array")
                if any(isinstance(v, datetime) and v.second == 0 for v in value):
                    found.add("timestamp in array")
                if any(isinstance(v, int) and v >= HIGH for v in value):
                    found.add("uint64 above 2^63 in array")
                texts = [v for v in value if isinstance(v, str)]
                if any("'" in t for t in texts):
                    found.add("single quote in array")
                if any('"' in t for t in texts):
                    found.add("double quote in array")
                if any("," in t for t in texts):
                    found.add("comma in array")
                if any("\\" in t for t in texts):
                    found.add("backslash in array")
            if isinstance(value, str):
                if "\r\n" in value:
                    found.add("crlf")
                elif "\n" in value:
                    found.add("newline")
                if '"' in value:
                    found.add("double quote")
                if "," in value:
                    found.add("comma")
                if value == "":
                    found.add("empty string")
            for text in _walk_strings(value):
                if any(ord(c) > 0x2E80 for c in text):
                    found.add("cjk or emoji")
                if any(0x7F < ord(c) < 0x2E80 for c in text):
                    found.add("accent")
    return found


CSV_HARD = {"uint64 above 2^63", "null", "empty array", "array", "timestamp in array",
            "single quote in array", "double quote in array", "comma in array",
            "backslash in array", "crlf", "newline", "double quote", "comma", "empty string",
            "cjk or emoji", "accent"}
JSONL_HARD = CSV_HARD | {"uint64 above 2^63 in array"}


async def _served_rows(api: Any, simulator: Simulator, name: str) -> tuple[Job, int, list[bytes]]:
    job = Job.from_api((await api.get(f"/v1/exports/{simulator.job_named(name).job_id}")).payload())
    run_id = simulator.runs(job.job_id)[-1].run_id
    return job, run_id, await api.download_run(job.job_id, run_id)


@pytest.mark.parametrize(("name", "fmt", "expected_cases"), [
    ("Daily pageviews", "CSV", CSV_HARD - {"uint64 above 2^63 in array"}),
    ("Daily sessions", "JSONL", JSONL_HARD),
])
async def test_served_parts_decode_to_the_truth(api: Any, simulator: Simulator, name: str,
                                                fmt: str, expected_cases: set[str]) -> None:
    job, run_id, bodies = await _served_rows(api, simulator, name)
    assert job.format == fmt
    assert len(bodies) >= 2, "a default run is split in several parts"
    assert all(b[:2] == b"\x1f\x8b" for b in bodies)
    # The job as the API describes it is enough to know every column's type.
    types = job_column_types(job.scope, job.fields)
    assert types == simulator.column_types(job.job_id)

    rows = decode_parts(bodies, fmt, types)
    truth = simulator.truth(job.job_id, run_id)
    assert rows == truth
    assert len(rows) > 100
    missing = expected_cases - hard_cases(truth)
    assert not missing, f"hard cases absent from the data: {missing}"


async def test_csv_hard_cases_occur_every_few_hundred_rows(api: Any,
                                                          simulator: Simulator) -> None:
    job, _, bodies = await _served_rows(api, simulator, "Daily pageviews")
    types = job_column_types(job.scope, job.fields)
    rows = decode_parts(bodies, "CSV", types)
    for start in range(0, len(rows) - 200, 200):
        cases = hard_cases(rows[start:start + 200])
        assert {"uint64 above 2^63", "null", "newline", "double quote", "comma",
                "timestamp in array", "single quote in array", "empty array"} <= cases


async def test_csv_text_layout(api: Any, simulator: Simulator) -> None:
    _, _, bodies = await _served_rows(api, simulator, "Daily pageviews")
    texts = [gzip.decompress(b).decode() for b in bodies]
    headers = {t.split("\n", 1)[0] for t in texts}
    assert len(headers) == 1, "every part starts with the same header row"
    header = headers.pop()
    assert header.startswith("project_id,session_id,user_id,")
    assert "page_url" in header and "custom_var_3" in header and "user_type" in header
    whole = "".join(texts)
    assert whole.endswith("\n")
    assert ",\\N," in whole, "NULL is an unquoted \\N"
    assert '"\\N"' not in whole
    assert "['2026-11-24 " in whole and ",'2026-11-24 " in whole
    assert "\\'" in whole, "a quote inside an array string is escaped with a backslash"
    assert ',[],' in whole, "an empty array is []"
    assert '""' in whole, "double quotes are doubled inside a quoted value"
    # A minute-precision timestamp in an array: 'YYYY-MM-DD HH:MM' followed by a quote.
    assert any(len(chunk) >= 16 and chunk[13] == ":" and chunk[16:17] == "'"
               for chunk in whole.split("'2026-11-24 ")[1:]
               for chunk in ["2026-11-24 " + chunk])


async def test_jsonl_layout(api: Any, simulator: Simulator) -> None:
    _, _, bodies = await _served_rows(api, simulator, "Daily sessions")
    text = gzip.decompress(bodies[0]).decode()
    first = text.split("\n", 1)[0]
    assert first.startswith('{"project_id":42,"session_id":')
    assert '"visitor_id":' in first and '"session_start":"2026-11-24 ' in first
    assert '"custom_var_2":' in first
    assert text.endswith("\n")
    # UInt64 values are bare integers, never strings or floats.
    assert any(f'"session_id":{n}' in text for n in range(1, 10))
    assert '"session_id":"' not in text


async def test_truth_keeps_array_timestamps_to_the_minute_only_in_csv(
        simulator: Simulator) -> None:
    views = simulator.job_named("Daily pageviews")
    run = simulator.runs(views.job_id)[-1]
    times = [t for row in simulator.truth(views.job_id, run.run_id)
             for t in row["errors.error_time"]]
    assert times and all(t.second == 0 for t in times)
    sessions = simulator.job_named("Daily sessions")
    run = simulator.runs(sessions.job_id)[-1]
    times = [t for row in simulator.truth(sessions.job_id, run.run_id)
             for t in row["app_events.event_time"]]
    assert any(t.second != 0 for t in times)


def test_decoder_rejects_off_contract_input() -> None:
    types = {"a": "UInt8", "b": "Array(String)"}
    assert decode_part(b"a,b\n1,['x']\n", "CSV", types) == [{"a": 1, "b": ["x"]}]
    for bad in (b"1,['x']\n", b"a,b\n\\N,[]\n", b"a,b\n256,[]\n", b"a,b\n1,[x]\n",
                b"a,b\n1,['x'\n", b"a,b\n1,[]"):
        with pytest.raises(ValueError):
            decode_part(bad, "CSV", types)
    with pytest.raises(ValueError):
        decode_part(b'{"a":"1","b":[]}\n', "JSONL", types)


async def test_jsonl_blank_last_line_variant(api: Any, simulator: Simulator) -> None:
    simulator.variants.jsonl_blank_last_line = True
    job, run_id, bodies = await _served_rows(api, simulator, "Daily sessions")
    assert all(gzip.decompress(b).endswith(b"}\n\n") for b in bodies)
    rows = decode_parts(bodies, "JSONL", job_column_types(job.scope, job.fields))
    assert rows == simulator.truth(job.job_id, run_id)


def test_prepare_builds_every_successful_run(simulator: Simulator) -> None:
    parts = simulator.prepare()
    expected = sum(len(simulator.part_bodies(j.job_id, r.run_id))
                   for j in simulator.jobs for r in simulator.runs(j.job_id))
    assert parts == expected >= 7
