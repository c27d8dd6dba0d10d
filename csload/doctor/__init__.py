"""`csload doctor`: can csload work with this project? The first command to run against the
real service, and the report to attach to a bug report.

    report = run_doctor(settings, db="contentsquare.duckdb")   # or parquet="lake/"
    report.exit_code            # 0: csload can work with the project (warnings allowed); 1: not
    report["sample_csv"].verdict, .summary, .details, .hint, .data
    report.to_json()            # `csload doctor --json`
    save_report(report, "doctor-out/")                           # `csload doctor --save DIR`
    # async code: report = await run_doctor_async(settings, ...)

Doctor talks to the service only through csload's own client (`ExportClient`, on a session of
doctor's that records each exchange) and loads only through the loader `csload sync` uses, so
what it reports is what a sync meets. It sends nothing anywhere else, and makes no request a
sync would not make, except one ranged GET per sampled part (at most `sample_bytes`, 2 MB by
default, of the part). It never provokes the 10-requests limit.

The checks, in order, and their verdicts (ok / warn / fail; skip when an earlier check failed or
there is nothing to check). Exit 1 when any check fails, else 0.

settings        the client id and secret are set, and where each setting came from (flag,
                environment, csload.toml, default); the secret's value is never shown.
                fail: a setting is missing or invalid. Simulator mode is noted when the auth
                URL is a loopback address.
token endpoint  POST {auth_url}/v1/oauth/token answers. fail: no answer (connection refused,
                DNS, TLS, timeout, over the limit or 5xx past the retries), or an answer that
                is no token response (no access_token).
credentials     a token is issued. fail: rejected (401, the service's plain 500 twice, or
                another refusal in the API's error shape, such as account-level credentials
                sent without a project id), with the hint "check the client id and secret;
                credentials expire a year after they are created: create new ones in the
                Contentsquare console". warn: the token is for another project than the
                project id set.
scope           the token's scope. ok: 'data-export', or not stated; warn: another scope;
                fail: the token endpoint answers 403 (no 'data-export' scope, or no access
                to the project id set), or the API refuses the tokens it was given.
API endpoint    the `endpoint` of the token response answers GET /v1/exports. fail: it does
                not answer, answers an error, or is plain http (http is accepted only in
                simulator mode, and only on a loopback address). A missing endpoint is noted
                (csload then uses the auth URL).
proxy           the proxy csload uses, from HTTPS_PROXY / HTTP_PROXY / NO_PROXY (credentials
                removed), for the API and for the storage host. Always ok: it is a fact.
clock           this machine's clock against the API's `Date` header. warn: more than 30 s
                apart (csload compares file expiration and data retention with it).
jobs            the project's export jobs (DELETED ones left out), with their successful runs.
                fail: a job csload cannot load (colliding column names, an unknown scope or
                format) or whose runs cannot be listed; warn: no job at all, or a job exporting
                fields csload's schemas do not know (they load as text).
fields          GET /exportable-fields of each scope against csload's schemas. warn: fields
                the schemas do not know, or a catalog that cannot be read. The catalog's type
                names are shown (the documentation's coarse ones included).
page size       the page size the server really uses, as the client learnt it from the lists
                read (a first page shorter than the limit asked, followed by more). Always ok:
                csload reads every list to its end; "not learnt" when no list was long enough.
over-limit      whether the over-limit answer was seen (429, or a 4xx speaking of a request
                limit), how many times, and with or without Retry-After. warn: seen (another
                client shares the project's 10 concurrent requests).
target          the DuckDB database or Delta lake a sync would write (`db` / `parquet`, as
                for `csload sync`): writable, and its ledger readable. fail: not writable, or
                a ledger that cannot be read; warn: another csload process holds it now, or
                a job of the project that every sync refuses there (a table of yours in its
                place, a column name the target keeps: the `refused:` lines say why). A
                target that does not exist yet is ok when its folder is writable (doctor does
                not create it; for an S3 lake it writes and deletes one probe object). A lake
                other writers committed to: what the next sync keeps or undoes ("next sync:"
                lines); fail where it would refuse the lake (docs/lake.md, "Writing to the
                tables").
CSV sample,     for the newest successful run of each format: the first part's first bytes
JSONL sample    (a ranged GET of at most `sample_bytes`), and what the file really is: gzip or
                not, header row or not, CSV quoting (minimal RFC 4180 or ClickHouse's every
                string quoted), JSONL 64-bit integers as numbers or strings, timestamp arrays
                to the second or to the minute, integers wider than the catalog's guess, and
                its columns against the job's fields. The sample, cut at its last complete
                record, is loaded into an in-memory DuckDB by `DuckDBStore.apply`, as a sync
                loads it. ok: it loads. fail: it does not (the loader's error with its line,
                and the column and value that fail alone), the gzip stream is damaged, the text
                is not UTF-8, storage refuses a fresh URL of files that should still be
                kept, or the newest run's files have expired (storage keeps them 7 days:
                nothing of that format can be loaded now, and its files cannot be checked;
                the hint says how to get a fresh run). warn: no successful run yet (a new
                job). skip: no job of that format.

`--save DIR` (`save_report`) writes report.json, every HTTP exchange (token response, lists,
run details, field catalogs, storage statuses) and the sample's first lines, with the client
id and secret, every token and every URL query string removed.
"""

from __future__ import annotations

from csload.config import setting_sources
from csload.doctor.report import Check, DoctorReport, Verdict
from csload.doctor.run import report_without_settings, run_doctor, run_doctor_async
from csload.doctor.save import check_save_folder, save_report

__all__ = [
    "Check",
    "DoctorReport",
    "Verdict",
    "check_save_folder",
    "report_without_settings",
    "run_doctor",
    "run_doctor_async",
    "save_report",
    "setting_sources",
]
