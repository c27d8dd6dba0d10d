"""Quoting for generated SQL: every identifier and string literal csload writes into a
statement goes through these two functions, because column aliases, table names and paths
are user input or come from the network.

A leaf module (it imports nothing of csload), so that every layer that writes SQL can use it.
"""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier; safe for any input."""
    return '"' + name.replace('"', '""') + '"'


def sql_str(value: str) -> str:
    """A single-quoted SQL string literal; safe for any input."""
    return "'" + value.replace("'", "''") + "'"
