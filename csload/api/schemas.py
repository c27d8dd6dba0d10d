"""The field catalog per scope, loaded from the `schemas/*.toml` data files and validated.

In a source checkout the files are in `schemas/` at the top of the repository; in an installed
wheel they are packaged as `csload/_schemas/`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from csload.errors import ConfigError

SCOPES = ("sessions", "views")

# Source (export engine) scalar types and the DuckDB type each loads as. Integers narrower than
# 64 bits load as BIGINT: their widths in the catalog are guesses (the documentation types them
# only as "Integer", contract section 9 point 5), so a value above 65535 in a "UInt16" field, or
# a negative one, must load exactly instead of failing its run. BIGINT costs no measurable load
# time over the narrow types and 2% more file size (benchmarks/bench_types.py: DuckDB compresses
# integer columns by their values' range; figures in docs/formats.md). UInt64 stays UBIGINT:
# ids reach above 2^63.
SCALAR_TYPES = {
    "UInt8": "BIGINT",
    "UInt16": "BIGINT",
    "UInt32": "BIGINT",
    "UInt64": "UBIGINT",
    "Int8": "BIGINT",
    "Int16": "BIGINT",
    "Int32": "BIGINT",
    "Int64": "BIGINT",
    "Float32": "FLOAT",
    "Float64": "DOUBLE",
    "String": "VARCHAR",
    "Date": "DATE",
    "DateTime": "TIMESTAMP",
}

_WRAPPER = re.compile(r"^(Array|Nullable)\((.+)\)$")


def duckdb_type_of(source_type: str) -> str:
    """DuckDB type for an export-engine type: Array(T) -> T[], Nullable(T) -> T."""
    match = _WRAPPER.match(source_type)
    if match:
        inner = duckdb_type_of(match.group(2))
        return f"{inner}[]" if match.group(1) == "Array" else inner
    try:
        return SCALAR_TYPES[source_type]
    except KeyError:
        raise ConfigError(f"unknown source type {source_type!r}") from None


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    source_type: str
    duckdb_type: str
    description: str = ""
    nullable: bool = False
    flag: bool = False
    family: str | None = None

    @property
    def is_array(self) -> bool:
        return self.source_type.startswith("Array(")

    @property
    def element_type(self) -> str:
        """The source type of one element (the type itself for scalars, Nullable unwrapped)."""
        t = self.source_type
        while True:
            match = _WRAPPER.match(t)
            if not match:
                return t
            t = match.group(2)


@dataclass(frozen=True, slots=True)
class ScopeSchema:
    scope: str
    row_key: tuple[str, ...]
    date_field: str
    fields: tuple[FieldSpec, ...]

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(spec.name == name for spec in self.fields)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.fields)

    def families(self) -> dict[str, tuple[FieldSpec, ...]]:
        """Parallel-array families: element i of each array belongs to the same event."""
        out: dict[str, list[FieldSpec]] = {}
        for spec in self.fields:
            if spec.family:
                out.setdefault(spec.family, []).append(spec)
        return {name: tuple(specs) for name, specs in out.items()}


def schemas_dir() -> Path:
    """Where the schema files are: inside the installed package, else the source checkout."""
    package = Path(__file__).resolve().parents[1]   # csload/ (this file is csload/api/...)
    for candidate in (package / "_schemas", package.parent / "schemas"):
        if (candidate / "sessions.toml").is_file():
            return candidate
    raise ConfigError(f"schema files not found (looked in {package / '_schemas'} and "
                      f"{package.parent / 'schemas'})")


def _parse_field(raw: dict[str, Any], where: str) -> FieldSpec:
    try:
        name = raw["name"]
        source_type = raw["source_type"]
        duckdb_type = raw["duckdb_type"]
    except KeyError as exc:
        raise ConfigError(f"{where}: field is missing {exc.args[0]!r}") from None
    unknown = set(raw) - {"name", "source_type", "duckdb_type", "description", "nullable",
                          "flag", "family"}
    if unknown:
        raise ConfigError(f"{where}: field {name!r} has unknown keys {sorted(unknown)}")
    expected = duckdb_type_of(source_type)
    if duckdb_type != expected:
        raise ConfigError(
            f"{where}: field {name!r}: duckdb_type {duckdb_type!r} does not match source type "
            f"{source_type!r} (expected {expected!r})"
        )
    spec = FieldSpec(
        name=name,
        source_type=source_type,
        duckdb_type=duckdb_type,
        description=raw.get("description", ""),
        nullable=bool(raw.get("nullable", False)),
        flag=bool(raw.get("flag", False)),
        family=raw.get("family"),
    )
    if spec.nullable != source_type.startswith("Nullable("):
        raise ConfigError(f"{where}: field {name!r}: nullable must match the Nullable() type")
    if spec.flag and spec.element_type != "UInt8":
        raise ConfigError(f"{where}: field {name!r}: only UInt8 fields can be flags")
    if spec.family is not None and (not spec.is_array or not name.startswith(spec.family + ".")):
        raise ConfigError(f"{where}: field {name!r}: a family member must be an array "
                          f"named '<family>.<field>'")
    return spec


def parse_schema(raw: dict[str, Any], where: str) -> ScopeSchema:
    """Validate one schema document (as read from TOML)."""
    scope = raw.get("scope")
    if scope not in SCOPES:
        raise ConfigError(f"{where}: scope must be one of {SCOPES}, got {scope!r}")
    fields = tuple(_parse_field(f, where) for f in raw.get("fields", []))
    if not fields:
        raise ConfigError(f"{where}: no fields")
    names = [f.name for f in fields]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ConfigError(f"{where}: duplicate fields {sorted(duplicates)}")
    row_key = tuple(raw.get("row_key", ()))
    if not row_key or any(k not in names for k in row_key):
        raise ConfigError(f"{where}: row_key {list(row_key)} must name fields of the scope")
    date_field = raw.get("date_field")
    if date_field not in names:
        raise ConfigError(f"{where}: date_field {date_field!r} is not a field of the scope")
    date_type = next(f.source_type for f in fields if f.name == date_field)
    if date_type not in ("Date", "DateTime"):
        raise ConfigError(f"{where}: date_field {date_field!r} must be a Date or DateTime")
    return ScopeSchema(scope=scope, row_key=row_key, date_field=date_field, fields=fields)


@cache
def load_schema(scope: str) -> ScopeSchema:
    """The validated schema of a scope (`sessions` or `views`)."""
    if scope not in SCOPES:
        raise ConfigError(f"unknown scope {scope!r}: expected one of {', '.join(SCOPES)}")
    path = schemas_dir() / f"{scope}.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read schema {path}: {exc}") from None
    schema = parse_schema(raw, str(path))
    if schema.scope != scope:
        raise ConfigError(f"{path}: declares scope {schema.scope!r}, expected {scope!r}")
    return schema
