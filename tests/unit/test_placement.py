"""csload.load.placement: which table each job loads into (docs/loading.md), as a pure function."""

from __future__ import annotations

from dataclasses import replace

from csload.api.models import Job, JobField
from csload.load.placement import Placement, columns_of, place_jobs

FULL = ("session_id", "view_number", "view_time", "url", "path", "view_duration_msec")


def job(job_id: int, fields: tuple[str | JobField, ...] = FULL, *, frequency: str = "daily",
        scope: str = "views", name: str = "") -> Job:
    return Job(job_id=job_id, name=name or f"job {job_id}", format="CSV", scope=scope,
               frequency=frequency,
               fields=tuple(f if isinstance(f, JobField) else JobField(f) for f in fields))


def tables(placements: dict[int, Placement]) -> dict[int, str]:
    return {job_id: p.table for job_id, p in placements.items()}


def test_the_main_daily_job_gets_the_scope_table_whatever_the_ids() -> None:
    narrow = job(5, ("session_id", "view_number", "url"), frequency="once")
    wider_once = job(6, (*FULL, "document_width"), frequency="once")
    main = job(9)
    placed = place_jobs([narrow, wider_once, main], {}, {})
    # Recurring before once, then widest, then lowest id.
    assert tables(placed) == {9: "views", 5: "views_job_5", 6: "views_job_6"}
    assert all(p.new and p.refused is None for p in placed.values())


def test_same_fields_share_a_table_filters_do_not_count_aliases_do() -> None:
    main = job(1)
    mobile = Job(job_id=2, name="mobile", format="JSONL", scope="views", frequency="once",
                 device_label="mobile", fields=tuple(reversed(main.fields)))
    aliased = job(3, ("session_id", "view_number", "view_time", JobField("url", "page_url"),
                      "path", "view_duration_msec"))
    assert columns_of(mobile) == columns_of(main) != columns_of(aliased)
    assert tables(place_jobs([main, mobile, aliased], {}, {})) == {
        1: "views", 2: "views", 3: "views_job_3"}


def test_custom_variables_of_other_positions_are_other_columns() -> None:
    three = job(1, ("session_id", "view_number", JobField("custom_var", "plan",
                                                          custom_var_position=3)))
    four = job(2, ("session_id", "view_number", JobField("custom_var", "plan",
                                                         custom_var_position=4)))
    assert tables(place_jobs([three, four], {}, {})) == {1: "views", 2: "views_job_2"}


def test_a_known_job_stays_and_a_mapped_one_moves() -> None:
    main, narrow = job(1), job(2, ("session_id", "view_number"))
    known = {1: (main, "views"), 2: (narrow, "views")}
    placed = place_jobs([main, narrow], known, {})
    # An older csload put both in views: the table keeps the first (widest) job's columns.
    assert placed[1].refused is None and placed[1].how == "loaded before"
    assert placed[2].refused is not None and '[tables] 2 = "views_job_2"' in placed[2].refused
    moved = place_jobs([main, narrow], known, {2: "narrow_views"})
    assert (moved[2].table, moved[2].moved_from, moved[2].refused) == (
        "narrow_views", "views", None)


def test_a_job_deleted_at_contentsquare_still_defines_its_table() -> None:
    # Job 1 is gone from the API; its table keeps its columns: a new narrow job does not
    # take it over, even though it is the only listed job of the scope.
    gone, narrow = job(1), job(2, ("session_id", "view_number"))
    placed = place_jobs([narrow], {1: (gone, "views")}, {})
    assert tables(placed) == {1: "views", 2: "views_job_2"}


def test_a_job_mapped_into_a_table_of_other_columns_is_refused() -> None:
    main, narrow = job(1), job(2, ("session_id", "view_number"))
    placed = place_jobs([main, narrow], {1: (main, "views")}, {2: "views"})
    assert placed[2].refused is not None and "erase" in placed[2].refused
    assert placed[1].refused is None
    # Two new jobs mapped into one new table: the first in placement order sets its columns.
    fresh = place_jobs([main, narrow], {}, {1: "all_views", 2: "all_views"})
    assert fresh[1].refused is None and fresh[2].refused is not None


def test_a_job_placed_in_a_table_csload_did_not_make_is_refused_however_it_got_there() -> None:
    main, narrow = job(1), job(2, ("session_id", "view_number"))
    foreign = {"views", "mine"}
    placed = place_jobs([main, narrow], {}, {2: "mine"}, foreign)
    for job_id, table in ((1, "views"), (2, "mine")):   # by the scope rule, and mapped
        assert placed[job_id].table == table
        refusal = placed[job_id].refused or ""
        assert f"table {table!r} that csload did not make" in refusal, refusal
        assert f'[tables] {job_id} = "views_job_{job_id}"' in refusal
    # The advice never names a table of the user's either
    theirs = place_jobs([main, narrow], {}, {}, {"views", "views_job_2"})[2]
    assert theirs.table == "views_job_2"
    assert '[tables] 2 = "csload_views_job_2"' in (theirs.refused or ""), theirs.refused
    # Mapped to a table of its own, it loads; a table csload loaded before is not foreign.
    assert place_jobs([main], {}, {1: "views_job_1"}, foreign)[1].refused is None
    assert place_jobs([main], {1: (main, "views")}, {}, {"mine"})[1].refused is None


def test_a_table_its_jobs_moved_away_from_keeps_their_columns() -> None:
    # Job 1 loaded into views, then was mapped to pageviews: views still holds its rows.
    main, narrow = job(1), job(2, ("session_id", "view_number"))
    known = {1: (main, "pageviews")}
    placed = place_jobs([main, narrow], known, {1: "pageviews"},
                        loaded_into={"views": {1}, "pageviews": {1}})
    assert tables(placed) == {1: "pageviews", 2: "views_job_2"}
    same = place_jobs([main, job(3)], known, {1: "pageviews"}, loaded_into={"views": {1}})
    assert tables(same) == {1: "pageviews", 3: "views"}   # the same columns may share it
    mapped = place_jobs([main, narrow], known, {1: "pageviews", 2: "views"},
                        loaded_into={"views": {1}})
    assert mapped[2].refused is not None and "holds job 1's" in mapped[2].refused


def unreadable(job_id: int, *, frequency: str = "daily", scope: str = "views") -> Job:
    """A job as `Job.listed` keeps one it cannot read: no fields, `unreadable` saying why."""
    return Job(job_id=job_id, name=f"job {job_id}", format="CSV", scope=scope,
               frequency=frequency, unreadable=f"job {job_id}: customVarPosition 21 is out "
                                               "of range")


def test_a_known_job_that_cannot_be_read_is_refused_and_its_table_keeps_its_columns() -> None:
    main, narrow = job(1), job(2, ("session_id", "view_number", "url"), frequency="once")
    placed = place_jobs([unreadable(1), narrow], {1: (main, "views")}, {})
    assert (placed[1].table, placed[1].how) == ("views", "loaded before")
    assert (placed[1].refused or "").startswith(
        "Contentsquare's definition of the job cannot be read (job 1: customVarPosition 21")
    # The ledger's copy of job 1 still holds table views: the narrow job gets its own.
    assert (placed[2].table, placed[2].refused) == ("views_job_2", None)


def test_a_new_job_that_cannot_be_read_keeps_its_scope_table_free() -> None:
    narrow = job(2, ("session_id", "view_number", "url"), frequency="once")
    other_scope = job(3, ("session_id", "session_number"), scope="sessions")
    placed = place_jobs([unreadable(1), narrow, other_scope], {}, {})
    assert placed[1].refused is not None and placed[1].table == "views"   # what it holds
    # It may be the widest recurring views job: no job takes table views before it is read.
    assert placed[2].table == "views" and (placed[2].refused or "").startswith(
        "it waits for job 1, whose definition cannot be read")
    # Its advice: a table of its own (mapped to views, it would take views from job 1).
    assert '[tables] 2 = "views_job_2"' in (placed[2].refused or "")
    assert (placed[3].table, placed[3].refused) == ("sessions", None)
    # Once read, it is placed as if it had never been unreadable.
    assert tables(place_jobs([job(1), narrow, other_scope], {}, {})) == {
        1: "views", 2: "views_job_2", 3: "sessions"}


def test_a_once_job_that_cannot_be_read_does_not_hold_back_a_recurring_one() -> None:
    # Recurring jobs are placed first: a once job, whatever its fields, never takes the
    # scope's table from one. A table already held by a job is not held back either.
    narrow_once = job(4, ("session_id", "view_number"), frequency="once")
    placed = place_jobs([unreadable(1, frequency="once"), job(2), narrow_once], {}, {})
    assert tables(placed) == {1: "views", 2: "views", 4: "views_job_4"}   # 1: its claim
    assert [p.job.job_id for p in placed.values() if p.refused] == [1]
    held = place_jobs([unreadable(1), job(2, FULL, frequency="once")], {2: (job(2), "views")},
                      {})
    assert (held[2].table, held[2].refused) == ("views", None)
    # A once job waits for a once job that cannot be read.
    waits = place_jobs([unreadable(1, frequency="once"), narrow_once], {}, {})
    assert (waits[4].refused or "").startswith("it waits for job 1")
    # A mapped job is where the settings say, waiting for nothing.
    mapped = place_jobs([unreadable(1), narrow_once], {}, {4: "mine"})
    assert (mapped[4].table, mapped[4].refused) == ("mine", None)


def test_a_filtered_copy_with_one_more_field_does_not_take_the_scope_table() -> None:
    # Found by QA (2026-12-08): a colleague's mobile-only daily job with the main job's fields
    # and one more took `views` on a new target; the main job and its device copies went to
    # tables of their own, and `views` held mobile rows only, for good.
    main = job(1)
    wider_mobile = Job(job_id=2, name="mobile plus", format="CSV", scope="views",
                       frequency="daily", device_label="mobile",
                       fields=(*main.fields, JobField("document_width")))
    mobile_copy = Job(job_id=3, name="mobile copy", format="CSV", scope="views",
                      frequency="daily", device_label="mobile", fields=main.fields)
    segment_copy = Job(job_id=4, name="a segment", format="CSV", scope="views",
                       frequency="daily", segment_id=77,
                       fields=(*main.fields, JobField("document_height")))
    placed = place_jobs([wider_mobile, mobile_copy, segment_copy, main], {}, {})
    assert tables(placed) == {1: "views", 2: "views_job_2", 3: "views", 4: "views_job_4"}
    assert not [p for p in placed.values() if p.refused]
    # Among jobs of all the traffic, the widest still wins (and among filtered ones).
    wider_all = job(5, (*FULL, "document_width"))
    assert tables(place_jobs([main, wider_all], {}, {})) == {1: "views_job_1", 5: "views"}


def test_a_mapping_into_a_new_scope_table_does_not_take_it_from_the_main_job() -> None:
    # Found by QA (2026-12-08): `--table 1119=sessions` on a new database gave the legacy
    # job's 8 columns to `sessions`, and every later sync kept the main job in a table of its
    # own. The README promises such a mapping is refused.
    main = job(1120, ("session_id", "user_id", "session_date", "country_code", "device"),
               scope="sessions")
    legacy = job(1119, ("session_id", "user_id"), scope="sessions")
    placed = place_jobs([legacy, main], {}, {1119: "sessions"})
    assert (placed[1120].table, placed[1120].refused) == ("sessions", None)
    assert placed[1119].table == "sessions" and placed[1119].how == "mapped"
    assert '[tables] 1119 = "sessions_job_1119"' in (placed[1119].refused or "")
    # A mapped job whose columns are the main job's shares the table.
    twin = job(7, main.fields, scope="sessions", frequency="once")
    assert place_jobs([twin, main], {}, {7: "sessions"})[7].refused is None
    # Once the mapped job's rows are in the table, it holds it: the main job goes elsewhere.
    held = place_jobs([legacy, main], {1119: (legacy, "sessions")}, {1119: "sessions"})
    assert (held[1119].refused, held[1120].table) == (None, "sessions_job_1120")
    # A mapping into a table no rule uses is the mapped job's alone, as before.
    assert place_jobs([legacy, main], {}, {1119: "legacy"})[1119].refused is None


def test_a_job_mapped_to_a_table_holds_it_while_it_cannot_be_read() -> None:
    # Found by QA (2026-12-08): the main job, unreadable and mapped to `views`, left `views`
    # to a colleague's narrow job; once read, the main job was refused from its own table.
    narrow = job(2, ("session_id", "view_number", "url"))
    placed = place_jobs([unreadable(1), narrow], {}, {1: "views"})
    assert (placed[1].table, placed[1].how) == ("views", "mapped")
    assert (placed[2].refused or "").startswith("it waits for job 1")
    # Mapped there too, the narrow job waits as well.
    both = place_jobs([unreadable(1), narrow], {}, {1: "views", 2: "views"})
    assert (both[2].refused or "").startswith("it waits for job 1")
    # Once read, the main job takes its table and the narrow one goes to its own.
    assert tables(place_jobs([job(1), narrow], {}, {1: "views"})) == {1: "views",
                                                                      2: "views_job_2"}


def test_a_deleted_job_holds_no_table_while_it_cannot_be_read_a_suspended_one_does() -> None:
    # Found by QA (2026-12-08): a deleted colleague job that cannot be read held `views`
    # from the main daily job of a new target, for good.
    for state in ("DELETED", "deleted"):
        gone = replace(unreadable(1), state=state)
        placed = place_jobs([gone, job(2)], {}, {})
        assert (placed[2].table, placed[2].refused) == ("views", None), state
        assert placed[1].refused is not None
    # A suspended main job may still have runs to load: a narrow job took `views` from it
    # while it could not be read, and it went to a table of its own for good.
    suspended = replace(unreadable(1), state="SUSPENDED")
    narrow = job(2, ("session_id", "view_number"))
    assert (place_jobs([suspended, narrow], {}, {})[2].refused or "").startswith(
        "it waits for job 1")


def test_a_filtered_job_that_cannot_be_read_holds_nothing_from_an_all_traffic_one() -> None:
    # Found by QA (2026-12-08): an unreadable mobile copy of the main job held `views` from
    # the main job, which the rule places first anyway.
    mobile = replace(unreadable(2), device_label="mobile")
    placed = place_jobs([mobile, job(1)], {}, {})
    assert (placed[1].table, placed[1].refused) == ("views", None)
    # It still holds it from filtered jobs, which it may come before.
    tablet = replace(job(3, ("session_id", "view_number")), device_label="tablet")
    assert (place_jobs([mobile, tablet], {}, {})[3].refused or "").startswith(
        "it waits for job 2")
    # A job that cannot be read is shown at the table it holds.
    assert placed[2].table == "views"


def test_a_job_of_another_scope_mapped_to_a_scope_table_does_not_take_it() -> None:
    # Found by QA (2026-12-08): `--table 1120=views` gave `views` to the 48-column sessions
    # job, and the main views job went to a table of its own, for good.
    sessions = job(1120, ("session_id", "user_id", "session_date", "country_code", "device",
                          "browser", "os", "city"), scope="sessions")
    placed = place_jobs([sessions, job(1121)], {}, {1120: "views"})
    assert (placed[1121].table, placed[1121].refused) == ("views", None)
    assert placed[1120].table == "views" and placed[1120].refused is not None
