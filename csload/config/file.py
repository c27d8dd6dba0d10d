"""The settings file on a shared host: whose it is, who can write it, who can read it.

`csload.toml` says where the client secret is sent (`auth_url`) and may hold secrets. csload
reads it (csload.config.read_config_file) only when it is owned by the user running csload
and not writable by group or others: another user able to write it, in a working folder or
anywhere, could send the secret to their own server. A warning (a log record of
`csload.config`) when it holds a secret other users can read, or sends the credentials to a
host that is neither Contentsquare's nor this machine.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from csload.errors import ConfigError
from csload.https_rule import is_loopback_host
from csload.redact import redact_url


def check_config_owner(path: Path, status: os.stat_result) -> None:
    """Refuse a settings file another user owns or can write (ConfigError naming the fix)."""
    if not hasattr(os, "geteuid"):
        return   # Windows: no POSIX owner or mode bits to check
    if status.st_uid != os.geteuid():
        raise ConfigError(
            f"{path}: the settings file is owned by another user (uid {status.st_uid}), so "
            "csload does not read it: it says where the client secret is sent; use a file "
            "of your own (--config), or take ownership of it")
    if status.st_mode & 0o022:
        raise ConfigError(
            f"{path}: the settings file can be written by other users (mode "
            f"{stat.S_IMODE(status.st_mode):04o}), so csload does not read it: it says where "
            f"the client secret is sent; run `chmod go-w {path}` (better: chmod 600)")


# Settings whose values are secrets, at the top level and under [lake].
_SECRET_KEYS = (("client_secret",), ("lake", "secret_access_key"), ("lake", "session_token"))


def warn_about_config(path: Path, values: Mapping[str, Any], mode: int) -> None:
    """Warn (log records) about a secret others can read, and about credentials sent off
    Contentsquare: `config_warnings`."""
    log = logging.getLogger("csload.config")
    for warning in config_warnings(path, values, mode):
        log.warning("%s", warning)


def config_warnings(path: Path, values: Mapping[str, Any], mode: int) -> list[str]:
    """What is worth a warning in the settings file `path` (`values`, its `mode`): a secret
    other users can read; credentials sent to a host that is not Contentsquare's."""
    warnings = []
    held = [".".join(key) for key in _SECRET_KEYS if _lookup(values, key)]
    if held and hasattr(os, "geteuid") and mode & 0o044:
        warnings.append(f"{path} holds {' and '.join(held)} and other users can read it (mode "
                        f"{stat.S_IMODE(mode):04o}): run `chmod 600 {path}`")
    auth_url = values.get("auth_url")
    if isinstance(auth_url, str) and auth_url:
        try:
            host = (urlsplit(auth_url.strip()).hostname or "").lower()
        except ValueError:
            return warnings   # refused with its reason when the settings are built
        if not (host == "contentsquare.com" or host.endswith(".contentsquare.com")
                or is_loopback_host(host)):
            warnings.append(f"{path} sets auth_url to {redact_url(auth_url)}, which is not a "
                            "Contentsquare host: the client id and secret are sent there")
    return warnings


def _lookup(values: Mapping[str, Any], key: tuple[str, ...]) -> object:
    found: object = values
    for part in key:
        found = found.get(part) if isinstance(found, Mapping) else None
    return found
