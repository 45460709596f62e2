"""The AMI simulator's HTTP control endpoint (``--http-port``): counters, reach, restart, queues, inbound.

==========================  ======================================================================
``GET /stats``              counters (``?per_number=1`` adds Originates per number), ``state``
                            (``up`` / ``shutting_down`` / ``down``), knobs, queues
``GET /reach``              the reach ledger (:mod:`simulators.reach`)
``POST /restart``           ``?down_s=2[&shutdown_s=1.1]`` (or the same as a JSON body): shut down
                            as Asterisk does, refuse connections ``down_s``, come back → ``202``
                            ``{"state": "shutting_down", "down_s": …, "shutdown_s": …}``; ``409`` while
                            a restart runs
``GET /queues``             every queue's state
``POST /queues/<name>``     ``{"logged_in": 5, "available": 2}`` (also ``callers``, ``hold_time_s``,
                            ``talk_time_s``, ``longest_hold_time_s``, ``answer_after_s``,
                            ``abandon_after_s``; fields left out keep their value) → ``200`` with
                            the queue's state
``POST /inbound``           ``{"number": "79161234567", "did": "84950000000", "talk_s": 5}``
                            (``did``, ``talk_s``, ``ring_s`` optional) → ``201`` ``{"channel":
                            "PJSIP/carrier-0000000c", "uniqueid": "1767225600.12", "linkedid": …,
                            "did": …}``; ``409`` unless the simulator is ``up``
==========================  ======================================================================

Bad input gets ``400`` and one line naming the field (:mod:`simulators.control`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sized
from typing import Protocol

from aiohttp import web

from simulators.ami.inbound import InboundCall
from simulators.ami.knobs import Knobs, SimStats
from simulators.ami.queues import Queues
from simulators.ami.state import AmiState
from simulators.control import BadInput, Conflict, int_in, json_object, number_in, one_line_errors, phone_in
from simulators.reach import ReachLedger

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_\-.]{1,64}$")
_QUEUE_FIELDS = ("logged_in", "available", "callers", "hold_time_s", "talk_time_s", "longest_hold_time_s",
                 "answer_after_s", "abandon_after_s")
_DID = re.compile(r"^[A-Za-z0-9_+\-.]{1,40}$")


class Controlled(Protocol):
    """What the control endpoint uses of the simulator (:class:`simulators.ami.server.AmiSimulator`)."""

    @property
    def knobs(self) -> Knobs: ...
    @property
    def stats(self) -> SimStats: ...
    @property
    def state(self) -> AmiState: ...
    @property
    def reach(self) -> ReachLedger: ...
    @property
    def queues(self) -> Queues: ...
    @property
    def calls(self) -> Sized: ...
    @property
    def sessions(self) -> Sized: ...
    @property
    def restarting(self) -> bool: ...

    def start_restart(self, down_s: float, shutdown_s: float | None = None) -> asyncio.Task[None]: ...
    def start_inbound(self, number: str, did: str | None = None, talk_s: float = 0.05,
                      ring_s: float | None = None) -> InboundCall: ...


def control_app(sim: Controlled) -> web.Application:
    app = web.Application(middlewares=[one_line_errors], client_max_size=64 * 1024)

    async def stats(request: web.Request) -> web.Response:
        per_number = request.query.get("per_number") in ("1", "true")
        return web.json_response({**sim.stats.to_json(per_number=per_number), "calls": len(sim.calls),
                                  "sessions": len(sim.sessions), "state": sim.state.value,
                                  "reach_events": len(sim.reach), "queues": sim.queues.to_json(),
                                  "knobs": sim.knobs.to_json()})

    async def restart(request: web.Request) -> web.Response:
        body = await json_object(request, allowed=("down_s", "shutdown_s"))
        params = {**body, **request.query}
        unknown = sorted(set(request.query) - {"down_s", "shutdown_s"})
        if unknown:
            raise BadInput(unknown[0], "unknown query parameter")
        down_s = number_in(params, "down_s", 0.0, 300.0, default=2.0)
        shutdown_s = number_in(params, "shutdown_s", 0.0, 30.0, default=sim.knobs.shutdown_s)
        if sim.restarting:
            raise Conflict("restart", "a restart is already running")
        sim.start_restart(down_s, shutdown_s)
        return web.json_response({"state": sim.state.value, "down_s": down_s, "shutdown_s": shutdown_s},
                                 status=202)

    async def queues(request: web.Request) -> web.Response:
        return web.json_response(sim.queues.to_json())

    async def set_queue(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not _QUEUE_NAME.match(name):
            raise BadInput("name", "expected 1 to 64 of A-Z a-z 0-9 _ - .")
        body = await json_object(request, allowed=_QUEUE_FIELDS)
        fields = {key: int_in(body, key, 0, 100_000) for key in _QUEUE_FIELDS if key in body}
        current = sim.queues.by_name.get(name)
        logged_in = fields.get("logged_in", current.logged_in if current else 0)
        available = fields.get("available", current.available if current else 0)
        if available > logged_in:
            raise BadInput("available", "more than logged_in")
        return web.json_response(sim.queues.configure(name, **fields).to_json())

    async def inbound(request: web.Request) -> web.Response:
        body = await json_object(request, allowed=("number", "did", "talk_s", "ring_s"), required=("number",))
        phone_in(body, "number", min_digits=3, max_digits=20)
        number = str(body["number"])  # as the caller presents it (CallerIDNum)
        did = body.get("did")
        if did is not None and (not isinstance(did, str) or not _DID.match(did)):
            raise BadInput("did", "expected 1 to 40 of A-Z a-z 0-9 + _ - .")
        talk_s = number_in(body, "talk_s", 0.0, 3600.0, default=5.0)
        ring_s = number_in(body, "ring_s", 0.0, 120.0, default=0.0)
        if sim.state is not AmiState.UP:
            raise Conflict("state", f"the simulated Asterisk is {sim.state.value}")
        call = sim.start_inbound(number, did, talk_s, ring_s)
        leg = call.leg
        return web.json_response({"channel": leg.name, "uniqueid": leg.uid, "linkedid": leg.linkedid,
                                  "did": call.did}, status=201)

    app.add_routes([web.get("/stats", stats), web.get("/reach", sim.reach.http_get),
                    web.post("/restart", restart), web.get("/queues", queues),
                    web.post("/queues/{name}", set_queue), web.post("/inbound", inbound)])
    return app
