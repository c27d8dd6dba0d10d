"""The API's concurrency limit, the test gate that holds requests, and the request middleware.

The middleware counts every request by route kind and status, enforces the 10-concurrent limit
on the API paths (token endpoint included, storage excluded), applies the latency and API fault
knobs, and checks the bearer token. The over-limit answer is the contract's 429
TOO_MANY_REQUESTS with Retry-After, or what the section 9 variants make it: another status
(`over_limit_status`), another code (`over_limit_code`), no Retry-After
(`over_limit_retry_after`); its message always speaks of the concurrent request limit.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from csload.simulator import responses
from csload.simulator.auth import check_bearer
from csload.simulator.stats import SeenRequest

if TYPE_CHECKING:
    from csload.simulator.core import Simulator


class ApiGate:
    """Holds API requests once they count as in flight, until opened again.

    It makes concurrency observable without timing: close the gate, send N requests, wait
    until N are held, check what the N+1th gets, open the gate.
    """

    def __init__(self) -> None:
        self._open = True
        self.held = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cond: asyncio.Condition | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the loop that serves (its primitives belong to that loop)."""
        self._loop = loop
        self._cond = asyncio.Condition()

    def close(self) -> None:
        self._open = False

    def open(self) -> None:
        self._open = True
        if self._loop is not None and not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._notify(), self._loop)

    async def _notify(self) -> None:
        assert self._cond is not None
        async with self._cond:
            self._cond.notify_all()

    async def pass_through(self) -> None:
        if self._open or self._cond is None:
            return
        async with self._cond:
            self.held += 1
            self._cond.notify_all()
            try:
                await self._cond.wait_for(lambda: self._open)
            finally:
                self.held -= 1

    async def wait_held(self, count: int) -> None:
        """Return once at least `count` requests are held (call it on the serving loop)."""
        if self._cond is None:
            raise RuntimeError("the simulator is not serving")
        async with self._cond:
            await self._cond.wait_for(lambda: self.held >= count)


def route_kind(request: web.Request) -> str:
    route = request.match_info.route
    name = getattr(route, "name", None)
    return name or "unknown"


def is_api_path(sim: Simulator, path: str) -> bool:
    return path.startswith(sim.config.api_prefix + "/") or path == "/v1/oauth/token"


async def _call(handler: Handler, request: web.Request, api: bool) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not api:
            raise
        if exc.status == 405:
            return responses.error(405, "METHOD_NOT_ALLOWED", f"{request.method} not allowed")
        if exc.status == 404:
            return responses.error(404, "NOT_FOUND", f"No such endpoint: {request.path}")
        raise


def _over_limit(sim: Simulator) -> web.Response:
    """The answer to a request beyond the concurrency limit."""
    variants = sim.config.variants
    headers = ({"Retry-After": str(sim.config.concurrency_retry_after)}
               if variants.over_limit_retry_after else None)
    return responses.error(
        variants.over_limit_status, variants.over_limit_code,
        f"Too many concurrent requests: the limit is {sim.config.max_concurrent_api} "
        "concurrent requests per project.",
        headers,
    )


async def _api(sim: Simulator, request: web.Request, handler: Handler,
               kind: str) -> web.StreamResponse:
    faults = sim.faults
    if kind == "token":
        sim.stats.add("token_requests")
    in_flight = sim.stats.api_enter()
    if in_flight > sim.config.max_concurrent_api:
        # The refused request frees its slot at once: only admitted requests hold capacity.
        sim.stats.api_leave()
        sim.stats.add("concurrency_rejections")
        if faults.latency > 0:
            sim.stats.add("delayed_responses")
            await asyncio.sleep(faults.latency)
        return _over_limit(sim)
    try:
        await sim.gate.pass_through()
        if faults.latency > 0:
            sim.stats.add("delayed_responses")
            await asyncio.sleep(faults.latency)
        status = faults.take_api_fault(token_endpoint=kind == "token", path=request.path)
        if status is not None:
            sim.stats.count_fault("api_429" if status == 429 else f"api_{status}")
            return responses.fault(status, faults.retry_after)
        if kind != "token":
            now = sim.clock.now()
            denied = check_bearer(request, sim.tokens, now)
            if denied is not None:
                return denied
        return await _call(handler, request, api=True)
    finally:
        sim.stats.api_leave()


def make_middleware(sim: Simulator) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        kind = route_kind(request)
        api = is_api_path(sim, request.path)
        if api and kind == "unknown":
            kind = "unknown_api"
        sim.stats.count_request(kind)
        sim.stats.record(SeenRequest(kind, request.method, request.path, request.query_string,
                                     tuple(request.headers.items())))
        status = 500
        try:
            if api:
                response = await _api(sim, request, handler, kind)
            else:
                response = await _call(handler, request, api=False)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            sim.stats.count_status(kind, status)

    return middleware
