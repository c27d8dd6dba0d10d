"""The `sample_csv` and `sample_jsonl` checks: the first part of the newest successful run of
each format, sampled (csload.doctor.fetch), described (csload.doctor.fileinfo) and loaded by
the loader sync uses (csload.doctor.trial).

Verdicts: ok when the sample loads; fail when csload cannot load it (the loader's error, with
the column and value when doctor finds them), or storage refuses a URL whose files should still
be kept, or the newest run's files have expired. That last one is a failure because doctor's
exit 0 says "csload can work with this project", which it cannot say of a format none of whose
files it could read; and a sync would load nothing of that format either (every older run has
expired too). The hint says how to get a fresh run. No successful run yet (a new job) is a
warning: its first run will be checked when it comes, and nothing is lost meanwhile; no job of
a format at all is a skip.
"""

from __future__ import annotations

import codecs
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import anyio
import anyio.to_thread

from csload.api.client import ExportClient
from csload.api.models import Job, Part, Run, kept_until
from csload.config import Settings
from csload.doctor.fetch import Head, Refused, fetch_head, inflate
from csload.doctor.fileinfo import FileFacts, describe_csv, describe_jsonl
from csload.doctor.report import Check, Verdict, clean
from csload.doctor.textscan import csv_cut, jsonl_cut
from csload.doctor.trial import TrialResult, load_trial
from csload.errors import CsloadError
from csload.https_rule import plain_http_allowed
from csload.load.supersede import run_order

# Lines of the sample `--save` keeps (the header, when there is one, and a few records).
SAVED_LINES = 6

BACKFILL_HINT = ("storage keeps a run's files 7 days, and the newest run of this format is "
                 "older: check that its job is still ACTIVE (`csload jobs`), or export recent "
                 "days again with `csload backfill --gaps` (a once job), then run doctor again; "
                 "sync at least daily so that every run loads in time")


@dataclass
class Sample:
    """What one sample check found (its check holds the verdict and the text)."""

    proxy: str | None = None
    first_lines: str = ""
    name: str = ""


def newest_runs(jobs: Sequence[Job], runs: Mapping[int, Sequence[Run]]
                ) -> dict[str, tuple[Job, Run] | None]:
    """Per format with a job: its newest successful run, by the order runs supersede each
    other in (None: none yet)."""
    out: dict[str, tuple[Job, Run] | None] = {job.format: None for job in jobs}
    for job in jobs:
        for run in runs.get(job.job_id, ()):
            best = out[job.format]
            if best is None or run_order(run) > run_order(best[1]):
                out[job.format] = (job, run)
    return out


def _where(job: Job, run: Run) -> str:
    window = f", window {run.start_date:%Y-%m-%d}" if run.start_date else ""
    return f"job {job.job_id} ({clean(job.name, 60)}), run {run.run_id}{window}"


async def check_sample(check: Check, fmt: str, chosen: tuple[Job, Run] | None, *,
                       has_job: bool, client: ExportClient, session: aiohttp.ClientSession,
                       settings: Settings, sample_bytes: int) -> Sample:
    sample = Sample()
    if not has_job:
        check.skip(f"no {fmt} job in the project")
        return sample
    if chosen is None:
        check.set(Verdict.WARN, f"no successful {fmt} run yet: nothing to sample",
                  "run doctor again after the first run of the job has finished")
        return sample
    job, run = chosen
    check.data = {"jobId": job.job_id, "runId": run.run_id}
    try:
        detail = await client.get_run(job.job_id, run.run_id)
    except CsloadError as exc:
        check.set(Verdict.FAIL, f"{_where(job, run)}: the run detail cannot be read: "
                  f"{clean(exc)}")
        return sample
    parts = sorted(detail.parts or (), key=lambda p: p.part_id)
    if not parts:
        check.set(Verdict.WARN, f"{_where(job, run)} lists no file: nothing to sample")
        return sample
    part = parts[0]
    check.data.update(partId=part.part_id, parts=len(parts))
    try:
        head = await fetch_head(session, part.url, max_bytes=sample_bytes,
                                limits=settings.limits, retry=settings.retry,
                                proxies=client.proxies, sleep=anyio.sleep,
                                loopback_http=plain_http_allowed(settings.auth_url))
    except Refused as refused:
        _refused(check, job, detail, part, refused)
        return sample
    except CsloadError as exc:
        check.set(Verdict.FAIL, f"{_where(job, run)}, part {part.part_id}: {clean(exc)}",
                  "check the network access to the storage host and the proxy settings")
        return sample
    sample.proxy = head.proxy
    sample.name = f"sample-{fmt.lower()}-job{job.job_id}-run{run.run_id}-part{part.part_id}.txt"
    with tempfile.TemporaryDirectory(prefix="csload-doctor-") as folder:
        await _judge(check, sample, job, detail, part, len(parts), head, Path(folder))
    return sample


def _refused(check: Check, job: Job, run: Run, part: Part, refused: Refused) -> None:
    kept = kept_until(part, run)
    now = refused.server_time or datetime.now(UTC)
    check.data.update(status=refused.status,
                      keptUntil=kept.isoformat() if kept else None)
    if kept is not None and now >= kept:
        check.data["expired"] = True
        check.set(Verdict.FAIL, f"{_where(job, run)}: its files have expired (kept until "
                  f"{kept:%Y-%m-%d %H:%M} UTC; storage answered HTTP {refused.status}): "
                  "the format could not be checked", BACKFILL_HINT)
        return
    until = f" until {kept:%Y-%m-%d %H:%M} UTC" if kept else ""
    check.set(Verdict.FAIL, f"{_where(job, run)}, part {part.part_id}: storage answered HTTP "
              f"{refused.status} for a freshly signed URL, although the files should be "
              f"kept{until}",
              "check the proxy (a proxy must pass part URLs unchanged) and this machine's "
              "clock; report it with `csload doctor --save DIR` if it lasts")


async def _judge(check: Check, sample: Sample, job: Job, run: Run, part: Part, parts: int,
                 head: Head, folder: Path) -> None:
    is_gzip = head.data[:2] == b"\x1f\x8b"
    size = f"{head.total:,} bytes" if head.total is not None else "size not announced"
    got = "the whole part" if head.whole else f"its first {len(head.data):,} bytes"
    check.details = [f"{_where(job, run)}: part {part.part_id} of {parts} ({size}); read {got}",
                     "compression: " + ("gzip" if is_gzip else "none (plain text)")]
    check.data.update(bytes=head.total, sampled=len(head.data), whole=head.whole,
                      gzip=is_gzip)
    try:
        raw, ended = inflate(head.data) if is_gzip else (head.data, True)
    except zlib.error as exc:
        check.set(Verdict.FAIL, f"part {part.part_id}: the gzip stream is damaged ({exc})",
                  "download it again (`csload sync` does, up to its retry budget); report it "
                  "if it lasts")
        return
    complete = head.whole and ended
    damaged = head.whole and not ended
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(raw, final=complete)
    except UnicodeDecodeError as exc:
        check.set(Verdict.FAIL, f"part {part.part_id} is not UTF-8 text (byte {exc.start} of "
                  "the inflated sample)", "report it: the export format is UTF-8")
        return
    csv = job.format == "CSV"
    cut = len(text) if complete else (csv_cut(text) if csv else jsonl_cut(text))
    body = text[:cut]
    sample.first_lines = "".join(body.splitlines(keepends=True)[:SAVED_LINES])
    facts = (describe_csv if csv else describe_jsonl)(body.removeprefix("\ufeff"), job)
    check.details += facts.lines()
    check.data["file"] = facts.to_json()
    if not body.strip():
        if complete:
            check.set(Verdict.OK, f"part {part.part_id} is empty (a run with no rows)")
        else:
            check.set(Verdict.WARN, "the sample holds no complete record: not checked",
                      "a record longer than the sample is unusual: report it")
        return
    result = await anyio.to_thread.run_sync(
        lambda: load_trial(job, run, part.part_id, body, compress=is_gzip, folder=folder))
    check.data["load"] = result.to_json()
    _verdict(check, facts, result, complete, part.part_id)
    if damaged and check.verdict is Verdict.OK:
        check.set(Verdict.WARN, f"{check.summary}, but the gzip stream of the whole part ends "
                  "early: a damaged download",
                  "a sync downloads a damaged part again; report it if doctor keeps saying so")


def _verdict(check: Check, facts: FileFacts, result: TrialResult, complete: bool,
             part_id: int) -> None:
    what = _style(facts)
    if result.loaded:
        cut = "" if complete else " (the sample cut at its last complete record)"
        check.details.append(f"csload loads it: {result.rows} rows{cut}")
        check.set(Verdict.OK, f"{what}; csload loads it ({result.rows} rows)")
        return
    where = f" (line {result.line})" if result.line else ""
    culprits = "; ".join(f"column {c}: value {v}" for c, v in result.culprits)
    if culprits:
        check.details.append(f"what fails{where}: {culprits}")
    check.set(Verdict.FAIL, f"{what}; csload cannot load part {part_id}{where}: {result.error}"
              + (f" [{culprits}]" if culprits else ""),
              "report it with `csload doctor --save DIR` attached: the saved sample shows "
              "the file's first lines")


def _style(facts: FileFacts) -> str:
    if facts.format == "CSV":
        header = "with a header row" if facts.header else "without a header row"
        quoting = {"minimal": "minimal quoting", "clickhouse": "ClickHouse quoting",
                   "all": "every value quoted", "mixed": "mixed quoting",
                   "unknown": "quoting unknown", None: "quoting unknown"}[facts.quoting]
        return f"CSV {header}, {quoting}"
    ints = {"numbers": "64-bit integers as numbers", "strings": "64-bit integers as strings",
            "both": "64-bit integers as numbers and strings",
            None: "no 64-bit integer in the sample"}[facts.int64_style]
    return f"JSONL, {ints}"
