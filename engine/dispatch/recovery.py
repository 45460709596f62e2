"""Any process recovers the expired leases of any wave (a dispatcher killed with ``kill -9``).

What an expired lease means depends on how far its attempt got:

* ``claimed`` — nothing went out: back to the queue (or ``cancelled`` if the wave stopped);
* ``sending`` — it may have reached the wire: ``unknown`` (guarantee 4), its cap slot stays
  used, unless the channel says ``resend_unconfirmed = true``;
* ``accepted`` — the final event never came: a message ends ``accepted`` (or cascades when
  its scenario waits for delivery), a call ends ``unknown``.

Every decision goes through a script guarded by "the lease is still expired", so two
processes recovering at once apply each decision once.
"""

from __future__ import annotations

import asyncio
import logging

from engine.context import Context
from engine.dispatch.finisher import Finisher
from engine.domain.models import Attempt, Task
from engine.domain.outcomes import MESSAGE_CHANNELS, Channel, Outcome
from engine.store.keys import WaveKeys
from engine.store.wavestore import eligible_score

log = logging.getLogger("engine.dispatch.recovery")


class Recovery:
    def __init__(self, ctx: Context, finisher: Finisher, batch: int = 500) -> None:
        self.ctx = ctx
        self.finisher = finisher
        self.batch = batch
        self.recovered = 0

    async def sweep(self) -> int:
        """One pass over every wave with leases; returns how many leases were handled."""
        handled = 0
        for wave_id in await self.ctx.waves.list():
            leased = await self.ctx.redis.hget(WaveKeys(wave_id).counts, "leased")
            if leased is None or int(leased) <= 0:
                continue
            handled += await self.sweep_wave(wave_id)
        self.recovered += handled
        return handled

    async def sweep_wave(self, wave_id: str) -> int:
        store = self.ctx.waves.store(wave_id)
        handled = 0
        while True:
            now = self.ctx.clock.now_ms()
            expired = await store.expired(now, self.batch)
            if not expired:
                return handled
            state = (await self.ctx.waves.get(wave_id)).state.value
            jobs = [self._one(wave_id, state, tid, st, tj) for tid, st, tj in expired if st and tj]
            await asyncio.gather(*jobs)
            handled += len(jobs)
            if len(expired) < self.batch:
                return handled

    async def _one(self, wave_id: str, wave_state: str, task_id: str, st: dict[str, object], task_json: str
                   ) -> None:
        task = Task.model_validate_json(task_json)
        channel = Channel(str(st.get("c", task.channel)))
        number = int(str(st.get("a", 1)))
        attempt = Attempt(task_id=task_id, wave_id=wave_id, number=number, channel=channel)
        phase = st.get("ph")
        store = self.ctx.waves.store(wave_id)
        now = self.ctx.clock.now_ms()
        if phase == "claimed":
            if wave_state in ("stopped", "completed"):
                await self.finisher.finish(task, attempt, Outcome.CANCELLED, provider_text="wave stopped",
                                           guard="expired")
            else:
                await store.requeue(now, [(task_id, number, eligible_score(now, task.priority), "expired")])
        elif phase == "sending":
            if self.ctx.settings.channel(channel).resend_unconfirmed:
                await store.requeue(now, [(task_id, number, eligible_score(now, task.priority), "expired")])
            else:
                await self.finisher.finish(task, attempt, Outcome.UNKNOWN, guard="expired",
                                           provider_text="the sending process vanished before the result")
        elif phase == "accepted":
            outcome = Outcome.ACCEPTED if channel in MESSAGE_CHANNELS else Outcome.UNKNOWN
            await self.finisher.finish(task, attempt, outcome, guard="expired",
                                       provider_text="no final event before the timeout")
        else:
            log.warning("lease of task %s in wave %s has an unknown phase %r", task_id, wave_id, phase)

    async def run(self, interval_s: float) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                self.ctx.metrics.error("recovery")
                log.exception("lease recovery pass failed")
            await asyncio.sleep(interval_s)
