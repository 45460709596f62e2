"""Waves: the campaign manager's lever (create, start, pause, resume, stop).

A state change is one atomic script on the wave's meta hash, then a publish on
:data:`engine.store.keys.CONTROL_CHANNEL` so every dispatcher learns it at once. The claim and
begin-send scripts read the state themselves, so even a dispatcher that missed the message
never claims or sends for a paused or stopped wave.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from redis.asyncio import Redis

from engine.calendar.clock import Clock
from engine.calendar.eligibility import closed_zones, day_is_over
from engine.calendar.windows import WindowCalendar
from engine.domain.wave import TRANSITIONS, WaveState
from engine.errors import WaveError
from engine.store import keys
from engine.store.keys import WaveKeys
from engine.store.schema import ControlMessage, Meta, SettleMode, WaveCounts
from engine.store.scripts import Scripts
from engine.store.wavestore import WaveStore


@dataclass(frozen=True, slots=True)
class WaveInfo:
    wave_id: str
    campaign_id: str
    day: date
    state: WaveState
    meta: dict[str, str]


class Waves:
    """Wave operations over one Redis client."""

    def __init__(self, redis: Redis, clock: Clock, *, results_maxlen: int = 5_000_000,
                 settle_mode: SettleMode = SettleMode.INLINE, scripts: Scripts | None = None,
                 calendar: WindowCalendar | None = None) -> None:
        self.redis = redis
        self.clock = clock
        #: With a calendar, a wave for a day already over everywhere is refused.
        self.calendar = calendar
        self.scripts = scripts or Scripts(redis)
        self.results_maxlen = results_maxlen
        self.settle_mode = settle_mode

    def store(self, wave_id: str) -> WaveStore:
        return WaveStore(self.scripts, wave_id, results_maxlen=self.results_maxlen, settle_mode=self.settle_mode)

    async def create(self, wave_id: str, campaign_id: str, day: date, *, by: str = "cli") -> WaveInfo:
        wk = WaveKeys(wave_id)
        now = self.clock.now_ms()
        if self.calendar is not None and day_is_over(day, now, self.calendar, campaign_id):
            raise WaveError(f"{day} is over in every zone: a wave for it would contact nobody")
        created = await self.redis.hsetnx(wk.meta, Meta.WAVE_ID, wave_id)
        if not created:
            raise WaveError(f"wave {wave_id!r} already exists")
        await self.redis.hset(
            wk.meta,
            mapping={Meta.CAMPAIGN_ID: campaign_id, Meta.DAY: day.isoformat(), Meta.STATE: WaveState.CREATED,
                     Meta.CREATED_AT: now, Meta.CREATED_BY: by},
        )
        await self.redis.sadd(keys.WAVES, wave_id)
        await self.redis.hsetnx(keys.CAMPAIGNS, campaign_id, json.dumps({"campaign_id": campaign_id,
                                                                           "created_at": now}))
        return await self.get(wave_id)

    def closed_today(self, day: date, campaign_id: str | None = None) -> list[str]:
        """The zones whose window of ``day`` closed already (what a manager creating a wave for
        today is warned about); empty for a day not yet begun anywhere."""
        if self.calendar is None:
            return []
        return closed_zones(day, self.clock.now_ms(), self.calendar, campaign_id=campaign_id)

    async def get(self, wave_id: str) -> WaveInfo:
        meta = await self.redis.hgetall(WaveKeys(wave_id).meta)
        if not meta or Meta.STATE not in meta:
            raise WaveError(f"no wave {wave_id!r}")
        return WaveInfo(wave_id, meta[Meta.CAMPAIGN_ID], date.fromisoformat(meta[Meta.DAY]),
                        WaveState(meta[Meta.STATE]), meta)

    async def list(self) -> list[str]:
        return sorted(await self.redis.smembers(keys.WAVES))

    async def running(self) -> set[str]:
        return set(await self.redis.smembers(keys.RUNNING))

    async def change(self, wave_id: str, action: str, *, by: str = "cli") -> WaveState:
        """Apply ``action`` (start, pause, resume, stop) or raise :class:`WaveError`; an unknown
        wave or a refused action writes nothing."""
        if action not in TRANSITIONS:
            raise WaveError(f"unknown wave action {action!r}")
        sources, target = TRANSITIONS[action]
        info = await self.get(wave_id)  # raises for an unknown wave before anything is written
        if info.state not in sources:
            raise WaveError(f"cannot {action} wave {wave_id!r}: it is {info.state}")
        wk = WaveKeys(wave_id)
        await self.redis.hset(wk.meta, Meta.PENDING_BY, by)
        raw = await self.scripts["transition"](
            keys=[wk.meta], args=[target.value, self.clock.now_ms(), *(s.value for s in sources)]
        )
        verdict = raw[0]
        if verdict == "missing":
            raise WaveError(f"no wave {wave_id!r}")
        if verdict == "refused":
            raise WaveError(f"cannot {action} wave {wave_id!r}: it is {raw[1]}")
        if target is WaveState.RUNNING:
            await self.redis.sadd(keys.RUNNING, wave_id)
        else:
            await self.redis.srem(keys.RUNNING, wave_id)
        await self.redis.publish(keys.CONTROL_CHANNEL, ControlMessage(wave_id, target).encode())
        if target is WaveState.STOPPED:
            await self.cancel_unsent(wave_id)
        return target

    async def cancel_unsent(self, wave_id: str, chunk: int = 1000) -> int:
        """End every queued task of a stopped wave as ``cancelled`` (in chunks, so Redis stays responsive).

        Claimed-but-unsent tasks are cancelled by their dispatcher at begin-send, or by
        lease recovery if that dispatcher is gone.
        """
        store = self.store(wave_id)
        total = 0
        while True:
            n = await store.cancel_queued(self.clock.now_ms(), chunk)
            total += n
            if n < chunk:
                return total

    async def maybe_complete(self, wave_id: str) -> bool:
        wk = WaveKeys(wave_id)
        done = bool(await self.scripts["complete"](keys=[wk.meta, wk.counts], args=[self.clock.now_ms()]))
        if done:
            await self.redis.srem(keys.RUNNING, wave_id)
            await self.redis.publish(keys.CONTROL_CHANNEL, ControlMessage(wave_id, WaveState.COMPLETED).encode())
        return done

    async def counts(self, wave_id: str) -> dict[str, int]:
        """The wave's counters by field (:class:`engine.store.schema.Counter`)."""
        return WaveCounts.parse(await self.redis.hgetall(WaveKeys(wave_id).counts)).raw
