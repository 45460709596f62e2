"""The gateway simulator: the WhatsApp Cloud API and Route Mobile's Viber API on one aiohttp server."""

from __future__ import annotations

import random
from types import TracebackType

from aiohttp import web

from simulators.control import one_line_errors
from simulators.gateway.callbacks import Outbox
from simulators.gateway.faults import Faults
from simulators.gateway.knobs import Knobs, SimStats, has_account
from simulators.gateway.viber import ViberApi
from simulators.gateway.whatsapp import WhatsAppApi
from simulators.reach import ReachLedger


class GatewaySimulator:
    """``async with GatewaySimulator(Knobs(...)) as sim:`` serves on ``sim.url`` (a free port by default).

    ``sim.knobs`` may be changed while it runs (webhook URLs, shares, rate); ``sim.stats`` holds the
    counts (accepted messages per provider per number); ``GET /stats`` serves them as JSON.
    """

    def __init__(self, knobs: Knobs | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.knobs = knobs or Knobs()
        self.host = host
        self.port = port
        self.stats = SimStats()
        self.reach = ReachLedger(self.knobs.reach_log or None)
        self._reached: set[tuple[str, str, str]] = set()  # (provider, ref, kind): once each
        self.faults = Faults(self.knobs, random.Random(self.knobs.seed))
        quiet = Faults(self.knobs, random.Random(self.knobs.seed + 1))
        self.outbox = Outbox(self.knobs, self.stats)
        self.whatsapp = WhatsAppApi(self.knobs, self.stats, self.faults, self.outbox, quiet_faults=quiet,
                                    reached=self._reach)
        self.viber = ViberApi(self.knobs, self.stats, self.faults, self.outbox, quiet_faults=quiet,
                              reached=self._reach)
        self.app = web.Application(middlewares=[one_line_errors])
        self.app.add_routes([web.get("/stats", self._stats), web.get("/reach", self.reach.http_get),
                             *self.viber.routes(), *self.whatsapp.routes()])
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> GatewaySimulator:
        await self.outbox.start()
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        await self.outbox.stop()
        self.reach.close()

    async def __aenter__(self) -> GatewaySimulator:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ---- for tests ---------------------------------------------------------------------------

    def has_account(self, provider: str, number: str) -> bool:
        return has_account(provider, number, seed=self.knobs.seed, share_without=self.knobs.no_account_share)

    def burst(self, provider: str, count: int, status: int, retry_after_s: float | None = None) -> None:
        """The next ``count`` sends to ``provider`` are refused with ``status`` (429 → with Retry-After)."""
        self.faults.burst(provider, count, status, retry_after_s)

    async def wait_webhooks(self, timeout_s: float = 10.0) -> bool:
        """True once every scheduled webhook has been answered (or given up)."""
        return await self.outbox.wait_idle(timeout_s)

    def _reach(self, number: str, provider: str, kind: str, ref: str) -> None:
        """A status callback became due: the message reached its number (once per kind)."""
        if (provider, ref, kind) in self._reached:
            return
        self._reached.add((provider, ref, kind))
        self.reach.record(number, provider, kind, ref)

    async def _stats(self, request: web.Request) -> web.Response:
        per_number = request.query.get("per_number", "1") != "0"
        return web.json_response({**self.stats.to_json(per_number=per_number), "knobs": self.knobs.to_json()})
