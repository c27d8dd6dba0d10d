"""Bad targets fail before anything is written; failures inside a batch leave the lake whole.

Also: the ledger of failed and expired runs, `status`, a new column, a reserved column name,
and the swap fallback where the system cannot exchange two folders.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from csload.errors import ConfigError, PartParseError, StoreError
from csload.lake import ParquetStore, connect_lake
from csload.lake.delta import delta_reason
from csload.load.outcome import UnloadedRun
from csload.transfer.staged import StagedPart, StagedRun
from tests.support.lakeutil import Lake
from tests.support.partgen import Writer, job, run
from tests.support.s3server import BUCKET, S3Server

D1 = date(2026, 11, 20)
D2 = D1 + timedelta(days=1)
FIELDS = ["session_id", "view_number", "view_time", "url"]


def vrow(sid: int, day: date, url: str) -> dict[str, Any]:
    return {"session_id": sid, "view_number": 1,
            "view_time": datetime(day.year, day.month, day.day, 9), "url": url}


# --- bad targets: a clear error, nothing written ------------------------------------------

def test_local_root_in_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"folder .*missing.* does not exist"):
        ParquetStore.open(tmp_path / "missing" / "lake")
    assert not (tmp_path / "missing").exists()


def test_local_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "lake").write_text("not a lake")
    with pytest.raises(StoreError, match="is a file, not a folder"):
        ParquetStore.open(tmp_path / "lake")


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Any:
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    # root ignores permission bits: an immutable folder refuses even root
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr: cannot make a folder unwritable")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_local_root_that_cannot_be_written(read_only_folder: Path) -> None:
    with pytest.raises(StoreError, match=r"permission denied|not permitted"):
        ParquetStore.open(read_only_folder / "lake")
    assert list(read_only_folder.iterdir()) == []


def test_missing_bucket(s3_server: S3Server) -> None:
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
        ParquetStore.open("s3://no-such-bucket/lake", storage_options=s3_server.options,
                          env={})


@pytest.mark.parametrize("url", ["s3://lake/dbl//slash", "s3://user@lake/a", "s3://lake/a?x=1"])
def test_a_malformed_s3_url_is_said_as_such(s3_server: S3Server, url: str) -> None:
    """An empty folder name (`//`) failed as "unexpected ArrowInvalid: Empty path component
    ... (a bug in csload ...)" (found by QA, 2026-12-07)."""
    with pytest.raises(ConfigError, match=r"invalid lake URL .*: expected s3://bucket/prefix"):
        ParquetStore.open(url, storage_options=s3_server.options, env={})


def test_reading_a_lake_in_a_missing_bucket_says_so(s3_server: S3Server) -> None:
    """deltalake's own error for it is "Kernel error -> Generic S3 error"."""
    lake = Lake("s3", "s3://no-such-bucket/lake", s3_server.options)
    for read in (lake.status, lake.connect):
        with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
            read()


def test_wrong_credentials(s3_server: S3Server, s3_lake: Lake) -> None:
    bad = {**s3_server.options, "access_key_id": "AKIAWRONGWRONGWRONG",
           "secret_access_key": "wrong"}
    with pytest.raises(StoreError, match=r"refused.*check the credentials"):
        ParquetStore.open(s3_lake.root, storage_options=bad, env={})
    assert s3_lake.files() == []   # nothing written


def test_unreachable_endpoint(s3_lake: Lake) -> None:
    options = {**(s3_lake.options or {}), "endpoint_url": "http://127.0.0.1:9"}
    with pytest.raises(StoreError,
                       match=re.escape("cannot reach the object storage at http://127.0.0.1:9")):
        ParquetStore.open(s3_lake.root, storage_options=options, env={})


def test_bad_options(tmp_path: Path, s3_server: S3Server) -> None:
    with pytest.raises(ConfigError, match="unknown lake storage option"):
        ParquetStore.open(f"s3://{BUCKET}/x", storage_options={"endpoint": "x"}, env={})
    with pytest.raises(ConfigError, match="s3:// lakes only"):
        ParquetStore.open(tmp_path, storage_options={"region": "eu-west-1"})
    with pytest.raises(ConfigError, match="unsupported lake URL"):
        ParquetStore.open("gs://bucket/lake")


def test_status_and_connect_of_no_lake(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"no csload lake at .*csload sync --parquet"):
        Lake.local(tmp_path / "nothing").status()
    with pytest.raises(StoreError, match="no csload lake"):
        connect_lake(tmp_path)
    # the command it gives runs as pasted into a shell: a path with a space is quoted
    spaced = tmp_path / "my lake"
    spaced.mkdir()
    with pytest.raises(StoreError) as info:
        connect_lake(spaced)
    assert f"run `csload sync --parquet '{spaced}'` first" in str(info.value)


# --- failures inside a batch ------------------------------------------------------------------

def test_failed_publish_loads_nothing_and_the_next_apply_is_exact(
        lake: Lake, writer: Writer, monkeypatch: pytest.MonkeyPatch) -> None:
    j = job(1, fields=FIELDS)
    day1 = writer.staged(j, run(10, 1, D1), [[vrow(1, D1, "a"), vrow(2, D1, "a")]])
    rerun = writer.staged(j, run(11, 1, D1, finished_hours=30), [[vrow(1, D1, "b")]])
    real = ParquetStore._commit_ledger
    calls = {"n": 0}

    def flaky(self: ParquetStore, *args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise StoreError("the storage went away")
        return real(self, *args)

    monkeypatch.setattr(ParquetStore, "_commit_ledger", flaky)
    with lake.open() as store:
        store.apply([day1])
        with pytest.raises(StoreError, match="went away"):
            store.apply([rerun])
        # the store rebuilt itself from the lake: the re-run is not loaded, and loads now
        assert store.loaded_runs() == {10}
        assert [o.status for o in store.apply([rerun])] == ["loaded"]
    con = lake.connect()
    assert con.execute("SELECT session_id, url, _run_id FROM views").fetchall() == [
        (1, "b", 11)]
    # the table commit the ledger never recorded was undone when the store rebuilt itself
    assert lake.listed("views", "SELECT session_id, url, _run_id FROM t") == [(1, "b", 11)]


def test_a_part_that_does_not_parse_fails_its_run_only(lake: Lake, writer: Writer,
                                                         tmp_path: Path) -> None:
    j = job(1, fields=FIELDS)
    good = writer.staged(j, run(10, 1, D1), [[vrow(1, D1, "a")]])
    bad_file = tmp_path / "bad.csv.gz"
    bad_file.write_bytes(gzip.compress(b"session_id,view_number,view_time,url\n"
                                       b"1,1,not a time,x\n"))
    bad = StagedRun(j, run(11, 1, D2), (StagedPart(1, bad_file, bad_file.stat().st_size),))
    with lake.open() as store:
        out = store.apply([good, bad])
        assert [o.status for o in out] == ["loaded", "failed"]
        assert isinstance(out[1].error, PartParseError) and out[1].error.line == 2
    status = lake.status()
    assert [r.run_id for r in status.failed] == [11]
    assert lake.connect().execute("SELECT count(*) FROM views").fetchone() == (1,)


def test_failed_and_expired_runs_are_in_the_lake_ledger(lake: Lake, writer: Writer) -> None:
    j = job(1, fields=FIELDS)
    with lake.open() as store:
        store.apply([writer.staged(j, run(10, 1, D1), [[vrow(1, D1, "a")]]),
                     writer.staged(j, run(12, 1, D1 + timedelta(days=3)),
                                   [[vrow(2, D1 + timedelta(days=3), "a")]])])
        store.record_unloaded([UnloadedRun(j, run(20, 1, D2), "failed", "boom")])
        store.record_unloaded([UnloadedRun(j, run(21, 1, D2 + timedelta(days=1)), "expired",
                                           "its files expired")])
        version = store.snapshot.state.batch
        store.record_unloaded([UnloadedRun(j, run(10, 1, D1), "failed",   # loaded stays loaded
                                           "late failure")])
        assert store.snapshot.state.batch == version                 # and nothing is written
    with lake.open() as store:
        assert store.loaded_runs() == {10, 12}
        assert [r.run_id for r in store.ledger.expired_runs()] == [21]
    status = lake.status()
    assert [(r.run_id, r.message) for r in status.failed] == [(20, "boom")]
    assert [r.run_id for r in status.expired] == [21]
    [table] = status.tables
    assert (table.table, table.rows, table.first_date, table.last_date) == (
        "views", 2, D1, D1 + timedelta(days=3))
    [job_status] = status.jobs
    assert job_status.gaps == (D2, D2 + timedelta(days=1))
    assert status.to_json()["target"] == lake.root


def test_a_batch_of_unloaded_runs_is_one_ledger_commit(lake: Lake, writer: Writer) -> None:
    """A first sync can meet hundreds of expired runs: the writer records a batch's failed and
    expired runs with one call, and the lake publishes them with one commit."""
    j = job(1, fields=FIELDS)
    expired = [run(100 + i, 1, D2 + timedelta(days=i)) for i in range(30)]
    with lake.open() as store:
        store.apply([writer.staged(j, run(10, 1, D1), [[vrow(1, D1, "a")]])])
        batch = store.snapshot.state.batch
        recorded = store.record_unloaded(
            [UnloadedRun(j, r, "expired", f"run {r.run_id} expired") for r in expired]
            + [UnloadedRun(j, run(20, 1, D2), "failed", "boom"),
               UnloadedRun(j, run(10, 1, D1), "failed", "late failure")])   # loaded stays
        assert recorded == 31
        assert store.snapshot.state.batch == batch + 1
    with lake.open() as store:
        assert store.loaded_runs() == {10}
        assert sorted(r.run_id for r in store.ledger.expired_runs()) == [r.run_id for r in expired]
    status = lake.status()
    assert [(r.run_id, r.message) for r in status.failed] == [(20, "boom")]


# --- columns ----------------------------------------------------------------------------------

def test_a_new_column_rewrites_the_table_so_every_file_has_one_schema(
        lake: Lake, writer: Writer) -> None:
    with lake.open() as store:
        store.apply([writer.staged(job(1, fields=FIELDS), run(10, 1, D1), [[vrow(1, D1, "a")]])])
        store.apply([writer.staged(job(1, fields=[*FIELDS, "page_title"]), run(11, 1, D2),
                                   [[{**vrow(2, D2, "b"), "page_title": "T"}]])])
    # plain readers, no schema merging: every file has the new column
    got = lake.listed("views", "SELECT session_id, page_title FROM t ORDER BY 1")
    assert got == [(1, None), (2, "T")]
    files = lake.current_files()
    txids = {f.rsplit("/", 1)[1].rsplit("-", 1)[0] for f in files}
    assert len(files) == 2 and len(txids) == 1   # both days rewritten by the second batch


def test_a_column_named_date_is_refused(lake: Lake, writer: Writer) -> None:
    ok = writer.staged(job(1, fields=FIELDS), run(10, 1, D1), [[vrow(1, D1, "a")]])
    clash = writer.staged(job(2, fields=["session_id", "view_number", ("url", "Date")]),
                          run(20, 2, D1), [[{"session_id": 5, "view_number": 1, "Date": "x"}]])
    with lake.open() as store:
        out = store.apply([ok, clash])
    assert [o.status for o in out] == ["loaded", "failed"]
    assert isinstance(out[1].error, ConfigError)
    assert "the lake's partition column" in str(out[1].error)


def test_connect_views_have_the_duckdb_targets_columns(lake: Lake, writer: Writer) -> None:
    with lake.open() as store:
        store.apply([writer.staged(job(1, fields=FIELDS), run(10, 1, D1), [[vrow(1, D1, "a")]])])
    con = lake.connect()
    # A plain DuckDB connection (not a wrapper), checked before anything is run on it.
    assert type(con) is duckdb.DuckDBPyConnection
    names = [r[0] for r in con.execute("DESCRIBE views").fetchall()]
    assert names == ["session_id", "view_number", "view_time", "url", "_job_id", "_run_id",
                     "_date", "_loaded_at"]
    assert con.execute("SELECT count(*) FROM _csload.runs WHERE status = 'loaded'"
                       ).fetchone() == (1,)
    assert con.execute("SELECT typeof(supersede_order) FROM _csload.runs").fetchone() == (
        "HUGEINT",)


def test_done_runs_read_only_for_dry_runs(lake: Lake, writer: Writer) -> None:
    from csload.lake import lake_done_runs

    assert lake_done_runs(lake.root, storage_options=lake.options, env={}) == set()
    assert lake.files() == []   # reading a lake that is not there creates nothing
    j = job(1, fields=FIELDS)
    with lake.open() as store:
        store.apply([writer.staged(j, run(10, 1, D1), [[vrow(1, D1, "a")]])])
        store.record_unloaded([UnloadedRun(j, run(11, 1, D2), "expired", "its files expired")])
        # it reads only: it works while a sync writes the lake
        assert lake_done_runs(lake.root, storage_options=lake.options, env={}) == {10, 11}


def test_deltalakes_error_chain_is_said_with_its_cause() -> None:
    """Only the first line was shown: "Kernel error -> Generic S3 error" for every storage
    failure, the status and S3's code on later lines (found by QA, 2026-12-07). The text is
    deltalake 1.6's, for a refused signature (moto) and an unreachable instance role."""
    refused = OSError(
        "Kernel error -> The operation lacked the necessary privileges to complete for path "
        "a/views/_delta_log/_last_checkpoint\n          \x1b[31m↳\x1b[0m Error performing GET "
        "http://127.0.0.1:18810/lake/a/views/_delta_log/_last_checkpoint in 6.8ms - Server "
        "returned non-2xx status code\n           \x1b[31m↳\x1b[0m 403 Forbidden\n"
        '            \x1b[31m↳\x1b[0m <?xml version="1.0" encoding="utf-8"?>\n<Error><Code>'
        "SignatureDoesNotMatch</Code><Message>The request signature ...</Message></Error>\n")
    assert delta_reason(refused) == (
        "Kernel error -> The operation lacked the necessary privileges to complete for path "
        "a/views/_delta_log/_last_checkpoint (403 Forbidden; SignatureDoesNotMatch)")
    no_role = OSError("Kernel error -> Generic S3 error: Error after 10 retries in 180s\n"
                      "  ↳ error sending request for url (http://169.254.169.254/latest/api/"
                      "token?X-Amz-Signature=abcdef0123456789abcdef)")
    said = delta_reason(no_role)
    assert said.startswith("Kernel error -> Generic S3 error: Error after 10 retries in 180s (")
    assert "169.254.169.254" in said and "abcdef0123456789" not in said, said
