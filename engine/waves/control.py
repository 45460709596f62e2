"""Waves: the campaign manager's lever (create, start, pause, resume, stop) and their status.

A state change is one atomic script on the wave's meta hash, then a publish on
:data:`engine.store.keys.CONTROL_CHANNEL` so every dispatcher learns it at once. The
claim and begin-send scripts read the state themselves, so even a dispatcher
that missed the message never claims or sends for a paused or stopped wave.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis

from engine.calendar.clock import Clock
from engine.errors import WaveError
from engine.store import keys
from engine.store.keys import WaveKeys
from engine.store.wavestore import Scripts, WaveStore


class WaveState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    COMPLETED = "completed"


#: Allowed transitions: action → (from states, to state).
TRANSITIONS: dict[str, tuple[tuple[WaveState, ...], WaveState]] = {
    "start": ((WaveState.CREATED,), WaveState.RUNNING),
    "pause": ((WaveState.RUNNING,), WaveState.PAUSED),
    "resume": ((WaveState.PAUSED,), WaveState.RUNNING),
    "stop": ((WaveState.CREATED, WaveState.RUNNING, WaveState.PAUSED), WaveState.STOPPED),
    "complete": ((WaveState.RUNNING,), WaveState.COMPLETED),
}

_TRANSITION_LUA = """
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return {'missing'} end
for i = 3, #ARGV do
  if ARGV[i] == cur then
    redis.call('HSET', KEYS[1], 'state', ARGV[1], ARGV[1] .. '_at', ARGV[2],
               ARGV[1] .. '_by', redis.call('HGET', KEYS[1], 'pending_by') or '')
    return {'ok', cur}
  end
end
return {'refused', cur}
"""

_COMPLETE_LUA = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
local c = redis.call('HMGET', KEYS[2], 'total', 'queued', 'leased')
local total, queued, leased = tonumber(c[1] or 0), tonumber(c[2] or 0), tonumber(c[3] or 0)
if total > 0 and queued <= 0 and leased <= 0 then
  redis.call('HSET', KEYS[1], 'state', 'completed', 'completed_at', ARGV[1])
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class WaveInfo:
    wave_id: str
    campaign_id: str
    day: date
    state: WaveState
    meta: dict[str, str]


class Waves:
    """Wave operations over one Redis client."""

    def __init__(self, redis: Redis, clock: Clock, *, results_maxlen: int = 5_000_000) -> None:
        self.redis = redis
        self.clock = clock
        self.scripts = Scripts(redis)
        self.results_maxlen = results_maxlen
        self._transition = redis.register_script(_TRANSITION_LUA)
        self._complete = redis.register_script(_COMPLETE_LUA)

    def store(self, wave_id: str) -> WaveStore:
        return WaveStore(self.scripts, wave_id, results_maxlen=self.results_maxlen)

    async def create(self, wave_id: str, campaign_id: str, day: date, *, by: str = "cli") -> WaveInfo:
        wk = WaveKeys(wave_id)
        now = self.clock.now_ms()
        created = await self.redis.hsetnx(wk.meta, "wave_id", wave_id)
        if not created:
            raise WaveError(f"wave {wave_id!r} already exists")
        await self.redis.hset(
            wk.meta,
            mapping={"campaign_id": campaign_id, "day": day.isoformat(), "state": WaveState.CREATED,
                     "created_at": now, "created_by": by},
        )
        await self.redis.sadd(keys.WAVES, wave_id)
        await self.redis.hsetnx(keys.CAMPAIGNS, campaign_id, json.dumps({"campaign_id": campaign_id,
                                                                           "created_at": now}))
        return await self.get(wave_id)

    async def get(self, wave_id: str) -> WaveInfo:
        meta = await self.redis.hgetall(WaveKeys(wave_id).meta)
        if not meta:
            raise WaveError(f"no wave {wave_id!r}")
        return WaveInfo(wave_id, meta["campaign_id"], date.fromisoformat(meta["day"]),
                        WaveState(meta["state"]), meta)

    async def list(self) -> list[str]:
        return sorted(await self.redis.smembers(keys.WAVES))

    async def running(self) -> set[str]:
        return set(await self.redis.smembers(keys.RUNNING))

    async def change(self, wave_id: str, action: str, *, by: str = "cli") -> WaveState:
        """Apply ``action`` (start, pause, resume, stop) or raise :class:`WaveError`."""
        if action not in TRANSITIONS:
            raise WaveError(f"unknown wave action {action!r}")
        sources, target = TRANSITIONS[action]
        wk = WaveKeys(wave_id)
        await self.redis.hset(wk.meta, "pending_by", by)
        raw = await self._transition(
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
        await self.redis.publish(keys.CONTROL_CHANNEL, f"{wave_id} {target.value}")
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
        done = bool(await self._complete(keys=[wk.meta, wk.counts], args=[self.clock.now_ms()]))
        if done:
            await self.redis.srem(keys.RUNNING, wave_id)
            await self.redis.publish(keys.CONTROL_CHANNEL, f"{wave_id} {WaveState.COMPLETED.value}")
        return done

    async def counts(self, wave_id: str) -> dict[str, int]:
        raw = await self.redis.hgetall(WaveKeys(wave_id).counts)
        return {k: int(v) for k, v in raw.items()}

    async def status(self, wave_id: str, windows: Any = None) -> dict[str, Any]:
        """Counts by state and outcome, rate over the last minute, ETA, zones (see ``status_view``)."""
        from engine.waves.status import status_view

        return await status_view(self, wave_id, windows)
