"""What `csload doctor` found: one `Check` per question, and the `DoctorReport` holding them.

Every text in a check is safe to print as is: no secret, token or URL signature (they are never
put in), and no control character (`clean` escapes those of strings the API or a file sent,
which could otherwise move a terminal's cursor or hide text).
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from csload import __version__


class Verdict(enum.StrEnum):
    OK = "ok"
    WARN = "warn"        # csload works, but something deserves a look
    FAIL = "fail"        # csload cannot work with the project until this is fixed
    SKIP = "skip"        # not checked: an earlier check failed, or nothing to check


def clean(value: object, limit: int = 300) -> str:
    """`value` as one printable line: control and format characters escaped, length bounded."""
    text = str(value)
    out = []
    for char in text:
        if unicodedata.category(char).startswith("C") and char != " ":
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    result = "".join(out)
    return result if len(result) <= limit else result[: limit - 3] + "..."


@dataclass
class Check:
    """One question doctor answers. `summary` is the verdict line's text; `details` the lines
    under it; `hint` what to do when it is not ok; `data` the machine-readable findings."""

    id: str
    title: str
    verdict: Verdict = Verdict.SKIP
    summary: str = ""
    details: list[str] = field(default_factory=list)
    hint: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def set(self, verdict: Verdict, summary: str, hint: str | None = None) -> None:
        self.verdict = verdict
        self.summary = summary
        if hint is not None:
            self.hint = hint

    def skip(self, why: str) -> None:
        self.set(Verdict.SKIP, why)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "verdict": self.verdict.value,
                "summary": self.summary, "details": list(self.details), "hint": self.hint,
                "data": self.data}


# Every check, in the order doctor runs and prints them: id -> title.
CHECKS: dict[str, str] = {
    "settings": "settings",
    "token_endpoint": "token endpoint",
    "credentials": "credentials",
    "scope": "scope",
    "endpoint": "API endpoint",
    "proxy": "proxy",
    "clock": "clock",
    "jobs": "jobs",
    "fields": "fields",
    "paging": "page size",
    "over_limit": "over-limit answer",
    "target": "target",
    "sample_csv": "CSV sample",
    "sample_jsonl": "JSONL sample",
}


@dataclass(frozen=True, slots=True)
class SavedResponse:
    """One HTTP exchange as `--save` writes it: redacted already (csload.doctor.record)."""

    name: str
    content: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SampleLines:
    """The first lines of a sampled part, for `--save` (the user's own data)."""

    name: str
    text: str


@dataclass
class DoctorReport:
    """Every check, and the redacted raw material `save_report` writes."""

    checks: dict[str, Check] = field(
        default_factory=lambda: {id_: Check(id_, title) for id_, title in CHECKS.items()})
    simulator: bool = False
    responses: list[SavedResponse] = field(default_factory=list)
    samples: list[SampleLines] = field(default_factory=list)

    def __getitem__(self, check_id: str) -> Check:
        return self.checks[check_id]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks.values() if c.verdict is Verdict.FAIL]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks.values() if c.verdict is Verdict.WARN]

    @property
    def ok(self) -> bool:
        """csload can work with this project (warnings allowed)."""
        return not self.failed

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def conclusion(self) -> str:
        if self.failed:
            names = ", ".join(c.title for c in self.failed)
            return f"csload cannot work with this project yet: {len(self.failed)} check(s) " \
                   f"failed ({names})"
        warned = len(self.warnings)
        return "csload can work with this project" + (
            f" ({warned} warning{'s' if warned != 1 else ''})" if warned else "")

    def to_json(self) -> dict[str, Any]:
        return {"csloadVersion": __version__, "ok": self.ok, "exitCode": self.exit_code,
                "simulator": self.simulator, "conclusion": self.conclusion,
                "checks": [c.to_json() for c in self.checks.values()]}
