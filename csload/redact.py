"""Keeping secrets out of messages, and the https rule for the URLs csload talks to.

Part URLs are pre-signed: anyone holding the query string can download the data, so a URL is
only ever shown as scheme, host and path. Tokens and client secrets are never formatted at all.

The https rule: every URL csload talks to (the auth URL, the API endpoint the token response
names, part URLs and their redirects, the S3 `endpoint_url` of a lake) is https. Plain http is
allowed only to a loopback address, and, for every URL but the auth URL itself, only in
simulator mode: when the auth URL is a loopback address too (`plain_http_allowed`). Outside
it, an http://127.0.0.1 endpoint or part URL named by a response would reach whatever listens
on this machine's port (another user's process on a shared host) in clear text (issue 16).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
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
        port = parts.port
    except ValueError:
        # An invalid port or IPv6 address: nothing of it is shown (the query may be a
        # signature; a crash here once printed it in a traceback, issue 16).
        return "<invalid URL>"
    host = parts.hostname or ""
    if port:
        host = f"{host}:{port}"
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


# Storage options that say where, not who: shown as they are (an endpoint as redact_url does).
_PLAIN_OPTIONS = frozenset({"region", "endpoint_url"})


def redact_options(options: Mapping[str, str]) -> dict[str, str]:
    """Storage options safe to show: keys, credentials and tokens replaced by <redacted>."""
    return {key: (redact_url(value) if key == "endpoint_url" and "://" in value
                  else value if key in _PLAIN_OPTIONS else "<redacted>")
            for key, value in options.items()}


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


def plain_http_allowed(auth_url: str) -> bool:
    """Simulator mode: the auth URL is a loopback address, so the API endpoint, part URLs,
    redirects and the lake's S3 endpoint may be plain http to loopback addresses too."""
    try:
        return is_loopback_host(urlsplit(auth_url).hostname)
    except ValueError:
        return False


def require_secure_url(url: str, what: str, *, loopback_http: bool = True) -> str:
    """Return `url` if it is https, or http to a loopback address when `loopback_http` (the
    auth URL itself, or any URL in simulator mode: `plain_http_allowed`).

    Raises InsecureUrlError otherwise: csload never sends credentials or fetches export data
    over plain http across a network. An invalid URL (a port out of range, a broken IPv6
    address) is a ConfigError that does not show it.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parsing the port is what validates it)
    except ValueError as exc:
        raise ConfigError(f"{what} is not a valid URL ({_reason(exc)})") from None
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        if loopback_http:
            return url
        raise InsecureUrlError(
            f"{what} must use https: plain http to a loopback address is allowed only when "
            f"the auth URL is a loopback address too (the local simulator): {redact_url(url)}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} is not an http(s) URL: {redact_url(url)}")
    raise InsecureUrlError(
        f"{what} must use https (plain http is allowed only for loopback addresses): "
        f"{redact_url(url)}"
    )


def _reason(exc: ValueError) -> str:
    """Why urllib refused a URL, in words that do not repeat any of it."""
    text = str(exc)
    return "its port is not a number from 0 to 65535" if "port" in text.lower() else (
        "its address cannot be parsed")
