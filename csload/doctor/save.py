"""`csload doctor --save DIR`: the report and the raw material behind it, ready to attach.

Everything written was redacted when it was recorded (csload.doctor.record): no client id or
secret, no token, no URL query string (a part URL's is its signature). The sampled lines are
the project's own data: the README written beside them says so.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from csload.doctor.report import DoctorReport
from csload.errors import ConfigError

README = """\
csload doctor: what it found, and what the service answered (for a bug report).

report.json    every check, its verdict and findings (what `csload doctor --json` prints)
responses/     each HTTP exchange of the run, in order: the token response, the API's lists,
               the run details, the field catalogs, and the storage answers (status and
               headers only)
samples/       the first lines of each sampled part: YOUR PROJECT'S DATA; look before you
               send them anywhere

Removed from every file: the client id and secret, every access token, any value whose key
names a secret, and the query string of every URL (a part URL's query string is its
signature). Request headers and bodies were never recorded. Nothing was sent anywhere.
"""


def check_save_folder(folder: str | Path) -> Path:
    """`folder`, which must be new or empty (doctor never overwrites or mixes files), and not
    another user's: they could read the project's data saved there, or change the report."""
    path = Path(folder)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"--save: {path} exists and is not an empty folder; name a new one")
    if path.exists() and hasattr(os, "geteuid") and path.stat().st_uid != os.geteuid():
        raise ConfigError(f"--save: {path} is owned by another user (uid {path.stat().st_uid}), "
                          "who could read your project's data saved there; name a folder of "
                          "your own")
    return path


def save_report(report: DoctorReport, folder: str | Path) -> list[Path]:
    """Write the report, the redacted responses and the sample lines into `folder` (new or
    empty); the paths written."""
    root = check_save_folder(folder)
    written: list[Path] = []
    # Private, whatever the umask: samples/ holds the project's data (user ids, referrers).
    root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def write(relative: str, data: bytes) -> None:
        path = root / relative
        path.parent.mkdir(mode=0o700, exist_ok=True)
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        written.append(path)

    pretty = orjson.OPT_INDENT_2
    write("README.txt", README.encode())
    write("report.json", orjson.dumps(report.to_json(), option=pretty))
    for response in report.responses:
        write(f"responses/{response.name}", orjson.dumps(response.content, option=pretty))
    for sample in report.samples:
        write(f"samples/{sample.name}", sample.text.encode())
    return written
