"""A local Contentsquare Data Export API: token endpoint, API, signed-URL storage, seeded data.

It behaves as the Export API's contract says (README, "The simulator"; docs/formats.md for the
points the real service may do otherwise), including every assumed point, and can serve
each variant a client must tolerate (`Variants`) and each failure it must survive (`Faults`).
Time is the simulator's own clock (`SimClock`): tests move it, nothing waits on the wall clock.

    sim = Simulator(SimConfig(seed=7, days=3))
    async with sim.serve() as base_url:          # base_url is also the auth URL
        ...
    sim.truth(job_id, run_id)                    # the rows a run's files hold

URL layout (base = http://127.0.0.1:<port>):
    POST {base}/v1/oauth/token                  token; its `endpoint` is {base}/api
    {base}/api/v1/exports[...]                  the API of contract section 4
    GET  {base}/storage/42/exports/{job}/{run}/part-00001.csv.gz?Expires=...&Signature=...

Knobs: `sim.config` (SimConfig: sizes, lifetimes, limits; some fields live), `sim.variants`
(response shapes), `sim.faults` (failures, latency, bandwidth), `sim.clock` / `sim.advance()`
/ `sim.advance_days()` (time), `sim.rerun()`, `sim.suspend()`, `sim.expire_tokens()`,
`sim.pause_api()` / `sim.resume_api()` / `await sim.wait_api_held(n)` (hold API requests).
Truth: `sim.truth()`, `sim.column_types()`, `sim.part_bodies()`, `sim.stats` (SimStats).

Modules: config (SimConfig, Variants), clock, faults, stats, model (job/run records),
validation (create-job rules), state (jobs, runs, schedule, once queue), vocab + data (the
seeded rows), variables (custom/dynamic vars), rows (a run's rows = the truth), formats
(CSV/JSONL writers), parts (part cache), auth, storage, responses, api (endpoints), limits
(middleware: limit, faults, bearer check), app (routes), core (Simulator), server (serving),
runner (run_forever for `csload simulate`).
"""

from csload.simulator.clock import SimClock
from csload.simulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_PROJECT_ID,
    SimConfig,
    Variants,
)
from csload.simulator.core import Simulator
from csload.simulator.faults import Faults
from csload.simulator.model import JobRecord, RunRecord, SimField
from csload.simulator.runner import run_forever
from csload.simulator.server import ServerHandle
from csload.simulator.stats import SimStats

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_PROJECT_ID",
    "Faults",
    "JobRecord",
    "RunRecord",
    "ServerHandle",
    "SimClock",
    "SimConfig",
    "SimField",
    "SimStats",
    "Simulator",
    "Variants",
    "run_forever",
]
