"""What every part of a channel loop shares: the job on its way, and the loop's own state.

``engine.dispatch.loop.ChannelLoop`` is composed of :class:`~engine.dispatch.gates.Gates` (window,
stop-list, rendering, caps) and :class:`~engine.dispatch.sending.Sending` (the send, its result and
the points where an attempt goes back to the queue) over this base.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from engine.calendar.clock import engine_ms
from engine.config.settings import DispatcherSettings
from engine.context import Context
from engine.dispatch.correlation import Correlation
from engine.dispatch.finisher import Finisher
from engine.domain.models import Attempt, Task
from engine.domain.outcomes import Channel, Outcome
from engine.port import Connector, SendRequest, Target
from engine.store.wavestore import eligible_score
from engine.waves.live import WaveStates


@dataclass(slots=True)
class Job:
    """One claimed attempt on its way through the gates."""

    task: Task
    attempt: Attempt
    request: SendRequest | None = None
    target: str = ""
    reserved: bool = False
    phase: str = "claimed"
    #: The window [open, close) of this attempt on the wave's day, engine ms.
    window: tuple[int, int] = (0, 0)
    #: The send slot granted by pacing (``time.monotonic()``), 0 when the target is unpaced.
    slot_at: float = 0.0
    #: When it was claimed (``time.monotonic()``), for the claim→send latency.
    claimed_mono: float = field(default_factory=time.monotonic)
    #: Correlation ids the connector announced during the send (already registered).
    announced: set[str] = field(default_factory=set)


class LoopBase:
    ctx: Context
    connector: Connector
    channel: Channel
    finisher: Finisher
    correlation: Correlation
    states: WaveStates
    settings: DispatcherSettings
    targets: dict[str, Target]
    inflight: dict[str, Job]
    _room: asyncio.Event
    _claiming: bool
    _work: dict[asyncio.Task[None], Job | None]

    def _spawn(self, coro: Coroutine[Any, Any, None], job: Job | None = None) -> None:
        task = asyncio.create_task(coro)
        self._work[task] = job
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._work.pop(task, None)

    def _done(self, job: Job) -> None:
        self.inflight.pop(job.attempt.key, None)
        self._room.set()

    async def _end(self, job: Job, outcome: Outcome, text: str | None = None, *, guard: str = "") -> None:
        await self.finisher.finish(job.task, job.attempt, outcome, provider_text=text, guard=guard,
                                   reserved=job.reserved)
        self._done(job)

    async def _requeue_one(self, job: Job, delay_s: float) -> None:
        now = self.ctx.clock.now_ms()
        score = eligible_score(now + engine_ms(self.ctx.clock, delay_s), job.task.priority)
        await self.ctx.waves.store(job.attempt.wave_id).requeue(
            now, [(job.task.task_id, job.attempt.number, score, "")]
        )

    async def _requeue(self, wave_id: str, jobs: list[Job], delay_s: float = 0.0) -> None:
        now = self.ctx.clock.now_ms()
        at = now + engine_ms(self.ctx.clock, delay_s)
        await self.ctx.waves.store(wave_id).requeue(
            now, [(j.task.task_id, j.attempt.number, eligible_score(at, j.task.priority), "") for j in jobs]
        )
        for job in jobs:
            self._done(job)
