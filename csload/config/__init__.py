"""Settings: frozen dataclasses, and the only place that reads environment variables or TOML.

Precedence: explicit values (CLI flags, keyword arguments) > environment > `csload.toml`.
Every key of `csload.toml` is checked: an unknown or misplaced one is a ConfigError with the
closest valid key and its section (a key under the wrong `[section]` used to be ignored).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import tomllib
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csload.config.file import check_config_owner, config_warnings, warn_about_config

# Re-exported: csload.config is where settings are imported from.
from csload.config.limits import DURATION_LIMITS
from csload.config.limits import Limits as Limits
from csload.config.limits import RetryPolicy as RetryPolicy
from csload.config.limits import parse_duration as parse_duration
from csload.errors import ConfigError
from csload.https_rule import plain_http_allowed, require_secure_url
from csload.load.columns import check_table_name

DEFAULT_AUTH_URL = "https://api.contentsquare.com"
DEFAULT_CONFIG_FILE = "csload.toml"

ENV_VARS = {
    "client_id": "CONTENTSQUARE_CLIENT_ID",
    "client_secret": "CONTENTSQUARE_CLIENT_SECRET",
    "project_id": "CONTENTSQUARE_PROJECT_ID",
    "auth_url": "CONTENTSQUARE_AUTH_URL",
}
# The one limit a deployment sets per environment (cron waits for a notebook, a manual run
# does not): [limits] lock_wait of csload.toml, overridden by this variable, then by --wait.
LOCK_WAIT_ENV = "CSLOAD_LOCK_WAIT"
# Where downloads are staged before they load (csload.target.Target.staging_dir): beside the
# database by default; a folder of one's own (a larger or faster disk) by `staging_dir` at the
# top of csload.toml, this variable, --staging-dir, or the `staging_dir` keyword.
STAGING_DIR_ENV = "CSLOAD_STAGING_DIR"

@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything csload needs to reach one Contentsquare project."""

    client_id: str
    client_secret: str = field(repr=False)
    project_id: int | None = None
    auth_url: str = DEFAULT_AUTH_URL
    limits: Limits = field(default_factory=Limits)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Job id -> table name, for jobs that should not load into the table named after their scope.
    tables: Mapping[int, str] = field(default_factory=dict)
    # Object-storage options for a lake of Delta tables (endpoint_url, region, access_key_id,
    # secret_access_key, session_token); unset ones come from the usual AWS variables.
    lake: Mapping[str, str] = field(default_factory=dict, repr=False)
    # A folder for the downloads of a sync or backfill (csload stages them in a subfolder of
    # its own there); None: beside the database, inside a local lake, or the temporary folder.
    staging_dir: Path | None = None

    def __post_init__(self) -> None:
        for name, kind in (("limits", Limits), ("retry", RetryPolicy)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f"Settings.{name} must be a csload.{kind.__name__}, got "
                                  f"{type(getattr(self, name)).__name__}")
        missing = [name for name in ("client_id", "client_secret") if not getattr(self, name)]
        if missing:
            raise ConfigError("missing " + ("settings: " if len(missing) > 1 else "setting: ")
                              + " and ".join(f"{name} ({ENV_VARS[name]})" for name in missing))
        if self.staging_dir is not None:
            object.__setattr__(self, "staging_dir",
                               staging_path(self.staging_dir, "staging_dir"))
        object.__setattr__(self, "tables", table_map(self.tables, "Settings.tables"))
        # An int, as read from the environment and csload.toml: "42" (os.environ's) was kept
        # as text, and a target synced before was refused as another project's, "project 42,
        # and these settings are for project 42" (QA, 2026-12-08).
        object.__setattr__(self, "project_id",
                           _parse_project_id(self.project_id, "Settings.project_id"))
        object.__setattr__(self, "auth_url", self.auth_url.rstrip("/"))
        require_secure_url(self.auth_url, "auth_url")
        check_lake_endpoint(self.lake, self.auth_url, "the lake's endpoint_url")

    def __repr__(self) -> str:
        return (
            f"Settings(client_id={self.client_id!r}, client_secret=<redacted>, "
            f"project_id={self.project_id!r}, auth_url={self.auth_url!r})"
        )


def staging_path(value: object, what: str) -> Path:
    """A staging folder as given (a path or a string), refused when empty or not a path."""
    if isinstance(value, os.PathLike) or (isinstance(value, str) and value.strip()):
        return Path(value).expanduser()   # "~/csload-staging" in csload.toml or the variable
    raise ConfigError(f"{what} must be the path of a folder, got {value!r}")


def _parse_project_id(value: object, source: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(str(value))
    except ValueError:
        raise ConfigError(f"project_id must be an integer, got {value!r} ({source})") from None


def proxy_environment() -> dict[str, str]:
    """HTTPS_PROXY / HTTP_PROXY / NO_PROXY (either case), in urllib's shape: scheme -> proxy
    URL, and "no" -> the NO_PROXY list (csload.api.proxy chooses per URL; never ~/.netrc)."""
    return urllib.request.getproxies_environment()


def read_config_file(path: Path, *, warn: bool = True) -> dict[str, Any]:
    """The TOML settings file as a dict; {} when it does not exist.

    The file says where the client secret is sent (`auth_url`) and holds secrets: it is read
    only when owned by the user running csload and not writable by group or others (on a
    shared host, a `csload.toml` another user could write, in a working folder or not, could
    send the secret to their server), else a ConfigError says so. A warning (log record of
    `csload.config`) when it holds a secret others can read, or sends the credentials to a
    host that is neither Contentsquare's nor this machine (`warn`: else nothing logged)."""
    values, mode = _read_config(path)
    if warn:
        warn_about_config(path, values, mode)
    return values


def config_path(config_file: str | Path | None) -> Path:
    """The settings file: the one given (a str is a path too: it raised AttributeError:
    'str' object has no attribute 'open'; `~` expanded), else ./csload.toml."""
    return Path(config_file).expanduser() if config_file is not None else Path(
        DEFAULT_CONFIG_FILE)


def settings_file_warnings(config_file: str | Path | None = None) -> list[str]:
    """What `read_config_file` warns of in the settings file (./csload.toml by default), for
    `csload doctor`'s report; none for a file that cannot be read (its error is said
    elsewhere)."""
    path = config_path(config_file)
    try:
        return config_warnings(path, *_read_config(path))
    except ConfigError:
        return []


def _read_config(path: Path) -> tuple[dict[str, Any], int]:
    """The settings file's values and mode ({} and 0 when it does not exist)."""
    try:
        with path.open("rb") as fh:
            # The descriptor's own status, not the path's: the file read is the file checked.
            status = os.fstat(fh.fileno())
            check_config_owner(path, status)
            # UTF-8, with or without the byte order mark some editors write first.
            values = tomllib.loads(fh.read().decode("utf-8").removeprefix("\ufeff"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the settings file is not UTF-8 text (TOML files are "
                          "UTF-8): save it as UTF-8") from None
    except FileNotFoundError:
        return {}, 0
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a settings file") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read the settings file: permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return values, status.st_mode


def _sub_settings(cls: type[Any], values: object, source: str) -> Any:
    if values is None:
        return cls()
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: [{cls.__name__.lower()}] must be a table")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {sorted(unknown)} in {cls.__name__}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def settings_or_default(settings: object) -> Settings:
    """A call's `settings`: None means `load_settings()`; anything but a Settings is refused
    (a dict, or a settings file's path, failed later as an AttributeError)."""
    if settings is None:
        return load_settings()
    if not isinstance(settings, Settings):
        raise ConfigError(f"settings must be a csload.Settings, got {type(settings).__name__} "
                          "(csload.load_settings(config_file=...) reads a csload.toml, "
                          "csload.Settings(client_id=..., client_secret=...) takes values)")
    return settings


def load_settings(
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Settings:
    """Build Settings from explicit values > environment > TOML file.

    `overrides` holds explicit values (None means "not given"); `limits` and `retry` may be
    given there as mappings of their fields.
    """
    environ = os.environ if environ is None else environ
    explicit_file = config_file is not None
    path = config_path(config_file)
    file_values = read_config_file(path)
    if explicit_file and not path.exists():
        raise ConfigError(f"config file not found: {path}")
    check_config_keys(file_values, path)

    given = _connection_values(overrides, environ, file_values, path)
    merged = {name: value for name, (value, _) in given.items()}

    missing = [name for name in ("client_id", "client_secret") if not merged.get(name)]
    if missing:
        # All of them at once: a first run without any setting should not take two tries.
        raise ConfigError(
            "missing " + ("settings: " if len(missing) > 1 else "setting: ") + " and ".join(
                f"{name} (set {ENV_VARS[name]}, pass --{name.replace('_', '-')}, or put "
                f"{name} in {path})" for name in missing))

    for section in ("limits", "retry"):   # `limits = 5`: "'int' object is not iterable"
        if not isinstance(file_values.get(section) or {}, Mapping):
            raise ConfigError(f"{path}: [{section}] must be a table")
    limits_values: dict[str, Any] = dict(file_values.get("limits") or {})
    retry_values: dict[str, Any] = dict(file_values.get("retry") or {})
    if environ.get(LOCK_WAIT_ENV):
        limits_values["lock_wait"] = environ[LOCK_WAIT_ENV]
    if overrides:
        limits_values.update({k: v for k, v in (overrides.get("limits") or {}).items()
                              if v is not None})
        retry_values.update({k: v for k, v in (overrides.get("retry") or {}).items()
                             if v is not None})
    for name in DURATION_LIMITS:
        if name in limits_values:
            source = (f"{LOCK_WAIT_ENV} (environment)" if name == "lock_wait"
                      and limits_values[name] == environ.get(LOCK_WAIT_ENV) else name)
            limits_values[name] = parse_duration(limits_values[name], source)

    return Settings(
        client_id=str(merged["client_id"]),
        client_secret=str(merged["client_secret"]),
        project_id=_parse_project_id(*given.get("project_id", (None, ""))),
        auth_url=str(merged.get("auth_url") or DEFAULT_AUTH_URL),
        limits=_sub_settings(Limits, limits_values, str(path)),
        retry=_sub_settings(RetryPolicy, retry_values, str(path)),
        tables=table_map(file_values.get("tables"), f"{path}: [tables]"),
        lake=_lake_options(file_values.get("lake"), str(path),
                           str(merged.get("auth_url") or DEFAULT_AUTH_URL)),
        staging_dir=_staging_setting(overrides, environ, file_values, path),
    )


def _staging_setting(overrides: Mapping[str, Any] | None, environ: Mapping[str, str],
                     file_values: Mapping[str, Any], path: Path) -> Path | None:
    """`staging_dir`: explicit > CSLOAD_STAGING_DIR > the file's top-level key > None."""
    if overrides and overrides.get("staging_dir") not in (None, ""):
        return staging_path(overrides["staging_dir"], "--staging-dir")
    if environ.get(STAGING_DIR_ENV):
        return staging_path(environ[STAGING_DIR_ENV], STAGING_DIR_ENV)
    if "staging_dir" in file_values:
        return staging_path(file_values["staging_dir"], f"{path}: staging_dir")
    return None


def _connection_values(overrides: Mapping[str, Any] | None, environ: Mapping[str, str],
                       file_values: Mapping[str, Any], path: Path
                       ) -> dict[str, tuple[Any, str]]:
    """Each connection setting given, by precedence (explicit > environment > file), with
    where it came from: "flag --client-id", "environment CONTENTSQUARE_CLIENT_ID" or the
    file's path. Settings given nowhere are absent."""
    found: dict[str, tuple[Any, str]] = {}
    for name, env_name in ENV_VARS.items():
        if overrides and overrides.get(name) not in (None, ""):
            found[name] = (overrides[name], f"flag --{name.replace('_', '-')}")
        elif environ.get(env_name):
            found[name] = (environ[env_name], f"environment {env_name}")
        elif name in file_values:
            found[name] = (file_values[name], str(path))
    return found


def setting_sources(overrides: Mapping[str, Any] | None = None, *,
                    environ: Mapping[str, str] | None = None,
                    config_file: Path | None = None) -> dict[str, str]:
    """Where each connection setting comes from, by `load_settings`' precedence: a flag, the
    environment, the settings file's path, "default" (auth_url) or "not set". Never their
    values (for `csload doctor`); an unreadable settings file counts as none."""
    path = config_path(config_file)   # `~` expanded, as load_settings does
    try:
        # Not warned of here: load_settings does, and the doctor reports it
        # (settings_file_warnings); the warning was logged twice.
        file_values = read_config_file(path, warn=False)
    except ConfigError:
        file_values = {}
    found = _connection_values(overrides, os.environ if environ is None else environ,
                               file_values, path)
    return {name: found[name][1] if name in found
            else "default" if name == "auth_url" else "not set" for name in ENV_VARS}


LAKE_OPTIONS = ("endpoint_url", "region", "access_key_id", "secret_access_key", "session_token")


def check_lake_endpoint(options: Mapping[str, str], auth_url: str, what: str) -> None:
    """The https rule (csload.https_rule) for an S3 `endpoint_url`: plain http only to a loopback
    address, and only in simulator mode. An endpoint without a scheme is https (lake/fs.py)."""
    endpoint = options.get("endpoint_url")
    if endpoint and "://" in endpoint:
        require_secure_url(endpoint, what, loopback_http=plain_http_allowed(auth_url))


def _lake_options(values: object, source: str, auth_url: str) -> dict[str, str]:
    """The `[lake]` section: object-storage options for `--parquet s3://...`; its
    endpoint_url follows the https rule, for the auth URL in force (`auth_url`)."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: [lake] must be a table")
    unknown = set(values) - set(LAKE_OPTIONS)
    if unknown:
        raise ConfigError(f"{source}: unknown [lake] setting(s) {sorted(unknown)}; "
                          f"known: {', '.join(LAKE_OPTIONS)}")
    options = {key: str(value) for key, value in values.items()}
    check_lake_endpoint(options, auth_url, f"{source}: [lake] endpoint_url")
    return options


def table_map(values: object, source: str) -> dict[int, str]:
    """Job id -> table name, checked: the `[tables]` section (`1119 = "sessions_mobile"`), or
    the `tables` of Settings and of a sync. A key is a job id, an integer or its digits (JSON
    and TOML give strings): `{"1121": "pageviews"}` used to be ignored, and the job loaded
    into its scope's table without a word. `source` names where the mapping came from."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source} must map job ids to table names")
    out: dict[int, str] = {}
    for key, table in values.items():
        # 0 or less: no job has it (the line was taken, and mapped nothing).
        if isinstance(key, bool) or not (isinstance(key, int) or (
                isinstance(key, str) and key.strip().isascii() and key.strip().isdigit())) \
                or int(key) < 1:
            raise ConfigError(f"{source}: keys are job ids (positive integers), got {key!r}")
        job_id = int(key)
        if not isinstance(table, str):
            raise ConfigError(f"{source}: job {job_id} must map to a table name")
        try:
            out[job_id] = check_table_name(table)
        except ConfigError as exc:
            raise ConfigError(f"{source}: job {job_id}: {exc}") from None
    return out


def lake_options_for(parquet: object, options: Mapping[str, str]) -> dict[str, str]:
    """The `[lake]` settings for the lake at `parquet`: an s3:// lake's; none for a local
    folder (csload.toml's `[lake]` is the S3 lake's, and a local lake synced or read with the
    same settings file was refused: "storage options apply to s3:// lakes only")."""
    return dict(options) if _is_s3(parquet) else {}


def _is_s3(parquet: object) -> bool:
    # Not csload.lake.fs.is_s3_url: that module loads pyarrow, which a DuckDB sync never needs.
    return isinstance(parquet, str) and parquet.lower().startswith("s3://")


def file_lake_options(parquet: object) -> dict[str, str]:
    """The storage options of the lake at `parquet` when the caller gave none: ./csload.toml's
    `[lake]` for an s3:// lake, as the CLI reads them (`csload.connect` and `csload.status`
    ignored them, and reached AWS instead of the endpoint the file names); none for a folder."""
    return read_lake_options() if _is_s3(parquet) else {}


def read_lake_options(config_file: Path | None = None) -> dict[str, str]:
    """Only the `[lake]` section of the settings file (for commands without API settings);
    the file's keys are checked all the same, and the endpoint_url against the auth URL the
    environment or the file names (the https rule)."""
    path = config_path(config_file)
    values = read_config_file(path)
    if config_file is not None and not path.exists():
        raise ConfigError(f"config file not found: {path}")
    check_config_keys(values, path)
    found = _connection_values(None, os.environ, values, path)
    auth_url = str(found["auth_url"][0]) if "auth_url" in found else DEFAULT_AUTH_URL
    return _lake_options(values.get("lake"), str(path), auth_url)


# -- the keys of csload.toml ------------------------------------------------------------------

TOP_LEVEL_KEYS = (*ENV_VARS, "staging_dir")
# Each section and its keys; None: any key (`[tables]` maps job ids to table names).
SECTIONS: dict[str, tuple[str, ...] | None] = {
    "limits": tuple(f.name for f in dataclasses.fields(Limits)),
    "retry": tuple(f.name for f in dataclasses.fields(RetryPolicy)),
    "lake": LAKE_OPTIONS,
    "tables": None,
}
# The CLI's flag names, which users carry into the file although the keys differ.
_FLAG_NAMES = {"concurrency": ("limits", "download_concurrency"),
               "wait": ("limits", "lock_wait")}


def check_config_keys(values: Mapping[str, Any], path: Path) -> None:
    """Refuse every unknown or misplaced key or section of the settings file at once, each with
    the closest valid key and its section: `csload.toml: unknown key "concurrency" at the top
    level; did you mean [limits] download_concurrency?`."""
    unknown: list[tuple[str, str | None]] = []   # (key, its section; None: the top level)
    for key, value in values.items():
        if key in SECTIONS:
            known = SECTIONS[key]
            if known is not None and isinstance(value, Mapping):
                unknown.extend((sub, key) for sub in value if sub not in known)
        elif key not in TOP_LEVEL_KEYS:
            unknown.append((key, None))
    if not unknown:
        return
    found = [_unknown_key(key, section, section is None and isinstance(values[key], Mapping))
             for key, section in unknown]
    if len(found) == 1:
        what, hint = found[0]
        raise ConfigError(f"{path}: {what}; " + (f"did you mean {hint}?" if hint
                                                  else _valid_keys(unknown[0][1])))
    raise ConfigError(f"{path}: " + "; ".join(
        what + f" ({f'did you mean {hint}?' if hint else _valid_keys(section)})"
        for (what, hint), (_key, section) in zip(found, unknown, strict=True)))


def _valid_keys(section: str | None) -> str:
    if section is None:
        return (f"the top level takes {', '.join(TOP_LEVEL_KEYS)} and the sections "
                f"{', '.join(f'[{name}]' for name in SECTIONS)}")
    return f"[{section}] takes {', '.join(SECTIONS[section] or ())}"


def _unknown_key(key: str, section: str | None, is_section: bool) -> tuple[str, str | None]:
    """What is wrong with `key` (under `[section]`, or at the top level), and the valid key it
    most likely meant, as the user would write it."""
    # The key is the file's text: quoted as JSON (no terminal escape gets through), and cut.
    shown = json.dumps(key[:80] + ("..." if len(key) > 80 else ""))
    if is_section:
        what = f"unknown section [{shown if shown[1:-1] != key else key}]"
    elif section is None:
        what = f"unknown key {shown} at the top level"
    else:
        what = f"unknown key {shown} in [{section}]"
    top = "" if section is None else " (at the top level, before any [section])"
    candidates: dict[str, str] = {}   # the valid key as spelled -> as shown
    for name in TOP_LEVEL_KEYS:
        candidates[name] = f"{name}{top}"
    for name, keys in SECTIONS.items():
        candidates.setdefault(name, f"[{name}]")
        for sub in keys or ():
            # A key of the user's own section first: the same name may be in two sections.
            if sub not in candidates or name == section:
                candidates[sub] = f"[{name}] {sub}"
    spelled = key.strip().lower().replace("-", "_")
    if spelled in _FLAG_NAMES and spelled not in candidates:
        where, name = _FLAG_NAMES[spelled]
        return what, f"[{where}] {name}"
    if spelled in candidates:
        return what, candidates[spelled]
    close = difflib.get_close_matches(spelled, list(candidates), n=1)
    return what, candidates[close[0]] if close else None
