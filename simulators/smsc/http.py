"""The SMSC simulator's HTTP control endpoint (``--http-port``).

==================  ==============================================================================
``GET /stats``      counters (``?per_message=0`` leaves out the per-destination / per-text counts)
``GET /knobs``      the knobs (passwords masked)
``GET /reach``      the reach ledger (:mod:`simulators.reach`)
``GET /binds``      the receiving binds in bind order: ``[{"bind": 0, "system_id": "volna",
                    "mode": "transceiver"}, …]`` — what ``POST /mo``'s ``bind`` numbers
``POST /mo``        a mobile-originated message (:mod:`simulators.smsc.mo`): ``{"source":
                    "79161234567", "destination": "4545", "text": "STOP"}`` plus optional
                    ``data_coding`` (0 / 8), ``parts``, ``pdu`` (``deliver_sm`` / ``data_sm``),
                    ``bind`` (index, system_id, or a list with one per part), ``raw_udh_hex``,
                    ``raw_short_message_hex`` → ``202`` ``{"mo_id": "mo-1", "data_coding": 0,
                    "ref": 17 | null, "parts": [{"part": 1, "bind": 0, "system_id": "volna",
                    "sequence_number": 5, "command": "deliver_sm"}, …]}``; ``409`` when no
                    receiver or transceiver is bound
==================  ==============================================================================

Bad input gets ``400`` and one line naming the field (:mod:`simulators.control`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from simulators.control import json_object, one_line_errors
from simulators.reach import ReachLedger
from simulators.smsc import mo
from simulators.smsc.knobs import Knobs, SmscStats
from simulators.smsc.session import SmscSession
from simulators.smsc.text import Reassembler


class Controlled(Protocol):
    """What the control endpoint uses of the simulator (:class:`simulators.smsc.server.SmscSimulator`)."""

    @property
    def knobs(self) -> Knobs: ...
    @property
    def stats(self) -> SmscStats: ...
    @property
    def reach(self) -> ReachLedger: ...
    @property
    def reassembler(self) -> Reassembler: ...

    def bound(self, system_id: str | None = None) -> list[SmscSession]: ...
    def receiving_binds(self) -> list[SmscSession]: ...
    def send_mo(self, body: Mapping[str, Any]) -> dict[str, Any]: ...


def control_app(sim: Controlled) -> web.Application:
    app = web.Application(middlewares=[one_line_errors], client_max_size=256 * 1024)

    async def stats(request: web.Request) -> web.Response:
        per_message = request.query.get("per_message", "1") not in ("0", "false")
        data = sim.stats.to_json(per_message=per_message)
        data["sessions"] = len(sim.bound())
        data["incomplete_messages"] = sim.reassembler.incomplete
        data["reach_events"] = len(sim.reach)
        return web.json_response(data)

    async def knobs(request: web.Request) -> web.Response:
        return web.json_response(sim.knobs.to_json())

    async def binds(request: web.Request) -> web.Response:
        return web.json_response([{"bind": i, "system_id": s.system_id, "mode": s.mode}
                                  for i, s in enumerate(sim.receiving_binds())])

    async def send_mo(request: web.Request) -> web.Response:
        body = await json_object(request, allowed=mo.FIELDS, required=("source", "destination"))
        return web.json_response(sim.send_mo(body), status=202)

    app.add_routes([web.get("/stats", stats), web.get("/knobs", knobs), web.get("/reach", sim.reach.http_get),
                    web.get("/binds", binds), web.post("/mo", send_mo)])
    return app
