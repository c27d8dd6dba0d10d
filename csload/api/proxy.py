"""The HTTP(S) proxy for each URL, from HTTPS_PROXY / HTTP_PROXY / NO_PROXY (either case).

Companies that use Contentsquare often reach the internet only through a proxy (contract
section 9, point 10): the API, the token endpoint and the storage host alike. aiohttp's own
`trust_env=True` would do this, but it also reads `~/.netrc` and sends what it finds as Basic
credentials (to the proxy, and to any host it names, storage included): csload must send
nothing it was not told to. So the proxy is chosen here, per URL, with the standard library's
reading of the environment, and passed as `proxy=` to each request.

The proxy URL may carry credentials (`http://user:pass@proxy:3128`): aiohttp sends them as
Proxy-Authorization, and `shown()` is the form to log or report, without them.
"""

from __future__ import annotations

import logging
import urllib.request
from urllib.parse import urlsplit

from csload.config import proxy_environment
from csload.errors import ConfigError
from csload.redact import redact_url

logger = logging.getLogger("csload.api")

# What aiohttp can talk to (a socks5:// ALL_PROXY, say, it cannot).
_SUPPORTED = ("http", "https")


class Proxies:
    """A snapshot of the proxy settings of the environment, taken when the client is made."""

    def __init__(self, settings: dict[str, str]) -> None:
        # scheme -> proxy URL, plus "no" -> NO_PROXY: urllib's shape.
        self._settings = dict(settings)
        self._logged: set[tuple[str, str]] = set()

    @classmethod
    def from_environment(cls) -> Proxies:
        return cls(proxy_environment())

    def for_url(self, url: str) -> str | None:
        """The proxy URL (credentials included) for a request to `url`, or None: direct."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        proxy = self._settings.get(scheme)
        host = parts.hostname
        if not proxy or not host:
            return None
        # urllib strips a port itself, but cannot tell an IPv6 address's colons from one.
        where = host if ":" in host or parts.port is None else f"{host}:{parts.port}"
        # Undocumented in typeshed, but public (no underscore) and stable since Python 3.x.
        if urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
                where, self._settings):
            chosen = None
        else:
            chosen = _normalise(proxy, scheme)
        if (scheme, where) not in self._logged:
            self._logged.add((scheme, where))
            logger.debug("%s://%s: %s", scheme, where,
                         f"through the proxy {shown(chosen)}" if chosen else "direct (NO_PROXY)")
        return chosen


def _normalise(proxy: str, scheme: str) -> str:
    """`proxy:3128` means `http://proxy:3128`, as curl and urllib read it."""
    value = proxy.strip()
    if "://" not in value:
        value = "http://" + value
    proxy_scheme = value.split("://", 1)[0].lower()
    if proxy_scheme not in _SUPPORTED:
        raise ConfigError(
            f"{scheme.upper()}_PROXY names a {proxy_scheme} proxy ({shown(value)}); csload "
            "supports http:// and https:// proxies only")
    return value


def shown(proxy: str | None) -> str | None:
    """The proxy URL without credentials (or None): safe to log and report."""
    return None if proxy is None else redact_url(proxy)
