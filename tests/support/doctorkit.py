"""Shared values of the doctor tests."""

from __future__ import annotations

from datetime import UTC, datetime

from csload.simulator import SimConfig, Variants

# As in tests/conftest.py: the simulator's clock stays here unless a test moves it.
SIM_START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def clickhouse_config() -> SimConfig:
    """The ClickHouse preset (contract section 9), 60 days: the run lists are longer than the
    preset's page size of 50, so the client can learn it."""
    return SimConfig(seed=7, days=60, sessions_per_day=20, start_time=SIM_START,
                     variants=Variants.clickhouse())
