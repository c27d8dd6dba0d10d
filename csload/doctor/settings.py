"""The `settings` check: which settings were found, and where from (never their secret values)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from csload.config import DEFAULT_AUTH_URL, Settings
from csload.doctor.report import Check, Verdict, clean
from csload.https_rule import is_loopback_host
from csload.redact import redact_url

SETTINGS_HINT = ("set CONTENTSQUARE_CLIENT_ID and CONTENTSQUARE_CLIENT_SECRET (or pass "
                 "--client-id and --client-secret, or put client_id and client_secret in "
                 "csload.toml); account-level credentials also need CONTENTSQUARE_PROJECT_ID")

_LABELS = {"client_id": "client id", "client_secret": "client secret",
           "project_id": "project id", "auth_url": "auth URL"}


def is_simulator(auth_url: str) -> bool:
    """Simulator mode: the auth URL is a loopback address (plain http allowed there only)."""
    return is_loopback_host(urlsplit(auth_url).hostname)


def check_settings(check: Check, settings: Settings, sources: Mapping[str, str] | None,
                   file_warnings: Sequence[str] = ()) -> None:
    """`file_warnings`: those of the settings file (csload.config.settings_file_warnings);
    the check said ok beside them, and --json did not carry them."""
    def source(name: str) -> str:
        return f" ({sources[name]})" if sources and name in sources else ""

    simulator = is_simulator(settings.auth_url)
    check.details = [
        f"client id: set{source('client_id')}",
        f"client secret: set{source('client_secret')}",
        f"project id: {settings.project_id if settings.project_id is not None else 'none'}"
        f"{source('project_id')}",
        f"auth URL: {clean(redact_url(settings.auth_url))}{source('auth_url')}",
    ]
    if simulator:
        check.details.append("simulator mode: the auth URL is a loopback address, where plain "
                             "http is accepted")
    elif settings.auth_url != DEFAULT_AUTH_URL:
        check.details.append(f"the real service's auth URL is {DEFAULT_AUTH_URL}")
    limits = settings.limits
    check.details.append(f"limits: {limits.api_concurrency} API requests and "
                         f"{limits.download_concurrency} downloads in flight; "
                         f"{settings.retry.max_attempts} attempts per request")
    kinds = [_kind(sources[name]) for name in ("client_id", "client_secret")
             if sources and name in sources]
    where = ", ".join(dict.fromkeys(kinds))
    found = "client id and secret found" + (f" ({where})" if where else "")
    if file_warnings:
        check.set(Verdict.WARN, f"{found}; {clean(file_warnings[0])}")
        check.details.extend(clean(warning) for warning in file_warnings[1:])
    else:
        check.set(Verdict.OK, found)
    check.data = {"sources": dict(sources or {}), "authUrl": redact_url(settings.auth_url),
                  "projectId": settings.project_id, "simulator": simulator,
                  "apiConcurrency": limits.api_concurrency,
                  "downloadConcurrency": limits.download_concurrency,
                  "maxAttempts": settings.retry.max_attempts,
                  "fileWarnings": [clean(warning) for warning in file_warnings]}


def _kind(source: str) -> str:
    """"flag --client-id" -> "flag", "environment X" -> "environment", a file -> its path."""
    return source.split(" ", 1)[0] if source.startswith(("flag ", "environment ")) else source


def settings_failed(check: Check, message: str, sources: Mapping[str, str] | None) -> None:
    check.set(Verdict.FAIL, clean(message), SETTINGS_HINT)
    check.details = [f"{_LABELS[name]}: {where}" for name, where in (sources or {}).items()]
    check.data = {"sources": dict(sources or {}), "error": clean(message)}
