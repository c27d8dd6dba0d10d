"""The https rule for the URLs csload talks to.

Every URL csload talks to (the auth URL, the API endpoint the token response names, part URLs
and their redirects, the S3 `endpoint_url` of a lake) is https. Plain http is allowed only to a
loopback address, and, for every URL but the auth URL itself, only in simulator mode: when the
auth URL is a loopback address too (`plain_http_allowed`). Outside it, an http://127.0.0.1
endpoint or part URL named by a response would reach whatever listens on this machine's port
(another user's process on a shared host) in clear text (issue 16).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from csload.errors import ConfigError, InsecureUrlError
from csload.redact import redact_url

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


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
