"""The dispatchers' health, for the console: sessions, binds and gateway accounts up or down,
throttling, in-flight attempts, and the queues' depth.

Each ``volna run`` process writes its own report into one Redis hash
(:data:`engine.store.keys.HEALTH`, field = process id) every ``interval_s`` while it runs, and
removes it when it stops; the API (another process) reads them all. A report older than
``stale_after_s`` is a process that died without saying so: it is shown as such, and removed
once it is ten times as old. Nothing in a report names a debtor or a phone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from redis.asyncio import Redis

from engine.calendar.clock import Clock
from engine.metrics.registry import Metrics
from engine.store import keys
from engine.store.keys import CHANNEL_ORDER, WaveKeys

log = logging.getLogger("engine.metrics.health")

#: The AMI connector reports its sessions as kind "ami", SMPP binds as "smpp", HTTP gateways as
#: the messenger's name; anything else is shown as it comes.
SESSION_KINDS = {"ami": "ami_sessions", "smpp": "smpp_binds"}


def report(metrics: Metrics, process: str, now_ms: int) -> dict[str, Any]:
    """This process's health, from what its connectors and loops told the metrics (pure)."""
    sessions = [
        {"kind": kind, "target": target, "up": up, "configured": configured,
         "state": "up" if up and (configured is None or up >= configured) else ("degraded" if up else "down")}
        for (kind, target), (up, configured) in sorted(metrics.sessions.items())
    ]
    throttled = [{"kind": kind, "target": target, "total": n}
                 for (kind, target), n in sorted(metrics.throttles.items())]
    targets = []
    for loop in metrics.loops:
        held: dict[str, int] = {}
        for job in list(loop.inflight.jobs.values()):
            held[job.target or "-"] = held.get(job.target or "-", 0) + 1
        for name in loop.targets:
            targets.append({"channel": str(loop.channel), "target": name, "healthy": bool(loop.connector.healthy(name)),
                            "in_flight": held.get(name, 0)})
    return {"process": process, "at_ms": now_ms, "sessions": sessions, "throttled": throttled, "targets": targets}


class HealthReporter:
    """Writes :func:`report` every ``interval_s`` while the process runs (an async context manager)."""

    def __init__(self, metrics: Metrics, redis: Redis, clock: Clock, process: str, *, interval_s: float = 2.0) -> None:
        self.metrics = metrics
        self.redis = redis
        self.clock = clock
        self.process = process
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> HealthReporter:
        # Redis away at start-up (a restart under way) must not kill the dispatcher: the loop
        # writes again every interval.
        await self._write_or_warn()
        self._task = asyncio.create_task(self._run(), name="health-reporter")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self.redis.hdel(keys.HEALTH, self.process)

    async def write(self) -> None:
        body = json.dumps(report(self.metrics, self.process, self.clock.now_ms()))
        async with asyncio.timeout(max(self.interval_s, 1.0)):
            await self.redis.hset(keys.HEALTH, self.process, body)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self._write_or_warn()

    async def _write_or_warn(self) -> None:
        try:
            await self.write()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis away for a moment: the next write says it again
            log.warning("health report not written: %r", exc)


async def read_reports(redis: Redis, now_ms: int, *, stale_after_ms: int) -> list[dict[str, Any]]:
    """Every process's last report, each with ``stale`` set; the long-dead ones are removed."""
    out = []
    gone = []
    for process, raw in sorted((await redis.hgetall(keys.HEALTH)).items()):
        try:
            data = json.loads(raw)
        except ValueError:
            gone.append(process)
            continue
        age = now_ms - int(data.get("at_ms", 0))
        if age > 10 * stale_after_ms:
            gone.append(process)
            continue
        data["stale"] = age > stale_after_ms
        out.append(data)
    if gone:
        await redis.hdel(keys.HEALTH, *gone)
    return out


async def queue_depth(redis: Redis, wave_ids: list[str], now_ms: int) -> list[dict[str, Any]]:
    """Per wave and channel: tasks queued, those eligible now, and attempts leased (in flight)."""
    pipe = redis.pipeline(transaction=False)
    for wave_id in wave_ids:
        wk = WaveKeys(wave_id)
        for ch in CHANNEL_ORDER:
            pipe.zcard(wk.queue(ch))
            pipe.zcount(wk.queue(ch), "-inf", now_ms * 10 + 9)
        pipe.zcard(wk.leases)
    replies = await pipe.execute() if wave_ids else []
    out = []
    per = 2 * len(CHANNEL_ORDER) + 1
    for i, wave_id in enumerate(wave_ids):
        part = replies[i * per:(i + 1) * per]
        channels = {ch.value: {"queued": int(part[2 * j]), "eligible_now": int(part[2 * j + 1])}
                    for j, ch in enumerate(CHANNEL_ORDER) if part[2 * j]}
        out.append({"wave_id": wave_id, "channels": channels, "in_flight": int(part[-1])})
    return out
