"""The API client against aioresponses: no secret (client secret, access token, URL signature)
in errors, logs or reprs, and no API token sent to the storage host.

No real waiting: `sleep` is a fake that records the delays asked for.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from aioresponses import aioresponses

from csload.api.client import ExportClient
from csload.api.models import Part
from csload.errors import ApiRequestError, CredentialsRejected, DownloadError
from csload.transfer.host import StorageHost
from tests.support.api_fakes import (
    ACCESS_TOKEN,
    CLIENT_SECRET,
    JOB,
    TOKEN_URL,
    all_calls,
    api,
    error,
    grant,
)

# -- secrets ------------------------------------------------------------------------------------


SECRETS = (CLIENT_SECRET, ACCESS_TOKEN, "s1gn4tur3")


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


async def test_no_secret_in_errors_logs_or_repr(
    client: ExportClient, mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="csload")
    grant(mocked)
    # A server that echoes what it got, token and secret included, into its error message.
    echo = f"bad request from Bearer {ACCESS_TOKEN} with client_secret={CLIENT_SECRET}"
    mocked.get(api("/exports/1"), status=500, payload=error("ECHO", echo))
    mocked.get(api("/exports/1"), status=400, payload=error("ECHO", echo + " " + ACCESS_TOKEN))
    with pytest.raises(ApiRequestError) as info:
        await client.get_job(1)
    texts = [str(info.value), repr(info.value), repr(client), caplog.text]
    for text in texts:
        assert_no_secret(text)
    assert "<redacted>" in str(info.value)


async def test_no_secret_when_credentials_are_rejected(
    client: ExportClient, mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="csload")
    mocked.post(TOKEN_URL, status=401,
                payload=error("INVALID_CREDENTIALS", f"unknown secret {CLIENT_SECRET}"))
    with pytest.raises(CredentialsRejected) as info:
        await client.get_job(1)
    for text in (str(info.value), repr(info.value), repr(client), caplog.text):
        assert_no_secret(text)


async def test_no_signature_when_storage_is_unreachable(
    client: ExportClient, mocked: aioresponses, tmp_path: Path
) -> None:
    # aioresponses answers an unregistered URL with ClientConnectionError("... <full URL>").
    url = "https://storage.example.test/p/1.gz?X-Amz-Signature=s1gn4tur3&X-Amz-Expires=900"
    with pytest.raises(DownloadError) as info:
        await StorageHost(client).download_part(Part(part_id=1, url=url), tmp_path / "x.gz",
                                   job_id=1, run_id=2)
    assert_no_secret(str(info.value))
    assert "storage.example.test/p/1.gz" in str(info.value)
    storage_calls = [kw for _, u, kw in all_calls(mocked) if "storage.example" in u]
    assert len(storage_calls) == 4
    assert all("Authorization" not in (kw.get("headers") or {}) for kw in storage_calls)


async def test_client_repr_shows_no_token(client: ExportClient, mocked: aioresponses) -> None:
    grant(mocked)
    mocked.get(api("/exports/1"), payload=JOB)
    await client.get_job(1)
    assert_no_secret(repr(client))
    assert re.search(r"endpoint='https://api\.eu\.example\.test'", repr(client))
