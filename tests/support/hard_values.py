"""Values that are hard to load exactly: ids above 2^63, strings with every quoting and escape
hazard of CSV and JSONL, arrays of them, NULLs in every column. `view_rows()` is a `views`
part's rows with them; the DuckDB loader (tests/load/test_load_values.py) and the lake's
readers (tests/lake/test_lake_interop.py) must give each back exactly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

FIELDS = ["session_id", "view_number", "view_time", "url", "scroll_rate", "fully_loaded",
          "errors.message", "errors.error_time", "errors.line_number", "is_first"]

HARD_STRINGS = [
    "plain", "", "with,comma", 'with "quotes"', "line\nbreak", "crlf\r\nbreak", "\\N",
    "back\\slash", "é ü 日本 😀", "trailing space ", "NULL", "'single'",
]
HARD_ARRAYS = [
    [], ["a"], ["it's", 'say "hi"', "x,y", "[br]", "back\\slash", "\\'", ""],
    ["multi\nline", "tab\tin", "NULL", " edge spaces "], ["\\", "'", "\\n literally"],
    ["é", "😀"],
]


def view_rows() -> list[dict[str, Any]]:
    rows = []
    n = max(len(HARD_STRINGS), len(HARD_ARRAYS))
    for i in range(n):
        rows.append({
            "session_id": 2**64 - 1 - i if i % 2 == 0 else 2**63 + i,
            "view_number": i + 1,
            "view_time": datetime(2026, 11, 20, i, 3, 5),
            "url": HARD_STRINGS[i % len(HARD_STRINGS)],
            "scroll_rate": None if i % 3 == 0 else i + 0.25,
            "fully_loaded": None if i % 4 == 1 else 1000 + i,
            "errors.message": HARD_ARRAYS[i % len(HARD_ARRAYS)],
            "errors.error_time": [datetime(2026, 11, 20, 10, i)] * (i % 3),
            "errors.line_number": [i, 2**32 - 1][: i % 3],
            "is_first": i % 2,
        })
    return rows
