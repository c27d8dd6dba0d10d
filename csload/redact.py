"""Keeping secrets out of messages.

Part URLs are pre-signed: anyone holding the query string can download the data, so a URL is
only ever shown as scheme, host and path. Tokens and client secrets are never formatted at all.
A leaf module (nothing of csload imported): every layer formats messages with it. The https
rule for the URLs csload talks to is csload.https_rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

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
    suffix = "?<redacted>" if parts.query else ""
    if not parts.netloc:
        # No "//", so no user info either: `127.0.0.1:8765` (a scheme forgotten) was shown
        # as "://127.0.0.1:8765", a value the user never gave.
        return f"{parts.scheme + ':' if parts.scheme else ''}{parts.path}{suffix}"
    host = parts.hostname or ""
    if port:
        host = f"{host}:{port}"
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
