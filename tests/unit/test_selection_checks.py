"""The checks of what a sync selects (csload.pipeline.discover): days, windows, scope, job ids."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from csload.api.checks import check_day, check_job_ids, check_scope, check_window
from csload.errors import ConfigError
from csload.pipeline.discover import Selection
from csload.target import check_one_target


def test_days_are_dates_or_iso_strings() -> None:
    assert check_day(None, "since") is None
    assert check_day(date(2026, 12, 1), "since") == date(2026, 12, 1)
    assert check_day("2026-12-01", "since") == date(2026, 12, 1)
    assert check_day(" 2026-12-01 ", "since") == date(2026, 12, 1)


@pytest.mark.parametrize("value", ["2026-12-32", "2026-W48-1", "20261201", "", "soon", 3,
                                   datetime(2026, 12, 1, 5)])
def test_anything_else_is_not_a_day(value: object) -> None:
    with pytest.raises(ConfigError, match="until must be a day") as raised:
        check_day(value, "until")
    assert repr(value) in str(raised.value)


def test_a_window_must_not_end_before_it_starts() -> None:
    assert check_window("2026-12-01", "2026-12-01") == (date(2026, 12, 1), date(2026, 12, 1))
    assert check_window(None, "2026-12-01") == (None, date(2026, 12, 1))
    with pytest.raises(ConfigError, match="since 2026-12-02 is after until 2026-12-01"):
        check_window("2026-12-02", date(2026, 12, 1))
    with pytest.raises(ConfigError, match="--since 2026-12-02 is after --until 2026-12-01"):
        check_window("2026-12-02", date(2026, 12, 1), flags=True)


def test_scopes() -> None:
    assert check_scope(None) is None
    assert check_scope("views") == "views"
    with pytest.raises(ConfigError, match=r"did you mean views\?"):
        check_scope("pageviews")
    with pytest.raises(ConfigError, match=r"did you mean sessions\?"):
        check_scope("Sessions")
    with pytest.raises(ConfigError, match=r"got 'orders'$"):
        check_scope("orders")
    with pytest.raises(ConfigError, match="got 3"):
        check_scope(3)


def test_job_ids() -> None:
    assert check_job_ids(()) == ()
    assert check_job_ids([1120, 1121]) == (1120, 1121)
    for bad in ([0], [-1], ["1"], [1.0], [False]):
        with pytest.raises(ConfigError, match="jobs: a job id is a positive integer"):
            check_job_ids(bad)
    for bad_list in (1120, "1120", None):
        with pytest.raises(ConfigError, match="jobs must be a list of job ids"):
            check_job_ids(bad_list)


def test_selection_checked_names_cli_flags() -> None:
    selection = Selection.checked(jobs=[7], scope="views", since="2026-12-01")
    assert selection == Selection(job_ids=(7,), scope="views", since=date(2026, 12, 1))
    with pytest.raises(ConfigError, match="--job: "):
        Selection.checked(jobs=[0], flags=True)
    with pytest.raises(ConfigError, match="--scope must be"):
        Selection.checked(scope="page", flags=True)


def test_one_target() -> None:
    check_one_target("a.duckdb", None)
    check_one_target(None, "lake/")
    with pytest.raises(ConfigError, match=r"\(db\) or .*\(parquet\), not both"):
        check_one_target("a.duckdb", "lake/")
    with pytest.raises(ConfigError, match=r"\(--db\) or .*\(--parquet\), not both"):
        check_one_target("a.duckdb", "lake/", flags=True)
