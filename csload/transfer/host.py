"""The storage host: where a run's parts are downloaded from, by the signed URLs the API gave.

    host = StorageHost(client)           # an open ExportClient
    await host.download_part(part, dest, *, job_id, run_id) -> DownloadResult
    await host.probe_part(part) -> PartProbe       # size, and whether it still exists

It shares the API client's connection pool, limits, retry policy, proxies and https rule, never
its token: the pool carries no Authorization header (csload.api.client), and the requests here
add none. The rules of one download are csload.transfer.storage's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from csload.api.client import ExportClient
from csload.api.models import Part
from csload.transfer.storage import DownloadResult, PartProbe, download_part, probe_part


class StorageHost:
    def __init__(self, client: ExportClient) -> None:
        self._client = client

    async def download_part(
        self, part: Part, dest: Path, *, job_id: int, run_id: int, verify_gzip: bool = True,
        attempts: int | None = None,
    ) -> DownloadResult:
        """Stream one part to `dest` (verified, whole or absent).

        `verify_gzip=False` skips inflating the gzip stream (for a caller whose reader checks
        it); `attempts` replaces the retry policy's `max_attempts` for this part.
        """
        client = self._client
        retry = client.settings.retry
        if attempts is not None:
            retry = dataclasses.replace(retry, max_attempts=attempts)
        return await download_part(
            client.session, part.url, Path(dest),
            job_id=job_id, run_id=run_id, part_id=part.part_id,
            limits=client.settings.limits, retry=retry, sleep=client.sleep,
            verify_gzip=verify_gzip, proxies=client.proxies,
            loopback_http=client.loopback_http,
        )

    async def probe_part(self, part: Part) -> PartProbe:
        """The part's size, and whether storage still has it (for `sync --dry-run`)."""
        client = self._client
        return await probe_part(client.session, part.url, limits=client.settings.limits,
                                proxies=client.proxies, loopback_http=client.loopback_http)
