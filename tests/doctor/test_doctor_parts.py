"""The pieces of doctor on their own: reading a sample's text, describing it, the loader trial,
redaction, where settings come from, and the target check."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from csload.api.models import Job, JobField, Run
from csload.config import Settings
from csload.doctor import setting_sources
from csload.doctor.catalog import check_jobs
from csload.doctor.fetch import inflate
from csload.doctor.fileinfo import describe_csv, describe_jsonl
from csload.doctor.record import Exchange, redact_exchange, redact_tree
from csload.doctor.report import Check, Verdict, clean
from csload.doctor.target_check import check_target
from csload.doctor.textscan import NotCsv, csv_cut, csv_records, jsonl_cut
from csload.doctor.trial import load_trial
from csload.lake.layout import RESERVED_COLUMNS
from tests.support.s3server import S3Server

VIEWS = Job(job_id=7, name="v", format="CSV", scope="views", frequency="daily",
            fields=(JobField("session_id"), JobField("view_number"), JobField("url", "page"),
                    JobField("errors.error_time")))
SESSIONS = Job(job_id=8, name="s", format="JSONL", scope="sessions", frequency="daily",
               fields=(JobField("session_id"), JobField("session_number"),
                       JobField("app_events.event_time")))
RUN = Run(run_id=70, job_id=7, state="SUCCESS", start_date=datetime(2026, 11, 24, tzinfo=UTC),
          end_date=datetime(2026, 11, 25, tzinfo=UTC),
          finished_at=datetime(2026, 11, 25, 4, tzinfo=UTC))


def test_csv_records_keep_how_values_were_written() -> None:
    text = 'a,"b,""c""",\\N,""\r\n1,"x\ny",\n'
    records = list(csv_records(text))
    assert [r.values for r in records] == [("a", 'b,"c"', "\\N", ""), ("1", "x\ny", "")]
    assert [[c.quoted for c in r.cells] for r in records] == [[False, True, False, True],
                                                             [False, True, False]]
    assert records[0].cells[2].is_null and not records[0].cells[3].is_null
    assert [r.line for r in records] == [1, 2]
    with pytest.raises(NotCsv, match="line 1"):
        list(csv_records('ab"c,d\n'))


def test_cut_at_the_last_complete_record() -> None:
    text = 'a,b\n1,"multi\nline"\n2,"cut off\nhere'
    assert text[:csv_cut(text)] == 'a,b\n1,"multi\nline"\n'
    assert csv_cut('"only, a part') == 0
    assert jsonl_cut('{"a":1}\n{"a":') == 8


def test_describe_csv_quoting_and_header() -> None:
    minimal = ('session_id,view_number,page,errors.error_time\n'
               "1,2,https://x/a,\"['2026-11-24 10:00','2026-11-24 10:01']\"\n"
               '3,4,"a,b",[]\n')
    facts = describe_csv(minimal, VIEWS)
    assert facts.header is True and facts.quoting == "minimal" and facts.records == 2
    assert facts.time_arrays["errors.error_time"]["minute"] == 2
    clickhouse = ('1,2,"https://x/a","[\'2026-11-24 10:00:01\']"\n'
                  '3,70000,"plain","[]"\n')
    facts = describe_csv(clickhouse, VIEWS)
    assert facts.header is False and facts.quoting == "clickhouse"
    assert facts.wide == {"view_number": 70000}
    facts = describe_csv('1,2,"x"\n', VIEWS)
    assert facts.problems == ["1 record(s) have 3 columns where the job has 4"]


def test_describe_jsonl_64_bit_integers() -> None:
    numbers = ('{"session_id":18446744073709551615,"session_number":1,'
               '"app_events.event_time":["2026-11-24 10:00:00"]}\n')
    facts = describe_jsonl(numbers, SESSIONS)
    assert facts.int64_style == "numbers"
    assert facts.time_arrays["app_events.event_time"]["second"] == 1
    strings = '{"session_id":"18446744073709551615","session_number":"70000","extra":1}\n\n'
    facts = describe_jsonl(strings, SESSIONS)
    assert facts.int64_style == "strings"
    assert facts.wide == {"session_number": 70000}
    assert facts.extra == ["extra"] and facts.missing == ["app_events.event_time"]


def test_inflate_a_cut_off_gzip_sample() -> None:
    body = b"".join(b"line %d\n" % i for i in range(20000))
    packed = gzip.compress(body) + gzip.compress(b"second member\n")
    assert inflate(packed) == (body + b"second member\n", True)
    text, ended = inflate(packed[: len(packed) // 3])
    assert not ended and body.startswith(text) and text
    assert inflate(packed, limit=100) == (body[:100], False)


@pytest.mark.parametrize(("job", "text", "culprit"), [
    (VIEWS, "session_id,view_number,page,errors.error_time\n1,2,a,[]\n3,oops,b,[]\n",
     ("view_number", "oops")),
    (VIEWS, "1,2,a,[]\n3,4,b,\"['not a time']\"\n",
     ("errors.error_time", "\"['not a time']\"")),
    (SESSIONS, '{"session_id":1,"session_number":2}\n{"session_id":-5,"session_number":2}\n',
     ("session_id", "-5")),
])
def test_trial_names_the_column_and_value(tmp_path: Path, job: Job, text: str,
                                          culprit: tuple[str, str]) -> None:
    result = load_trial(job, RUN, 1, text, compress=True, folder=tmp_path)
    assert not result.loaded and result.error
    assert result.line == text.count("\n")   # the last record
    assert result.culprits == [culprit]
    assert list(tmp_path.iterdir()) == []    # the trial's part files are gone


def test_trial_loads_what_sync_loads(tmp_path: Path) -> None:
    text = "session_id,view_number,page,errors.error_time\n1,2,a,[]\n3,4,\"b,c\",[]\n"
    result = load_trial(VIEWS, RUN, 1, text, compress=False, folder=tmp_path)
    assert result.loaded and result.rows == 2 and result.culprits == []


def test_jobs_csload_cannot_load_or_loads_as_text() -> None:
    unknown = Job(job_id=9, name="n", format="CSV", scope="views", frequency="daily",
                  fields=(JobField("session_id"), JobField("brand_new_field")))
    check = Check("jobs", "jobs")
    check_jobs(check, [unknown], {9: 2}, {})
    assert check.verdict is Verdict.WARN
    assert "loaded as text: brand_new_field" in check.details[0]
    assert "2 successful runs" in check.details[0]
    colliding = Job(job_id=10, name="c", format="JSONL", scope="views", frequency="daily",
                    fields=(JobField("url", "Page"), JobField("path", "page")))
    check = Check("jobs", "jobs")
    check_jobs(check, [colliding, unknown], {}, {9: "HTTP 500"})
    assert check.verdict is Verdict.FAIL
    assert "csload cannot load 2 of them" in check.summary
    assert "job 9: its runs cannot be listed: HTTP 500" in check.summary
    assert "job 10: columns 'Page' and 'page' both become 'page'" in check.summary
    assert "job 10: job 10" not in check.summary


def test_a_column_named_date_fails_the_jobs_check_of_a_lake_only() -> None:
    dated = Job(job_id=11, name="d", format="CSV", scope="views", frequency="daily",
                fields=(JobField("session_id"), JobField("url", "Date")))
    for reserved, verdict in ((None, Verdict.OK), (RESERVED_COLUMNS, Verdict.FAIL)):
        check = Check("jobs", "jobs")
        check_jobs(check, [dated], {11: 1}, {}, reserved)
        assert check.verdict is verdict
    assert "job 11: column 'Date' (named 'date') is the lake's partition column" \
        in check.summary


def test_redaction() -> None:
    secrets = ("the-secret", "the-client", "tok123456789")
    tree = {"access_token": "tok123456789", "token_type": "Bearer", "clientId": "x",
            "note": "the-client used the-secret", "files": [
                {"url": "https://s3.example/p/part-1.csv.gz?X-Amz-Signature=abc&sig=1"}]}
    assert redact_tree(tree, secrets) == {
        "access_token": "<redacted>", "token_type": "Bearer", "clientId": "<redacted>",
        "note": "<redacted> used <redacted>",
        "files": [{"url": "https://s3.example/p/part-1.csv.gz?<redacted>"}]}
    exchange = Exchange("api", "GET", "https://api.example/v1/exports?page=1&limit=100&x=y",
                        0.0, status=200, headers={"Date": "d", "Location": "https://a/b?sig=1"},
                        body=b"not json: Bearer tok123456789")
    saved = redact_exchange(exchange, secrets)
    assert saved["request"] == {"method": "GET", "url": "https://api.example/v1/exports?<redacted>",
                                "query": {"page": "1", "limit": "100"}}
    assert saved["headers"] == {"Date": "d", "Location": "https://a/b?<redacted>"}
    assert "tok123456789" not in saved["bodyText"]


def test_clean_escapes_control_characters() -> None:
    assert clean("a\x1b[2Jb\r\n\u202ec") == "a\\x1b[2Jb\\x0d\\x0a\\u202ec"
    assert clean("x" * 500, limit=10) == "xxxxxxx..."


def test_setting_sources(tmp_path: Path) -> None:
    config = tmp_path / "csload.toml"
    config.write_text('client_secret = "s"\nproject_id = 3\n')
    sources = setting_sources({"client_id": "flagged", "client_secret": None},
                              environ={"CONTENTSQUARE_CLIENT_ID": "env",
                                       "CONTENTSQUARE_PROJECT_ID": "4"},
                              config_file=config)
    assert sources == {"client_id": "flag --client-id", "client_secret": str(config),
                       "project_id": "environment CONTENTSQUARE_PROJECT_ID",
                       "auth_url": "default"}


def test_setting_sources_expands_the_home_of_the_file_loaded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The doctor named the settings file "~/csload.toml" while load_settings read the home's.
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "csload.toml").write_text('client_secret = "s"\n')
    sources = setting_sources({}, environ={}, config_file=Path("~/csload.toml"))
    assert sources["client_secret"] == str(tmp_path / "csload.toml")


def test_target_check(tmp_path: Path) -> None:
    def check(db: Path | None = None, parquet: Path | None = None) -> Check:
        result = Check("target", "target")
        check_target(result, db=db, parquet=parquet)
        return result

    assert check(db=tmp_path / "no" / "x.duckdb").verdict is Verdict.FAIL
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"not a database at all" * 100)
    assert check(db=garbage).verdict is Verdict.FAIL
    assert check(db=tmp_path / "new.duckdb").verdict is Verdict.OK
    assert not (tmp_path / "new.duckdb").exists()
    lake = check(parquet=tmp_path / "lake")
    assert lake.verdict is Verdict.OK and "does not exist yet" in lake.summary
    assert check(db=tmp_path / "a", parquet=tmp_path / "b").verdict is Verdict.FAIL
    # A database of the user's own: a table named after a scope makes the first sync refuse
    # its jobs (csload.load.placement); other tables of theirs are only listed.
    theirs = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(theirs)) as con:
        con.execute("CREATE TABLE orders (id INTEGER)")
    quiet = check(db=theirs)
    assert quiet.verdict is Verdict.OK and "no csload ledger yet" in quiet.summary
    assert quiet.details == ["tables of yours (csload never loads into them): orders"]
    with duckdb.connect(str(theirs)) as con:
        con.execute("CREATE VIEW views AS SELECT 1 AS x")
    warned = check(db=theirs)
    assert warned.verdict is Verdict.WARN, warned.summary
    assert "a table of yours named views" in warned.summary and "[tables]" in warned.hint


def test_settings_never_shown(tmp_path: Path) -> None:
    from csload.doctor.report import DoctorReport
    from csload.doctor.settings import check_settings

    report = DoctorReport()
    check_settings(report["settings"], Settings(client_id="cid-1", client_secret="sec-2"),
                   {"client_id": "flag --client-id"})
    text = str(report.to_json())
    assert "cid-1" not in text and "sec-2" not in text
    assert report["settings"].summary == "client id and secret found (flag)"


def test_target_check_of_an_s3_lake(s3_server: S3Server) -> None:
    """Writable (a probe object put and deleted), no ledger yet; wrong keys fail."""
    good = Check("target", "target")
    check_target(good, parquet="s3://lake/doctor-probe", storage_options=s3_server.options)
    assert good.verdict is Verdict.OK, good.summary
    assert "is writable; no csload ledger yet" in good.summary
    wrong = {**s3_server.options, "secret_access_key": "not-the-key"}
    bad = Check("target", "target")
    check_target(bad, parquet="s3://lake/doctor-probe", storage_options=wrong)
    assert bad.verdict is Verdict.FAIL
    assert "not-the-key" not in bad.summary
