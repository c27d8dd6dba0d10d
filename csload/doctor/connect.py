"""The checks of the first contact: token endpoint, credentials, scope, API endpoint, and what
the client learnt meanwhile (proxy, clock, page size, over-limit answers).

The first API call (listing the jobs) makes the client ask for a token; what the token
endpoint answered is read from the recorded exchange (csload.doctor.record), what went wrong
from the client's own error, so the verdicts say what the client really met.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from csload.api.auth import CREDENTIALS_HINT
from csload.api.client import ExportClient
from csload.api.connection import SCOPE, TOKEN_PATH
from csload.api.models import Job
from csload.api.observed import ClientObservations
from csload.config import Settings
from csload.doctor.record import Recorder
from csload.doctor.report import Check, DoctorReport, Verdict, clean
from csload.doctor.settings import is_simulator
from csload.errors import (
    ApiRequestError,
    ApiUnavailable,
    AuthError,
    ConfigError,
    CredentialsRejected,
    CsloadError,
)
from csload.https_rule import is_loopback_host
from csload.redact import redact_url

# A skew beyond this is worth a warning (the Date header has a one-second resolution).
CLOCK_TOLERANCE = 30.0


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f" in {seconds * 1000:.0f} ms"


def _network_hint(settings: Settings, observed: ClientObservations, what: str) -> str:
    proxy = f"the proxy {observed.proxy}" if observed.proxy else \
        "whether this network needs a proxy (HTTPS_PROXY, NO_PROXY)"
    base = "" if is_simulator(settings.auth_url) else \
        " (the real service's is https://api.contentsquare.com)"
    return f"check {what}{base}, this machine's network access to it, and {proxy}"


async def first_contact(client: ExportClient, recorder: Recorder, report: DoctorReport,
                        settings: Settings) -> list[Job] | None:
    """List the jobs (which asks for a token) and judge the token, credentials, scope and
    endpoint checks; the jobs, or None when the API could not be used."""
    try:
        jobs = await client.list_jobs(keep_unreadable=True)   # one odd job: check_jobs
    except CsloadError as exc:
        _judge(client, recorder, report, settings, exc, None)
        return None
    _judge(client, recorder, report, settings, None, jobs)
    return jobs


def _judge(client: ExportClient, recorder: Recorder, report: DoctorReport, settings: Settings,
           error: CsloadError | None, jobs: list[Job] | None) -> None:
    token, creds, scope, endpoint = (report[name] for name in
                                     ("token_endpoint", "credentials", "scope", "endpoint"))
    url = clean(redact_url(settings.auth_url + TOKEN_PATH))
    answer = recorder.token_answer()
    problem = clean(error) if error is not None else ""
    token.data = {"url": url}
    if answer is None or answer[0].status is None:
        why = clean(answer[0].error) if answer is not None and answer[0].error else problem
        token.set(Verdict.FAIL, f"POST {url}: no answer ({why})",
                  _network_hint(settings, client.observed, "the auth URL"))
        for check in (creds, scope, endpoint):
            check.skip("the token endpoint did not answer")
        return
    exchange, body = answer
    token.data.update(status=exchange.status, elapsedMs=round((exchange.elapsed or 0) * 1000))
    answered = f"POST {url} answered HTTP {exchange.status}{_ms(exchange.elapsed)}"
    if isinstance(error, CredentialsRejected):
        token.set(Verdict.OK, answered)
        creds.set(Verdict.FAIL, f"rejected: {problem}", CREDENTIALS_HINT)
        scope.skip("no token")
        endpoint.skip("no token")
        return
    if isinstance(error, AuthError) and exchange.status == 403:
        token.set(Verdict.OK, answered)
        creds.set(Verdict.OK, "known to the service (the token was refused for its scope)")
        scope.set(Verdict.FAIL, problem, f"the credentials lack the Data Export API "
                  f"('{SCOPE}' scope), or access to the project id set: check "
                  "CONTENTSQUARE_PROJECT_ID, or ask your Contentsquare administrator")
        endpoint.skip("no token")
        return
    status = exchange.status or 0
    if 400 <= status < 500 and body is not None and ("errorCode" in body
                                                     or "errorMessage" in body):
        # The token endpoint speaking (an error body of the API's own shape): it refuses
        # the request, e.g. account-level credentials sent without a project id.
        token.set(Verdict.OK, answered)
        creds.set(Verdict.FAIL, f"refused: {problem}", f"{CREDENTIALS_HINT}; account-level "
                  "credentials also need the project id (CONTENTSQUARE_PROJECT_ID)")
        scope.skip("no token")
        endpoint.skip("no token")
        return
    if not 200 <= status < 300 or body is None or not body.get("access_token"):
        what = problem or ("no access_token in the answer" if 200 <= status < 300
                           else f"HTTP {status}")
        token.set(Verdict.FAIL, f"{answered}, but no token came of it: {what}",
                  "check the auth URL: it must be the Contentsquare authentication service "
                  "(https://api.contentsquare.com), which answers POST /v1/oauth/token")
        for check in (creds, scope, endpoint):
            check.skip("no token")
        return
    token.set(Verdict.OK, answered)
    _judge_token(body, creds, scope, settings)
    _judge_endpoint(client, body, endpoint, scope, settings, error, jobs)


def _judge_token(body: dict[str, Any], creds: Check, scope: Check, settings: Settings) -> None:
    lifetime = body.get("expires_in")
    kind = body.get("token_type")
    project = body.get("project_id")
    creds.data = {"tokenType": clean(kind) if kind is not None else None,
                  "expiresIn": lifetime if isinstance(lifetime, int | float) else None,
                  "projectId": clean(project) if isinstance(project, int | str) else None}
    creds.details = [f"token type: {clean(kind) if kind else 'not stated'}",
                     f"lifetime: {clean(lifetime)} s" if lifetime is not None
                     else "lifetime: not stated (csload assumes one hour)",
                     f"project: {clean(project)}" if project is not None
                     else "project: not stated"]
    creds.set(Verdict.OK, "accepted: a token was issued")
    if (settings.project_id is not None and project is not None
            and str(project) != str(settings.project_id)):
        creds.set(Verdict.WARN, f"accepted, but the token is for project {clean(project)}, not "
                  f"the project id set ({settings.project_id})",
                  "check CONTENTSQUARE_PROJECT_ID: account-level credentials name the project "
                  "with it")
    granted = body.get("scope")
    scope.data = {"scope": clean(granted) if granted is not None else None}
    if granted is None:
        scope.set(Verdict.OK, f"not stated in the token response (csload asked for '{SCOPE}')")
    elif SCOPE in str(granted).split():
        scope.set(Verdict.OK, f"'{clean(granted)}'")
    else:
        scope.set(Verdict.WARN, f"the token's scope is '{clean(granted)}', not '{SCOPE}'",
                  f"the credentials may lack the Data Export API ('{SCOPE}' scope)")


def _judge_endpoint(client: ExportClient, body: dict[str, Any], endpoint: Check, scope: Check,
                    settings: Settings, error: CsloadError | None,
                    jobs: list[Job] | None) -> None:
    named = body.get("endpoint")
    shown = clean(redact_url(client.endpoint)) if client.endpoint else None
    endpoint.data = {"endpoint": clean(redact_url(named)) if isinstance(named, str) else None,
                     "used": shown}
    if not isinstance(named, str) or not named.strip():
        endpoint.details.append("the token response names no endpoint: csload uses the auth "
                                "URL for every API call")
        named = settings.auth_url
    parts = urlsplit(named.strip())
    loopback = is_loopback_host(parts.hostname)
    if isinstance(error, ConfigError):
        # The client refused it (an http URL off this machine, or not a URL at all).
        endpoint.set(Verdict.FAIL, clean(error),
                     "the API endpoint must be https; report this answer to Contentsquare")
        return
    if parts.scheme != "https" and not (loopback and is_simulator(settings.auth_url)):
        endpoint.set(Verdict.FAIL, f"{clean(redact_url(named))} is plain http: accepted only "
                     "in simulator mode (an auth URL on a loopback address)",
                     "the API endpoint must be https; check the auth URL")
        return
    if error is None:
        count = len(jobs or [])
        suffix = " (simulator mode)" if parts.scheme == "http" else ""
        endpoint.set(Verdict.OK, f"{shown} answers (GET /v1/exports: {count} job"
                     f"{'s' if count != 1 else ''}){suffix}")
        return
    if isinstance(error, AuthError):
        endpoint.set(Verdict.OK, f"{shown} answers, but refuses the token")
        scope.set(Verdict.FAIL, f"the API refuses the tokens issued: {clean(error)}",
                  f"the credentials may lack access to the Data Export API ('{SCOPE}') of "
                  "this project; for account-level credentials check the project id")
        return
    if isinstance(error, ApiUnavailable) and error.status is None:
        endpoint.set(Verdict.FAIL, f"{shown} does not answer: {clean(error)}",
                     _network_hint(settings, client.observed,
                                   "the endpoint the token response names"))
        return
    if isinstance(error, ApiRequestError):
        endpoint.set(Verdict.FAIL, f"{shown} answered GET /v1/exports with an error: "
                     f"{clean(error)}",
                     "the endpoint the token response names does not serve the Export API: "
                     "report this answer to Contentsquare (doctor --save keeps it)")
        return
    endpoint.set(Verdict.FAIL, f"{shown}: {clean(error)}",
                 "the API is failing; try again later, and report it if it lasts")


def check_proxy(check: Check, observed: ClientObservations, storage_proxy: str | None,
                *, token_answered: bool = True) -> None:
    """Which proxy csload goes through; a warning when the token endpoint never answered
    through it (it said ok beside the token check's failure, the proxy being the likely
    cause)."""
    check.data = {"api": observed.proxy, "storage": storage_proxy}
    if observed.proxy and not token_answered:
        check.set(Verdict.WARN, f"through {clean(observed.proxy)} (from HTTPS_PROXY / "
                  "HTTP_PROXY), and the token endpoint did not answer through it",
                  "check that the proxy runs and this machine reaches it; if this network "
                  "needs no proxy, unset HTTPS_PROXY / HTTP_PROXY or name the host in "
                  "NO_PROXY")
    elif observed.proxy:
        check.set(Verdict.OK, f"through {clean(observed.proxy)} (from HTTPS_PROXY / "
                  "HTTP_PROXY)")
    else:
        check.set(Verdict.OK, "none: csload connects directly (no HTTPS_PROXY / HTTP_PROXY "
                  "applies to the API)")
    if storage_proxy != observed.proxy and storage_proxy is not None:
        check.details.append(f"part downloads go through {clean(storage_proxy)}")


def check_clock(check: Check, observed: ClientObservations) -> None:
    if observed.server_date is None or observed.server_date_at is None:
        check.skip("no API answer with a Date header to compare with")
        return
    try:
        server = parsedate_to_datetime(observed.server_date)
    except (TypeError, ValueError, IndexError):
        check.set(Verdict.WARN, f"the API's Date header is unreadable: "
                  f"{clean(observed.server_date)}")
        return
    skew = observed.server_date_at - server.timestamp()
    local = datetime.fromtimestamp(observed.server_date_at).astimezone()
    check.data = {"skewSeconds": round(skew, 1), "serverDate": clean(observed.server_date)}
    check.details = [f"API Date header: {clean(observed.server_date)}; local clock then: "
                     f"{local:%Y-%m-%d %H:%M:%S %Z}"]
    side = "ahead of" if skew > 0 else "behind"
    if abs(skew) <= CLOCK_TOLERANCE:
        check.set(Verdict.OK, f"in step with the API's clock ({abs(skew):.0f} s apart; the "
                  "Date header counts whole seconds)")
    else:
        check.set(Verdict.WARN, f"this machine's clock is {abs(skew):.0f} s {side} the API's",
                  "set the clock from NTP: csload compares the files' expiration and the data "
                  "retention with it")


def check_paging(check: Check, observed: ClientObservations, longest: int) -> None:
    asked = observed.page_size_asked
    check.data = {"asked": asked, "learnt": observed.page_size, "longestList": longest}
    if observed.page_size is not None:
        check.set(Verdict.OK, f"the server serves pages of {observed.page_size} items (csload "
                  f"asked for {asked}); csload reads each list to its end all the same")
    elif longest >= asked:
        check.set(Verdict.OK, f"the server honours limit={asked} (a list of {longest} items "
                  "came in full pages)")
    else:
        check.set(Verdict.OK, f"not learnt: no list was longer than one page (the longest had "
                  f"{longest} items, csload asks for {asked}); csload reads until an empty page, "
                  "so a smaller page size cannot lose items")


def check_over_limit(check: Check, observed: ClientObservations) -> None:
    seen = observed.over_limit_answers
    check.data = {"answers": seen, "retryAfter": observed.over_limit_retry_after}
    if not seen:
        check.set(Verdict.OK, "not seen (doctor does not provoke it: that would slow every "
                  "other client of the project)")
        return
    retry_after = {True: "with", False: "without", None: "?"}[observed.over_limit_retry_after]
    check.set(Verdict.WARN, f"seen {seen} time(s), the last {retry_after} Retry-After; csload "
              "waited and retried",
              "the project's limit of 10 concurrent API requests is shared by every credential "
              "and tool: lower [limits] api_concurrency in csload.toml if others use the API "
              "at the same time")
