"""Global pacing per target: a rate limit and a concurrency limit enforced in Redis.

Rate: a shared "theoretical arrival time" (GCRA without burst) in Redis time.
Each grant hands out consecutive send slots spaced ``1 / rate`` apart; every
process sleeps until its slots, so sends from all processes interleave evenly
and no calendar second sees more than the configured rate. Slots are granted
at ``rate_headroom`` × the configured rate (default 97 %) so a send that leaves
a few milliseconds late does not push a second over the limit.

Concurrency: a sorted set of slot holders scored by expiry; a holder that
vanished (process killed) frees its slot when the expiry passes.

Waiting is ``asyncio.sleep``: no CPU is spent while a target is saturated.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from engine.store import keys
from engine.store.batching import MicroBatcher

# KEYS: 1 tat. ARGV: 1 interval µs, 2 wanted, 3 horizon µs.
# Returns {first slot µs, granted, redis now µs} as strings (Lua numbers are doubles).
_RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, wanted, horizon = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local room = math.floor((now + horizon - tat) / interval) + 1
local k = math.min(wanted, room)
if k < 0 then k = 0 end
if k > 0 then
  redis.call('SET', KEYS[1], string.format('%d', tat + k * interval), 'PX',
             math.floor((tat + k * interval - now) / 1000) + 60000)
end
return {string.format('%d', tat), k, string.format('%d', now)}
"""

# KEYS: 1 slots. ARGV: 1 limit, 2 now ms, 3 expiry ms, 4.. members. Returns how many got a slot
# (the first k members).
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local free = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1])
local k = 0
for i = 4, #ARGV do
  if k >= free then break end
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[i])
  k = k + 1
end
redis.call('PEXPIRE', KEYS[1], math.max(tonumber(ARGV[3]) - tonumber(ARGV[2]), 1000) + 60000)
return k
"""


@dataclass(frozen=True, slots=True)
class Limits:
    rate_per_s: float
    #: ``None``: no concurrency slots (the connector bounds what it holds).
    max_concurrent: int | None


#: With no slot free, ask Redis again this often (other processes' releases are not seen here).
SLOT_POLL_S = 0.02


class SlotQueue:
    """One process's door to one target's concurrency slots in Redis.

    Batches wait their turn in FIFO order and only the first asks Redis — for at most the
    limit's worth of members — so a saturated target costs one script call per poll interval,
    not one per waiting batch. A release by this process wakes the head at once; other
    processes' releases are seen at the next poll.
    """

    def __init__(self) -> None:
        self._turn = asyncio.Lock()  # asyncio's lock is FIFO: batches go in the order they came
        self._freed = asyncio.Event()

    async def acquire(self, ask: Callable[[list[str]], Awaitable[int]], limit: int, members: list[str],
                      give_up: Callable[[], bool]) -> tuple[int, float]:
        """(how many of the first ``members`` got a slot — at least one, or 0 once ``give_up()``
        says the batch no longer wants any —, seconds spent waiting for a turn or a free slot: 0
        when there was neither to wait for)."""
        started = time.monotonic()
        waited = self._turn.locked()
        async with self._turn:
            while True:
                if give_up():  # a stop, a pause or a shutdown while this batch waited
                    return 0, time.monotonic() - started
                self._freed.clear()
                granted = await ask(members[:limit])
                if granted:
                    return granted, (time.monotonic() - started if waited else 0.0)
                waited = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), SLOT_POLL_S)

    def released(self) -> None:
        self._freed.set()


class Pacer:
    """Grants send slots on targets. Times are real (wall/monotonic), not the engine clock."""

    def __init__(self, redis: Redis, *, headroom: float = 0.97, horizon_s: float = 1.0) -> None:
        self.redis = redis
        self.headroom = headroom
        self.horizon_us = int(horizon_s * 1_000_000)
        self._rate = redis.register_script(_RATE)
        self._acquire = redis.register_script(_ACQUIRE)
        # Slots freed in the same tick leave in one ZREM per target.
        self._releases: MicroBatcher[str, str, None] = MicroBatcher(self._release_many)
        self._queues: dict[str, SlotQueue] = {}
        # Late slots traded in the same tick get their fresh ones in one script call per target.
        self._fresh: MicroBatcher[tuple[str, Limits], None, float | None] = MicroBatcher(self._fresh_many)

    async def _release_many(self, target: str, members: list[str]) -> list[None]:
        await self.redis.zrem(keys.pacing_slots(target), *members)
        queue = self._queues.get(target)
        if queue is not None:
            queue.released()
        return [None] * len(members)

    async def wait_slots(self, target: str, limits: Limits, members: list[str], hold_s: float,
                         give_up: Callable[[], bool]) -> tuple[int, float]:
        """Concurrency, waiting: slots for the first k ``members`` (k ≥ 1; 0 when ``give_up()``),
        in turn with the other batches of this process waiting on ``target``; and the seconds it
        waited."""
        queue = self._queues.get(target)
        if queue is None:
            queue = self._queues[target] = SlotQueue()

        async def ask(some: list[str]) -> int:
            return await self.acquire_slots(target, limits, some, hold_s)

        assert limits.max_concurrent is not None
        return await queue.acquire(ask, limits.max_concurrent, members, give_up)

    async def acquire_slots(
        self, target: str, limits: Limits, members: list[str], hold_s: float
    ) -> int:
        """Concurrency: take slots for the first k ``members``; returns k (maybe 0)."""
        now_ms = time.time_ns() // 1_000_000
        return int(
            await self._acquire(
                keys=[keys.pacing_slots(target)],
                args=[limits.max_concurrent, now_ms, now_ms + int(hold_s * 1000), *members],
            )
        )

    async def release_slots(self, target: str, members: list[str]) -> None:
        if len(members) == 1:
            await self._releases.submit(target, members[0])
        elif members:
            await asyncio.gather(*self.release_soon(target, members))

    def release_soon(self, target: str, members: list[str]) -> list[asyncio.Future[None]]:
        """Submit the release of ``members``' slots (it leaves at the next loop tick); each
        future is done once Redis has it."""
        return [self._releases.submit(target, m) for m in members]

    async def extend_slots(self, target: str, members: list[str], hold_s: float) -> None:
        if members:
            until = time.time_ns() // 1_000_000 + int(hold_s * 1000)
            await self.redis.zadd(keys.pacing_slots(target), dict.fromkeys(members, until), xx=True)

    async def in_use(self, target: str) -> int:
        now_ms = time.time_ns() // 1_000_000
        return int(await self.redis.zcount(keys.pacing_slots(target), now_ms, "+inf"))

    async def rate_slots(self, target: str, limits: Limits, wanted: int) -> list[float]:
        """Rate: local ``time.monotonic()`` instants at which each granted send may go.

        Grants fewer than ``wanted`` when they would reach past the horizon; the caller
        asks again for the rest.
        """
        interval_us = max(1, int(1_000_000 / (limits.rate_per_s * self.headroom)))
        before = time.monotonic()
        first, granted, redis_now = await self._rate(
            keys=[keys.pacing_rate(target)], args=[interval_us, wanted, self.horizon_us]
        )
        after = time.monotonic()
        # Map Redis time to local monotonic time at the middle of the round trip.
        offset_s = (int(first) - int(redis_now)) / 1_000_000
        base = (before + after) / 2 + offset_s
        step = interval_us / 1_000_000
        return [base + i * step for i in range(int(granted))]

    async def fresh_slot(self, target: str, limits: Limits) -> float | None:
        """One rate slot (a ``time.monotonic()`` instant), or None when the horizon is full."""
        return await self._fresh.call((target, limits), None)

    async def _fresh_many(self, key: tuple[str, Limits], items: list[None]) -> list[float | None]:
        target, limits = key
        times: list[float | None] = list(await self.rate_slots(target, limits, len(items)))
        return times + [None] * (len(items) - len(times))

    @staticmethod
    async def sleep_until(at_monotonic: float) -> None:
        delay = at_monotonic - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
