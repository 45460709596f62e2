"""Any process recovers the expired leases of any wave (a dispatcher killed with ``kill -9``).

What an expired lease means depends on how far its attempt got (its phase in Redis):

* ``claimed`` — nothing went out: back to the queue, its claim's reservations released (or
  ``cancelled`` if the wave stopped);
* ``sending`` — it may have reached the wire: ``unknown`` (guarantee 4), which counts, so its
  reservation is kept; unless the channel says ``resend_unconfirmed = true``;
* ``accepted`` — the final event never came: a message ends ``accepted`` (or cascades when
  its scenario waits for delivery), a call ends ``unknown``; the scenario's counting decides
  the reservation, and a delivery that comes later holds it again.

Every decision goes through a script guarded by "the lease is still expired", so two
processes recovering at once apply each decision once. On a Redis Cluster a pass also applies
the settlements a process left in a wave's outbox when it died (:mod:`engine.dispatch.lifecycle`).
"""

from __future__ import annotations

import asyncio
import logging

from engine.context import Context
from engine.dispatch.finisher import Finisher
from engine.dispatch.lifecycle import Lifecycle
from engine.domain.attempt import AttemptPhase
from engine.domain.models import Attempt, Task
from engine.domain.outcomes import MESSAGE_CHANNELS, Outcome
from engine.domain.wave import WaveState
from engine.store.keys import WaveKeys
from engine.store.schema import Counter, Guard, TaskState

log = logging.getLogger(__name__)


class Recovery:
    def __init__(self, ctx: Context, finisher: Finisher, lifecycle: Lifecycle, batch: int = 500) -> None:
        self.ctx = ctx
        self.finisher = finisher
        self.lifecycle = lifecycle
        self.batch = batch

    async def sweep(self) -> int:
        """One pass over every wave with leases; returns how many leases were handled."""
        handled = 0
        for wave_id in await self.ctx.waves.list():
            if self.ctx.settings.redis.cluster:
                await self.lifecycle.sweep_outbox(wave_id)
            leased = await self.ctx.redis.hget(WaveKeys(wave_id).counts, Counter.LEASED.value)
            if leased is None or int(leased) <= 0:
                continue
            handled += await self.sweep_wave(wave_id)
        return handled

    async def sweep_wave(self, wave_id: str) -> int:
        store = self.ctx.waves.store(wave_id)
        handled = 0
        while True:
            now = self.ctx.clock.now_ms()
            expired = await store.expired(now, self.batch)
            if not expired:
                return handled
            state = (await self.ctx.waves.get(wave_id)).state
            jobs = [self._one(wave_id, state, st, tj) for _, st, tj in expired if st and tj]
            await asyncio.gather(*jobs)
            handled += len(jobs)
            if len(expired) < self.batch:
                return handled

    async def _one(self, wave_id: str, wave_state: WaveState, st: TaskState, task_json: str) -> None:
        task = Task.model_validate_json(task_json)
        attempt = Attempt(task_id=task.task_id, wave_id=wave_id, number=st.attempt, channel=st.channel)
        _, day = await self.ctx.wave_day(wave_id)
        gen = st.generation
        if st.phase is AttemptPhase.CLAIMED:
            if wave_state.finished:
                await self.finisher.finish(task, attempt, gen, Outcome.CANCELLED, provider_text="wave stopped",
                                           guard=Guard.EXPIRED)
            else:
                await self.lifecycle.requeue_expired(wave_id, task, st, day)
        elif st.phase is AttemptPhase.SENDING:
            if self.ctx.settings.channel(st.channel).resend_unconfirmed:
                await self.lifecycle.requeue_expired(wave_id, task, st, day)
            else:
                await self.finisher.finish(task, attempt, gen, Outcome.UNKNOWN, guard=Guard.EXPIRED,
                                           provider_text="the sending process vanished before the result")
        elif st.phase is AttemptPhase.ACCEPTED:
            outcome = Outcome.ACCEPTED if st.channel in MESSAGE_CHANNELS else Outcome.UNKNOWN
            await self.finisher.finish(task, attempt, gen, outcome, guard=Guard.EXPIRED,
                                       provider_text="no final event before the timeout")
        else:
            log.warning("lease of task %s in wave %s is in phase %s", task.task_id, wave_id, st.phase)

    async def run(self, interval_s: float) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                self.ctx.metrics.error("recovery")
                log.exception("lease recovery pass failed")
            await asyncio.sleep(interval_s)
