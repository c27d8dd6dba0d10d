"""Keeping secrets out of messages, and the https rule for the URLs csload talks to.

Part URLs are pre-signed: anyone holding the query string can download the data, so a URL is
only ever shown as scheme, host and path. Tokens and client secrets are never formatted at all.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from csload.errors import ConfigError, InsecureUrlError

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}

# Anything that looks like a bearer token, a JWT or a signature parameter in free text.
_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
    re.compile(r"(?i)([?&](?:signature|sig|x-amz-signature|x-amz-credential|token|expires)=)[^&\s]+"),
    re.compile(r"(?i)(client_secret[\"']?\s*[:=]\s*[\"']?)[^\"'\s,}]+"),
)


def redact_url(url: str) -> str:
    """The URL without query string, fragment or user info: safe to log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    suffix = "?<redacted>" if parts.query else ""
    return f"{parts.scheme}://{host}{parts.path}{suffix}"


def redact_text(text: str) -> str:
    """Scrub tokens, JWTs, signatures and secrets out of free text (e.g. a server's message)."""
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + "<redacted>", text)
        else:
            text = pattern.sub("<redacted>", text)
    return text


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_secure_url(url: str, what: str) -> str:
    """Return `url` if it is https, or http to a loopback address (the local simulator).

    Raises InsecureUrlError otherwise: csload never sends credentials or fetches export data
    over plain http across a network.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"{what} is not a valid URL") from exc
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return url
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} is not an http(s) URL: {redact_url(url)}")
    raise InsecureUrlError(
        f"{what} must use https (plain http is allowed only for loopback addresses): "
        f"{redact_url(url)}"
    )
