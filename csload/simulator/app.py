"""The aiohttp application: routes of the token endpoint, the API and storage.

URL layout (base = http://127.0.0.1:<port>):
    POST {base}/v1/oauth/token                       token (its `endpoint` is {base}/api)
    {base}/api/v1/...                                the API (contract section 4)
    GET  {base}/storage/{project}/exports/{job}/{run}/part-NNNNN.{csv|jsonl}.gz?Expires=&Signature=
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from csload.simulator.api import ApiHandlers, guarded
from csload.simulator.limits import make_middleware
from csload.simulator.storage import STORAGE_PREFIX, serve_part

if TYPE_CHECKING:
    from csload.simulator.core import Simulator

TOKEN_PATH = "/v1/oauth/token"  # noqa: S105 - a path, not a secret


def make_app(sim: Simulator) -> web.Application:
    app = web.Application(middlewares=[make_middleware(sim)])
    h = ApiHandlers(sim)
    v1 = sim.config.api_prefix + "/v1"
    add = app.router.add_route
    add("POST", TOKEN_PATH, guarded(h.token), name="token")
    add("POST", f"{v1}/exports", guarded(h.create_job), name="create_job")
    add("GET", f"{v1}/exports", guarded(h.list_jobs), name="list_jobs")
    add("GET", f"{v1}/exports/successful-runs", guarded(h.successful_runs),
        name="successful_runs")
    add("GET", f"{v1}/exports/{{job_id}}", guarded(h.get_job), name="get_job")
    add("GET", f"{v1}/exports/{{job_id}}/runs", guarded(h.list_runs), name="list_runs")
    add("GET", f"{v1}/exports/{{job_id}}/runs/{{run_id}}", guarded(h.get_run), name="get_run")
    add("GET", f"{v1}/exportable-fields", guarded(h.exportable_fields), name="exportable_fields")
    add("GET", f"{v1}/custom-vars", guarded(h.custom_vars), name="custom_vars")
    add("GET", f"{v1}/custom_vars", guarded(h.custom_vars), name="custom_vars_underscore")
    add("GET", f"{v1}/dynamic-var-keys", guarded(h.dynamic_var_keys), name="dynamic_var_keys")

    async def storage(request: web.Request) -> web.StreamResponse:
        return await serve_part(sim, request)

    add("GET", f"{STORAGE_PREFIX}/{{project}}/exports/{{job_id}}/{{run_id}}/{{filename}}",
        storage, name="storage")
    add("GET", f"{STORAGE_PREFIX}/{{tail:.*}}", storage, name="storage_other")
    return app
