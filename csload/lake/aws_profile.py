"""The keys of a named AWS profile, for an S3 lake: deltalake reads no profile.

pyarrow's S3 filesystem (the AWS SDK) finds keys in `~/.aws/credentials` under `AWS_PROFILE`,
but deltalake, which writes and reads the lake's Delta logs, looks only at the environment's
`AWS_ACCESS_KEY_ID`... and at instance metadata. A lake set up with a profile passed the
bucket check and then failed every command with "Kernel error -> Generic S3 error" (found by
QA, 2026-12-07). So csload reads the profile's static keys itself and gives them to both, as
the AWS SDK would: keys in the environment first, then the profile's, from the shared
credentials file, then the config file. A profile without static keys (SSO, a role to assume)
cannot be used: said, with the way out.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from pathlib import Path

from csload.errors import ConfigError

__all__ = ["profile_keys"]

# The profile's settings -> csload's storage options.
_KEYS = {"aws_access_key_id": "access_key_id", "aws_secret_access_key": "secret_access_key",
         "aws_session_token": "session_token"}


def profile_keys(env: Mapping[str, str]) -> dict[str, str]:
    """The storage options (`access_key_id`, `secret_access_key`, `session_token`) of the
    profile `AWS_PROFILE` (else `default`); none where the environment has keys, or where the
    default profile has none (an instance role answers then). ConfigError for a profile named
    in AWS_PROFILE that has no static keys."""
    if env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_SECRET_ACCESS_KEY"):
        return {}
    named = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE")
    name = named or "default"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    files = [(Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials"),
              name),
             (Path(env.get("AWS_CONFIG_FILE") or home / ".aws" / "config"),
              name if name == "default" else f"profile {name}")]
    for path, section in files:
        found = _section(path, section)
        if found.get("aws_access_key_id") and found.get("aws_secret_access_key"):
            return {option: found[key] for key, option in _KEYS.items() if found.get(key)}
    if named:
        raise ConfigError(
            f"AWS profile {named!r} (AWS_PROFILE) has no aws_access_key_id and "
            "aws_secret_access_key in ~/.aws/credentials or ~/.aws/config: deltalake, which "
            "reads and writes the lake's tables, cannot use other kinds of profile (SSO, a "
            "role to assume). Export the keys instead, e.g. `eval \"$(aws configure "
            f"export-credentials --profile {named} --format env)\"`")
    return {}


def _section(path: Path, section: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, UnicodeError, configparser.Error):
        return {}   # unreadable: as if absent (the AWS SDK would fail on it the same)
    if not parser.has_section(section):
        return {}
    return {key: value.strip() for key, value in parser.items(section)}
