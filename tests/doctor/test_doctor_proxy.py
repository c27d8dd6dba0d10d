"""With HTTP_PROXY set, doctor goes through the proxy like a sync (API and storage alike) and
names it in its report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from csload.config import Settings
from csload.doctor import Verdict, run_doctor_async
from csload.simulator import Simulator
from tests.support.proxy import ForwardingProxy


async def test_report_names_the_proxy(settings: Settings, simulator: Simulator,
                                      db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with ForwardingProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        report = await run_doctor_async(settings, db=db_path)
    assert report.exit_code == 0, [(c.id, c.summary) for c in report.failed]
    check = report["proxy"]
    assert check.verdict is Verdict.OK
    assert check.summary.startswith(f"through {proxy.url}")
    assert check.data == {"api": proxy.url, "storage": proxy.url}
    # Every request of doctor went through the proxy: token, API and the two samples.
    stats = simulator.stats
    assert len(proxy.forwarded) == stats.api_requests + stats.storage_requests
    targets = [seen.target for seen in proxy.forwarded]
    assert any("/v1/oauth/token" in t for t in targets)
    assert sum("/storage/" in t for t in targets) == 2
    # The storage host never saw the token, through the proxy either.
    storage = [s for s in proxy.forwarded if "/storage/" in s.target]
    assert all("authorization" not in s.headers for s in storage)


def test_cli_names_the_proxy(cli: Callable[..., Result], proxy: ForwardingProxy) -> None:
    result = cli(env={"HTTP_PROXY": proxy.url})
    assert result.exit_code == 0, result.output
    assert f"ok    proxy              through {proxy.url}" in result.output
    assert proxy.forwarded


def test_cli_proxy_that_refuses(cli: Callable[..., Result], closed_url: str) -> None:
    """A proxy that does not answer: the token endpoint fails, and the hint names the proxy."""
    result = cli(env={"HTTP_PROXY": closed_url})
    assert result.exit_code == 1
    assert "fail  token endpoint" in result.output
    assert f"the proxy {closed_url}" in result.output
    # The proxy check does not say ok beside that failure.
    assert f"warn  proxy              through {closed_url}" in result.output
    assert "did not answer through it" in result.output
