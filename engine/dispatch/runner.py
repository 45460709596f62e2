"""``volna run``: one process, one loop per channel, sharing one Redis with any number of others.

Start-up composes the long-lived resources with an ``AsyncExitStack`` (Redis,
connectors, wave-state listener); shutdown is two-phase: stop claiming, drain
in-flight sends within the grace period, hand back unstarted leases, then
close connectors in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack

from redis.exceptions import RedisError

from engine.context import Context
from engine.dispatch.correlation import Correlation
from engine.dispatch.finisher import Finisher
from engine.dispatch.lifecycle import Lifecycle
from engine.dispatch.loop import ChannelLoop
from engine.dispatch.recovery import Recovery
from engine.metrics.health import HealthReporter
from engine.metrics.refresh import Refresher
from engine.port import Connector
from engine.store.connection import UNREACHABLE, ensure_reachable
from engine.store.durable import DurableWait, check_support, everysec_caveat
from engine.waves.live import WaveStates

log = logging.getLogger(__name__)



class Runner:
    def __init__(self, ctx: Context, connectors: Sequence[Connector]) -> None:
        self.ctx = ctx
        self.connectors = list(connectors)
        self.lifecycle = Lifecycle(ctx)
        self.finisher = Finisher(ctx, self.lifecycle)
        self.correlation = Correlation(ctx, self.finisher)
        self.recovery = Recovery(ctx, self.finisher, self.lifecycle)
        self.states = WaveStates(ctx.redis)
        self.loops: list[ChannelLoop] = []
        self.started = asyncio.Event()
        #: A channel loop ended on its own: the process must exit non-zero (its supervisor restarts it).
        self.failed = False

    async def run(self, stop: asyncio.Event) -> None:
        if not await self._check_master(stop):
            return
        async with AsyncExitStack() as stack:
            for connector in self.connectors:
                connector.bind_events(self.correlation.on_event)
                connector.metrics = self.ctx.metrics
                await stack.enter_async_context(connector)
            await self.states.start()
            stack.push_async_callback(self.states.stop)
            self.loops = [
                ChannelLoop(self.ctx, c, self.lifecycle, self.finisher, self.correlation, self.states)
                for c in self.connectors
            ]
            self.ctx.metrics.watch(self.loops)
            await stack.enter_async_context(Refresher(self.ctx.metrics, self.ctx.redis, self.ctx.clock,
                                                      self.ctx.windows,
                                                      archive_group=self.ctx.settings.archive.group))
            # The console's health page reads this process's sessions, binds and throttling from Redis.
            await stack.enter_async_context(HealthReporter(self.ctx.metrics, self.ctx.redis, self.ctx.clock,
                                                           self.ctx.owner))
            tasks = [asyncio.create_task(loop.run(), name=f"loop-{loop.channel}") for loop in self.loops]
            interval = max(self.ctx.settings.dispatcher.lease_s / 3, 0.2)
            recovery = asyncio.create_task(self.recovery.run(interval), name="recovery")
            self.started.set()
            log.info("dispatcher %s running: %s", self.ctx.owner, ", ".join(c.channel for c in self.connectors))
            await self._until_stop_or_failure(stop, tasks)
            log.info("stopping: no new claims, draining in-flight work")
            for loop in self.loops:
                loop.stop_claiming()
            await asyncio.gather(*tasks, return_exceptions=True)
            grace = self.ctx.settings.dispatcher.drain_grace_s
            await asyncio.gather(*(loop.drain(grace) for loop in self.loops))
            recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recovery
            await self.lifecycle.drain()
            await self.correlation.drain()
            await self.ctx.directory.drain()
        log.info("dispatcher %s stopped", self.ctx.owner)

    async def _check_master(self, stop: asyncio.Event) -> bool:
        """Refuse a durable wait the master cannot honour. A Redis that went away between the
        process's ping and here (a restart) is waited for as at the ping: chaos seed 1599371479
        started a dispatcher just before Redis was killed and it died of the read (exit 1).
        False: stopped while waiting."""
        wait = DurableWait.of(self.ctx.settings.redis)
        if wait is None or not wait.aof:
            return True
        while True:
            try:
                info = await self.ctx.redis.info()
                break
            except (*UNREACHABLE, OSError):
                if not await ensure_reachable(self.ctx.redis, self.ctx.settings.redis, wait=stop):
                    return False
        check_support(wait, info)
        caveat = everysec_caveat(await _appendfsync(self.ctx))
        if caveat:
            log.warning(caveat)
        return True

    async def _until_stop_or_failure(self, stop: asyncio.Event, loops: list[asyncio.Task[None]]) -> None:
        """Wait for the stop signal; a loop that ends before it is a failure worth a restart."""
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopping, *loops], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if stopping not in done:
            self.failed = True
            for task in done:
                exc = task.exception() if not task.cancelled() else None
                log.error("channel loop %s ended on its own (%r): stopping the process", task.get_name(), exc)


async def _appendfsync(ctx: Context) -> str | None:
    """The master's ``appendfsync``, or None where CONFIG is renamed away (a hardened server)."""
    try:
        return str((await ctx.redis.config_get("appendfsync")).get("appendfsync") or "") or None
    except RedisError:
        return None
