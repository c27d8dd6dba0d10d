"""The simulator with some API answers rewritten on the way out, as a hostile or broken API
would answer: its own app with a middleware of the test's."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from csload.simulator import SimConfig, Simulator

Edit = Callable[[Any], None]


class Tampered(Simulator):
    """The simulator, whose API answers at the paths in `edits` have their payload changed in
    place by the edit before they are sent."""

    def __init__(self, config: SimConfig) -> None:
        super().__init__(config)
        self.edits: dict[str, Edit] = {}

    def make_app(self) -> web.Application:
        app = super().make_app()

        @web.middleware
        async def tamper(request: web.Request, handler: Any) -> web.StreamResponse:
            response: web.StreamResponse = await handler(request)
            edit = self.edits.get(request.path)
            if edit is None or not isinstance(response, web.Response) or response.status != 200:
                return response
            assert isinstance(response.body, bytes)
            body = json.loads(response.body)
            edit(body["payload"])
            return web.json_response(body)

        app.middlewares.append(tamper)
        return app

    def api_path(self, tail: str) -> str:
        return f"{self.config.api_prefix}/v1{tail}"


def set_job_value(key: str, value: object) -> Callable[[int], Edit]:
    """An edit of the job list: job `job_id`'s `key` set to `value`."""
    def for_job(job_id: int) -> Edit:
        def edit(payload: Any) -> None:
            for job in payload:   # on the page that lists the job
                if job["jobId"] == job_id:
                    job[key] = value
        return edit
    return for_job


def set_position(value: object) -> Callable[[int], Edit]:
    """An edit of the job list: job `job_id`'s first custom variable at position `value`."""
    def for_job(job_id: int) -> Edit:
        def edit(payload: Any) -> None:
            for job in payload:   # on the page that lists the job
                if job["jobId"] == job_id:
                    field = next(f for f in job["fields"] if "customVarPosition" in f)
                    field["customVarPosition"] = value
        return edit
    return for_job


def set_field_value(key: str, value: object) -> Callable[[int], Edit]:
    """An edit of the job list: job `job_id`'s first field's `key` set to `value`."""
    def for_job(job_id: int) -> Edit:
        def edit(payload: Any) -> None:
            for job in payload:   # on the page that lists the job
                if job["jobId"] == job_id:
                    job["fields"][0][key] = value
        return edit
    return for_job


def list_twice(fields: int) -> Callable[[int], Edit]:
    """An edit of the job list: job `job_id` listed again, with only its first `fields`."""
    def for_job(job_id: int) -> Edit:
        def edit(payload: Any) -> None:
            for job in list(payload):
                if job["jobId"] == job_id:
                    payload.append({**job, "fields": job["fields"][:fields]})
        return edit
    return for_job
