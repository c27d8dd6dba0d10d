"""Arrays of strings in CSV: the fast path (DuckDB's `::VARCHAR[]` cast) and the exact decoder
must agree on every text the fast path takes (csload.load.sql explains the split)."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csload.load import sql

# Characters that matter to the array syntax and its escapes, plus some that do not.
_CHARS = st.sampled_from([*list("ab ,[]'\"\\ntr0bfxNUL\n\t\r\x00{}é😀"), "NULL", "\\'"])
_ELEMENT = st.lists(_CHARS, max_size=6).map("".join)


def encode(element: str, escape_controls: bool) -> str:
    r"""One element as the export engine writes it: `\` and `'` escaped; control characters
    raw (as the simulator writes them) or as `\n \t \r \0` (as ClickHouse can)."""
    text = element.replace("\\", "\\\\").replace("'", "\\'")
    if escape_controls:
        for raw, escaped in (("\n", "\\n"), ("\t", "\\t"), ("\r", "\\r"), ("\x00", "\\0")):
            text = text.replace(raw, escaped)
    return "'" + text + "'"


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    for macro in sql.MACROS:
        connection.execute(macro)
    return connection


@settings(max_examples=300, deadline=None)
@given(elements=st.lists(st.lists(_ELEMENT, max_size=4), min_size=1, max_size=40),
       escape_controls=st.booleans())
def test_the_cast_and_the_exact_decoder_agree_wherever_the_cast_is_used(
        con: duckdb.DuckDBPyConnection, elements: list[list[str]], escape_controls: bool) -> None:
    texts = ["[" + ",".join(encode(e, escape_controls) for e in row) + "]" for row in elements]
    con.execute("CREATE OR REPLACE TEMP TABLE arrays (i INTEGER, s VARCHAR)")
    con.executemany("INSERT INTO arrays VALUES (?, ?)", list(enumerate(texts)))
    fast_path = sql._CAST_EXACT
    rows = con.execute(
        f"SELECT i, {fast_path}, TRY_CAST(s AS VARCHAR[]), _csload_str_list_exact(s), "  # noqa: S608
        "_csload_str_list(s, 'c', 'f') FROM arrays ORDER BY i").fetchall()
    for i, fast, cast, exact, loaded in rows:
        assert exact == elements[i], texts[i]
        assert loaded == elements[i], texts[i]
        if fast:
            assert cast == exact, texts[i]


@pytest.mark.parametrize("text", [r"['a\nb']", r"['\t']", r"['x\0']", r"['\r\b\f']"])
def test_escapes_the_cast_gets_wrong_take_the_exact_decoder(
        con: duckdb.DuckDBPyConnection, text: str) -> None:
    fast, loaded = con.execute(
        f"SELECT {sql._CAST_EXACT}, _csload_str_list(s, 'c', 'f') FROM (SELECT ? AS s)",  # noqa: S608
        [text]).fetchone() or (None, None)
    assert fast is False
    expected = (text[2:-2].replace(r"\n", "\n").replace(r"\t", "\t").replace(r"\0", "\0")
                .replace(r"\r", "\r").replace(r"\b", "\b").replace(r"\f", "\f"))
    assert loaded == [expected]
