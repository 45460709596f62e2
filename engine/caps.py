"""Per-debtor contact caps, reserved atomically in Redis before a send.

Counters live under the debtor's hash tag, one per class (conversation,
message) and period of the debtor's local calendar (day, ISO week, month).
A reservation is recorded per attempt, so reserving twice (a claim repeated
after a crash) counts once and releasing twice decrements once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from redis.asyncio import Redis

from engine import keys
from engine.settings import CapLimits, CapSettings

_DAY_TTL_S = 3 * 86400
_WEEK_TTL_S = 10 * 86400
_MONTH_TTL_S = 35 * 86400
_RESERVATIONS_TTL_S = 40 * 86400

# KEYS: 1 reservations, 2-4 day/week/month of the class, 5-7 conversation counters (for the
# "operator allowed" answer). ARGV: 1 attempt key, 2-4 limits, 5-7 TTLs, 8-10 conversation limits.
_RESERVE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  local ok = 1
  for i = 0, 2 do
    if tonumber(redis.call('GET', KEYS[5 + i]) or '0') >= tonumber(ARGV[8 + i]) then ok = 0 end
  end
  return {1, ok}
end
for i = 0, 2 do
  if tonumber(redis.call('GET', KEYS[2 + i]) or '0') >= tonumber(ARGV[2 + i]) then return {0, 0} end
end
for i = 0, 2 do
  redis.call('INCR', KEYS[2 + i])
  redis.call('EXPIRE', KEYS[2 + i], ARGV[5 + i], 'NX')
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({KEYS[2], KEYS[3], KEYS[4]}))
redis.call('EXPIRE', KEYS[1], 3456000)
local conv = 1
for i = 0, 2 do
  if tonumber(redis.call('GET', KEYS[5 + i]) or '0') >= tonumber(ARGV[8 + i]) then conv = 0 end
end
return {1, conv}
"""

_RELEASE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
for _, k in ipairs(cjson.decode(raw)) do
  if tonumber(redis.call('GET', k) or '0') > 0 then redis.call('DECR', k) end
end
return 1
"""

# Moves an attempt's reservation to other counters (a robocall that reached an operator
# becomes a conversation). Forced: the debtor already spoke to us. KEYS: 1 reservations,
# 2-4 new counters. ARGV: 1 attempt key, 2-4 TTLs.
_CONVERT = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  for _, k in ipairs(cjson.decode(raw)) do
    if tonumber(redis.call('GET', k) or '0') > 0 then redis.call('DECR', k) end
  end
end
for i = 0, 2 do
  redis.call('INCR', KEYS[2 + i])
  redis.call('EXPIRE', KEYS[2 + i], ARGV[2 + i], 'NX')
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({KEYS[2], KEYS[3], KEYS[4]}))
return 1
"""


def periods(day: date) -> tuple[str, str, str]:
    """Day, ISO week and month of the debtor's local calendar."""
    iso = day.isocalendar()
    return f"d{day.isoformat()}", f"w{iso.year}-{iso.week:02d}", f"m{day.year}-{day.month:02d}"


@dataclass(frozen=True, slots=True)
class Reservation:
    granted: bool
    #: Whether the debtor's conversation cap still has room (offered to the IVR as a variable).
    conversation_allowed: bool


class Caps:
    def __init__(self, redis: Redis, settings: CapSettings) -> None:
        self.redis = redis
        self.settings = settings
        self._reserve = redis.register_script(_RESERVE)
        self._release = redis.register_script(_RELEASE)
        self._convert = redis.register_script(_CONVERT)

    def _limits(self, cap_class: str) -> CapLimits:
        return self.settings.conversation if cap_class == "conversation" else self.settings.message

    def _counters(self, debtor_id: str, cap_class: str, day: date) -> list[str]:
        return [keys.cap_counter(debtor_id, cap_class, p) for p in periods(day)]

    def _reserve_call(self, debtor_id: str, cap_class: str, day: date, attempt_key: str
                      ) -> tuple[list[str], list[object]]:
        limits, conv = self._limits(cap_class), self.settings.conversation
        return (
            [keys.cap_reservations(debtor_id), *self._counters(debtor_id, cap_class, day),
             *self._counters(debtor_id, "conversation", day)],
            [attempt_key, limits.day, limits.week, limits.month, _DAY_TTL_S, _WEEK_TTL_S,
             _MONTH_TTL_S, conv.day, conv.week, conv.month],
        )

    async def reserve(self, debtor_id: str, cap_class: str, day: date, attempt_key: str) -> Reservation:
        return (await self.reserve_many([(debtor_id, cap_class, day, attempt_key)]))[0]

    async def reserve_many(self, items: list[tuple[str, str, date, str]]) -> list[Reservation]:
        """One pipelined round trip; each reservation is still its own atomic script (its debtor's slot)."""
        if not self.settings.enabled:
            return [Reservation(True, True) for _ in items]
        pipe = self.redis.pipeline(transaction=False)
        for item in items:
            k, a = self._reserve_call(*item)
            await self._reserve(keys=k, args=a, client=pipe)
        raw = await pipe.execute()
        return [Reservation(bool(int(r[0])), bool(int(r[1]))) for r in raw]

    async def release(self, debtor_id: str, attempt_key: str) -> bool:
        return bool(await self._release(keys=[keys.cap_reservations(debtor_id)], args=[attempt_key]))

    async def convert(self, debtor_id: str, cap_class: str, day: date, attempt_key: str) -> None:
        await self._convert(
            keys=[keys.cap_reservations(debtor_id), *self._counters(debtor_id, cap_class, day)],
            args=[attempt_key, _DAY_TTL_S, _WEEK_TTL_S, _MONTH_TTL_S],
        )

    async def used(self, debtor_id: str, cap_class: str, day: date) -> tuple[int, int, int]:
        values = await self.redis.mget(self._counters(debtor_id, cap_class, day))
        d, w, m = (int(v or 0) for v in values)
        return d, w, m
