"""What every command shares: connection options, settings, running async work, failing."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
import orjson
from rich.console import Console

from csload.cli.streams import writes_utf8
from csload.config import Settings, load_settings, parse_duration
from csload.errors import ConfigError, CsloadError

if TYPE_CHECKING:
    from rich.text import Text

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130   # 128 + SIGINT, as shells and csload.cli.interrupt say
# The width of a console that is not a terminal: wide enough for any table csload prints.
OFF_TERMINAL_WIDTH = 4096

def _console(*, stderr: bool) -> Console:
    # No markup: what csload prints holds text it does not control (job names, field names,
    # error messages quoting a part's line), which rich would read as tags: `[daily] views`
    # lost its `[daily]`, a `[/]` crashed the command. Styles are applied explicitly
    # (`labelled`).
    made = Console(stderr=stderr, soft_wrap=True, markup=False, highlight=False)
    if not made.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        # Piped or in a cron log, rich would assume 80 columns and cut table cells
        # (`SUSPEND…`, dates split over two lines): a table takes the width it needs.
        # COLUMNS, when set, is the user's own choice of width.
        made.width = OFF_TERMINAL_WIDTH
    return made


# Made at import. (They were made on first use, so that `csload sync --json` never imported
# rich: an A/B of the no-op sync, 20 interleaved runs each, measured that at -1.6 % / +2.4 %,
# below the 5 % a speed mechanism must pay; issue 17.)
stdout = _console(stderr=False)
stderr = _console(stderr=True)


def console(name: str) -> Console:
    """The Console of `stdout` or `stderr`, by name."""
    return stdout if name == "stdout" else stderr


# Control characters (C0, DEL, C1) and the Unicode controls that reorder or hide text (bidi
# embeddings, overrides and isolates; zero-width marks): in a job name, a field name or an
# error message quoting a file they could move the cursor, retitle the terminal, rewrite what
# was printed above, or forge a log line. Tab and line breaks become a space: a message stays
# one line.
_CONTROL = re.compile("[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f"
                      "\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_BREAK = re.compile("[\t\n\r]")


def scrub(text: object) -> str:
    """`text` safe to print on a terminal or in a log: no control character. Every string
    csload prints that it did not write itself (from the API, a file, an exception) passes
    here."""
    return _CONTROL.sub("", _BREAK.sub(" ", str(text)))


def labelled(label: str, style: str, text: str) -> Text:
    """`label` in `style`, then `text`, scrubbed of control characters (`scrub`)."""
    from rich.text import Text

    return Text.assemble((label, style), scrub(text))


# -- one format for every log line ------------------------------------------------------------

# A log record and a line of a progress display off a terminal look the same: an ISO 8601 UTC
# timestamp, the level, where it comes from, the message. One line per event, never wrapped.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogFormatter(logging.Formatter):
    """LOG_FORMAT, its time as `2026-11-25T04:21:13.250Z`: sortable, and the same in a cron
    log whatever the machine's time zone."""

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def format(self, record: logging.LogRecord) -> str:
        # Formatter.format, with the message scrubbed: it may quote the API or a file. A
        # traceback (-vv) keeps its line breaks.
        record.message = scrub(record.getMessage())
        record.asctime = self.formatTime(record)
        line = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for extra in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            if extra:
                line += "\n" + _CONTROL.sub("", extra)
        return line


_FORMATTER = LogFormatter()


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each record to `sys.stderr` as it is at that moment, not as it was when the
    handler was made: on a terminal the live progress display puts a proxy there, which
    prints the line above the progress bar instead of through it."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_FORMATTER)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass   # StreamHandler.__init__ sets it; the stream is always the current stderr


def log_line(level: int, name: str, message: str) -> str:
    """`message` as the log record of logger `name` at `level` would be printed (LOG_FORMAT):
    the progress displays print their lines with it, whatever the logging configuration."""
    record = logging.LogRecord(name, level, __file__, 0, message, None, None)
    return _FORMATTER.format(record)


# -- failing ----------------------------------------------------------------------------------

# ctx.meta keys (the root context's meta is every context's): the command line as given, and
# whether a JSON document was printed on stdout already.
ARGV_KEY = "csload.argv"
PRINTED_JSON_KEY = "csload.printed_json"


def json_wanted(ctx: click.Context | None = None) -> bool:
    """Whether the command running was given --json: its `as_json` parameter or a parent's
    (`jobs --json show 3`), or, when the error came before the parameters were read (a usage
    error), `--json` on the command line."""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return False
    argv: list[str] = ctx.meta.get(ARGV_KEY, [])
    options = argv[:argv.index("--")] if "--" in argv else argv   # after "--": arguments
    if "--json" in options:
        return True
    while ctx is not None:
        if ctx.params.get("as_json"):
            return True
        ctx = ctx.parent
    return False


def error_json(message: str, kind: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "kind": kind, "exitCode": code}}


def print_json_error(message: str, kind: str, code: int,
                     ctx: click.Context | None = None,
                     extra: Mapping[str, Any] | None = None) -> None:
    """With --json, the error as a JSON object on stdout (`error_json`, and `extra`'s keys
    beside its "error"), for the scheduler that reads stdout; unless the command printed its
    JSON document already (`doctor --json --save` failing to save): stdout stays one
    document."""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is not None and json_wanted(ctx) and not ctx.meta.get(PRINTED_JSON_KEY):
        print_json({**error_json(message, kind, code), **(extra or {})})


def fail(error: str | BaseException, code: int = EXIT_FAILED, *, kind: str | None = None,
         then: str | None = None, extra_json: Mapping[str, Any] | None = None) -> NoReturn:
    """The one place a command fails: the message on stderr (one line, `error: ...`, and
    the line `then` after it), and with --json also a JSON error object on stdout (with
    `extra_json`'s keys); then exit `code`. `kind` is the exception's class name: `error`'s
    when it is one, else the exception being handled (`fail(str(exc))` inside `except`),
    else `Error`."""
    if kind is None:
        handled = error if isinstance(error, BaseException) else sys.exc_info()[1]
        kind = type(handled).__name__ if handled is not None else "Error"
    message = scrub(error)
    print_json_error(message, kind, code, extra=extra_json)
    stderr = console("stderr")
    stderr.print(labelled("error:", "bold red", f" {message}"))
    if then is not None:
        stderr.print(then)
    sys.exit(code)


# The main group's --debug (ctx.meta): an unexpected exception shows its traceback.
DEBUG_KEY = "csload.debug"


def fail_unexpected(exc: BaseException) -> NoReturn:
    """The last resort for an exception csload did not expect (a bug, or input it does not
    yet refuse cleanly): one scrubbed, redacted line instead of a traceback that could quote
    a signed URL or a terminal escape from a file, and how to see the traceback."""
    from csload.host_limits import limit_hit
    from csload.redact import redact_text

    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:   # a task group's: its first
        exc = exc.exceptions[0]
    if isinstance(exc, PermissionError) and exc.filename:
        # This machine's permissions, not a bug: a lake another user made under umask 077
        # said "unexpected PermissionError ... (a bug in csload ...)".
        fail(f"permission denied: {redact_text(str(exc.filename))[:300]}: csload cannot use "
             "it as this user; fix its permissions, or run csload as its owner",
             kind="PermissionError")
    hit = limit_hit(exc)
    if hit is not None:   # the host's limit, not a bug (QA, 2026-12-08)
        fail(f"{hit} ({type(exc).__name__}: {redact_text(str(exc))[:200]})",
             kind="HostLimit")
    what = redact_text(str(exc))[:500]
    fail(f"unexpected {type(exc).__name__}{f': {what}' if what else ''} (a bug in csload, or "
         "input it does not check yet); run again with `csload --debug ...` for the "
         "traceback, and report it", kind=type(exc).__name__)


def usage_checked(check: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a check of user input that the Python API shares: its ConfigError is a usage
    error here (click's one `Error:` line, exit 2)."""
    try:
        return check(*args, **kwargs)
    except ConfigError as exc:
        raise click.UsageError(scrub(exc)) from None


# What JSON leaves as it is but a terminal may act on: orjson escapes C0 controls (ESC, \r),
# not DEL, the C1 controls (U+009B is a CSI on some terminals) or the characters that reorder
# or hide text (_CONTROL). In JSON they occur only inside strings, where \uXXXX is the same.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_NOT_ASCII = re.compile("[^\x00-\x7e]")


def print_json(value: Any) -> None:
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[PRINTED_JSON_KEY] = True
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    # Not UTF-8 (an ISO-8859-1 locale): every non-ASCII character as its JSON escape, the one
    # form each encoding can write (csload.cli.streams).
    unsafe = _JSON_UNSAFE if writes_utf8(sys.stdout) else _NOT_ASCII
    text = unsafe.sub(_json_escape, text)
    sys.stdout.write(text + "\n")


def _json_escape(found: re.Match[str]) -> str:
    units = found.group().encode("utf-16-be")
    return "".join(f"\\u{int.from_bytes(units[i:i + 2]):04x}" for i in range(0, len(units), 2))


def connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The settings every API command takes; they win over the environment and csload.toml."""
    options = [
        click.option("--client-id", help="OAuth client id [env: CONTENTSQUARE_CLIENT_ID]"),
        click.option("--client-secret",
                     help="OAuth client secret [env: CONTENTSQUARE_CLIENT_SECRET]"),
        click.option("--project-id", type=int,
                     help="Project id, for account-level credentials "
                          "[env: CONTENTSQUARE_PROJECT_ID]"),
        click.option("--auth-url",
                     help="Authentication base URL [env: CONTENTSQUARE_AUTH_URL; "
                          "default https://api.contentsquare.com]"),
        click.option("--config", "config_file", type=click.Path(path_type=Path),
                     help="Settings file [default: ./csload.toml if present]"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def settings_from(params: dict[str, Any]) -> Settings:
    """Settings from the connection options of a command (flags > env > file)."""
    overrides = {name: params.pop(name, None)
                 for name in ("client_id", "client_secret", "project_id", "auth_url", "limits",
                              "staging_dir")}
    try:
        return load_settings(overrides=overrides, config_file=params.pop("config_file", None))
    except CsloadError as exc:
        fail(exc)


def answered(call: Callable[[], T]) -> T:
    """A library call's answer, or its error as the command's one `error:` line (exit 1)."""
    try:
        return call()
    except CsloadError as exc:
        fail(exc)


def ts(value: Any) -> str:
    """A time of the API's, in UTC (the tables that show it say so): an offset the API gave
    would otherwise show its own zone's time, unlabelled."""
    if value is None:
        return ""
    moment: datetime = value.astimezone(UTC) if value.tzinfo else value
    return moment.strftime("%Y-%m-%d %H:%M")


class Duration(click.ParamType[float]):
    """30s, 5m, 1h or plain seconds, as seconds; errors name `flag`."""

    name = "duration"

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> float:
        if isinstance(value, float):
            return value   # a default, already converted
        try:
            return parse_duration(value, self.flag)
        except ConfigError as exc:
            # click names the option already ("Invalid value for '--wait': ...").
            self.fail(str(exc).removeprefix(f"{self.flag}: "), param, ctx)
