from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from csload.load.duckdb import DuckDBStore
from tests.support.partgen import Writer


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "csload.duckdb"


@pytest.fixture
def writer(tmp_path: Path) -> Writer:
    folder = tmp_path / "parts"
    folder.mkdir()
    return Writer(folder)


@pytest.fixture
def store(db_path: Path) -> Iterator[DuckDBStore]:
    with DuckDBStore.open(db_path) as s:
        yield s
