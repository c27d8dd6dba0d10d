"""How csload writes a duration in its messages (csload.load.holder.human_duration): as the
user writes a `--wait` or `--max-wait` when it is round, to the minute beyond an hour, never
in a float's exponent notation (a backfill once said "was still QUEUED 1.50672e+07s after the
job was created")."""

from __future__ import annotations

import pytest

from csload.load.holder import human_duration


@pytest.mark.parametrize(("seconds", "written"), [
    (0, "0s"), (1.5, "1.5s"), (90, "90s"), (300, "5m"), (3600, "1h"), (86400, "24h"),
    (5400, "1h 30m"), (86403.2, "24h"), (15067200.4, "4185h 20m"), (3601, "1h"),
])
def test_durations_read_as_a_user_writes_them(seconds: float, written: str) -> None:
    assert human_duration(seconds) == written
