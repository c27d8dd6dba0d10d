"""An independent reference decoder of the export file formats (contract section 6), for tests.

It shares no code with the simulator's writers (stdlib `csv` and `json`, its own array-literal
parser), so a test that decodes the simulator's files with it checks the writers, and a loader
test can use it to say what a part holds. Signatures:

    decode_part(data: bytes, fmt: str, column_types: Mapping[str, str]) -> list[dict[str, Any]]
        One part's body (gzip or not: detected by the magic bytes 1f 8b) in format "CSV" or
        "JSONL", to rows keyed by column name. `column_types` maps every column name to its
        export-engine type ("UInt64", "Nullable(Float32)", "Array(DateTime)", ...); the part's
        columns must be exactly those. Values come back typed like the simulator's truth:
        int, float, str, date, datetime (naive UTC), list, None. Raises ValueError on anything
        off-contract (a missing CSV header, a null in a non-Nullable column, a bad array, ...).

    decode_parts(parts: Iterable[bytes], fmt: str, column_types: Mapping[str, str])
        -> list[dict[str, Any]]: the rows of several parts, in order.

    job_column_types(scope: str, fields: Iterable[Any]) -> dict[str, str]
        Column name -> type for a job's fields (csload.api.models.JobField or anything with
        field_name / alias_name / custom_var_position / dynamic_var_key): types from
        csload.api.schemas; custom and dynamic variables are Nullable(String).

    parse_array(text: str) -> list[tuple[str, bool]]
        The elements of an array literal `[1,2]` / `['a','it\\'s']` as (text, was quoted).

    convert(text: str, source_type: str) -> Any
        One CSV value's text to its Python value (`\\N` -> None for Nullable types).

Known limit: the csv module does not report whether a field was quoted, so a CSV value `\\N`
is taken as NULL whether quoted or not (the simulator quotes the text `\\N`, and never
generates it).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from csload.api.schemas import load_schema

NULL = "\\N"
_WRAPPER = re.compile(r"^(Array|Nullable)\((.+)\)$")
_INT_RANGES = {
    "UInt8": (0, 2**8 - 1), "UInt16": (0, 2**16 - 1), "UInt32": (0, 2**32 - 1),
    "UInt64": (0, 2**64 - 1), "Int8": (-(2**7), 2**7 - 1), "Int16": (-(2**15), 2**15 - 1),
    "Int32": (-(2**31), 2**31 - 1), "Int64": (-(2**63), 2**63 - 1),
}


def _unwrap(source_type: str) -> tuple[str, str | None]:
    """("Array" | "Nullable" | "", inner type) of a type."""
    match = _WRAPPER.match(source_type)
    if not match:
        return "", None
    return match.group(1), match.group(2)


def _scalar(text: str, scalar: str) -> Any:
    if scalar in _INT_RANGES:
        if not re.fullmatch(r"-?\d+", text):
            raise ValueError(f"not an integer: {text!r}")
        value = int(text)
        low, high = _INT_RANGES[scalar]
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range for {scalar}")
        return value
    if scalar.startswith("Float"):
        return float(text)
    if scalar == "Date":
        return date.fromisoformat(text)
    if scalar == "DateTime":
        for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
            try:
                return datetime.strptime(text, pattern)
            except ValueError:
                continue
        raise ValueError(f"not a timestamp: {text!r}")
    if scalar == "String":
        return text
    raise ValueError(f"unknown type {scalar!r}")


def parse_array(text: str) -> list[tuple[str, bool]]:
    """Elements of `[...]`: quoted ones unescaped (backslash takes the next char literally)."""
    if len(text) < 2 or text[0] != "[" or text[-1] != "]":
        raise ValueError(f"not an array literal: {text!r}")
    out: list[tuple[str, bool]] = []
    i, end = 1, len(text) - 1
    if i == end:
        return out
    while True:
        if text[i] == "'":
            i += 1
            buf = []
            while True:
                if i >= end:
                    raise ValueError(f"unterminated string in array: {text!r}")
                ch = text[i]
                if ch == "\\":
                    buf.append(text[i + 1])
                    i += 2
                elif ch == "'":
                    i += 1
                    break
                else:
                    buf.append(ch)
                    i += 1
            out.append(("".join(buf), True))
        else:
            j = i
            while j < end and text[j] != ",":
                j += 1
            token = text[i:j]
            if not token or "'" in token:
                raise ValueError(f"bad array element {token!r} in {text!r}")
            out.append((token, False))
            i = j
        if i == end:
            return out
        if text[i] != ",":
            raise ValueError(f"expected ',' at {i} in {text!r}")
        i += 1


def convert(text: str, source_type: str) -> Any:
    """One CSV value's text to its typed value."""
    wrapper, inner = _unwrap(source_type)
    if wrapper == "Nullable":
        assert inner is not None
        return None if text == NULL else convert(text, inner)
    if text == NULL:
        raise ValueError(f"NULL in a non-Nullable {source_type} column")
    if wrapper == "Array":
        assert inner is not None
        _, element_inner = _unwrap(inner)
        element = element_inner or inner
        values = []
        for token, quoted in parse_array(text):
            needs_quotes = element in ("String", "Date", "DateTime")
            if quoted != needs_quotes:
                raise ValueError(f"array element {token!r} of {source_type} is "
                                 f"{'' if quoted else 'not '}quoted")
            values.append(_scalar(token, element))
        return values
    return _scalar(text, source_type)


def _convert_json(value: Any, source_type: str) -> Any:
    wrapper, inner = _unwrap(source_type)
    if wrapper == "Nullable":
        assert inner is not None
        return None if value is None else _convert_json(value, inner)
    if value is None:
        raise ValueError(f"null in a non-Nullable {source_type} value")
    if wrapper == "Array":
        assert inner is not None
        if not isinstance(value, list):
            raise ValueError(f"expected a JSON array for {source_type}, got {value!r}")
        return [_convert_json(v, inner) for v in value]
    if source_type in _INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a JSON integer for {source_type}, got {value!r}")
        return _scalar(str(value), source_type)
    if source_type.startswith("Float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a JSON number for {source_type}, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a JSON string for {source_type}, got {value!r}")
    return _scalar(value, source_type)


def _text(data: bytes) -> str:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8")


def _check_columns(found: list[str], column_types: Mapping[str, str]) -> None:
    if len(set(found)) != len(found):
        raise ValueError(f"duplicate columns: {found}")
    if set(found) != set(column_types):
        raise ValueError(f"columns {found} do not match the expected {list(column_types)}")


def _decode_csv(text: str, column_types: Mapping[str, str]) -> list[dict[str, Any]]:
    if not text.endswith("\n"):
        raise ValueError("a CSV part must end with a line break")
    records = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    if not records:
        raise ValueError("a CSV part must start with its header row")
    header = records[0]
    _check_columns(header, column_types)
    types = [column_types[name] for name in header]
    rows = []
    for number, record in enumerate(records[1:], start=2):
        if len(record) != len(header):
            raise ValueError(f"record {number} has {len(record)} values, expected {len(header)}")
        try:
            rows.append({name: convert(text, t)
                         for name, text, t in zip(header, record, types, strict=True)})
        except ValueError as exc:
            raise ValueError(f"record {number}: {exc}") from None
    return rows


def _decode_jsonl(text: str, column_types: Mapping[str, str]) -> list[dict[str, Any]]:
    lines = text.split("\n")
    # The last line may end with a line break, and a trailing empty line may follow.
    for _ in range(2):
        if lines and lines[-1] == "":
            lines.pop()
    rows = []
    for number, line in enumerate(lines, start=1):
        obj = json.loads(line)
        if not isinstance(obj, dict):
            raise ValueError(f"line {number} is not a JSON object")
        _check_columns(list(obj), column_types)
        try:
            rows.append({k: _convert_json(v, column_types[k]) for k, v in obj.items()})
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return rows


def decode_part(data: bytes, fmt: str, column_types: Mapping[str, str]) -> list[dict[str, Any]]:
    """The rows of one part (see the module docstring)."""
    text = _text(data)
    if fmt.upper() == "CSV":
        return _decode_csv(text, column_types)
    if fmt.upper() == "JSONL":
        return _decode_jsonl(text, column_types)
    raise ValueError(f"unknown format {fmt!r}")


def decode_parts(parts: Iterable[bytes], fmt: str,
                 column_types: Mapping[str, str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for part in parts:
        rows.extend(decode_part(part, fmt, column_types))
    return rows


def job_column_types(scope: str, fields: Iterable[Any]) -> dict[str, str]:
    """Column name -> type for a job's fields (see the module docstring)."""
    schema = load_schema(scope)
    out: dict[str, str] = {}
    for f in fields:
        name = f.field_name
        if f.alias_name:
            column = f.alias_name
        elif name == "custom_var":
            column = f"custom_var_{f.custom_var_position}"
        elif name == "dynamic_var":
            column = f"dynamic_var_{f.dynamic_var_key}"
        else:
            column = name
        if name in ("custom_var", "dynamic_var"):
            out[column] = "Nullable(String)"
        else:
            out[column] = schema.field(name).source_type
    return out
