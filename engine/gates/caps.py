"""Per-debtor contact caps, reserved atomically in Redis before a send.

Counters live under the debtor's hash tag, one per class (conversation,
message) and period of the debtor's local calendar (day, ISO week, month).
A reservation is recorded per attempt, so reserving twice (a claim repeated
after a crash) counts once and releasing twice decrements once.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from redis.asyncio import Redis

from engine.config.settings import CapLimits, CapSettings
from engine.store import keys

_DAY_TTL_S = 3 * 86400
_WEEK_TTL_S = 10 * 86400
_MONTH_TTL_S = 35 * 86400
_RESERVATIONS_TTL_S = 40 * 86400

# Reserves for many attempts in one call. ARGV[1]: JSON array of [attempt key, [limits d, w, m],
# [conversation limits], ask about conversations 0/1, [7 key names]]: the reservations hash, the
# class's day/week/month counters, the conversation day/week/month counters. Key names travel
# inside the one JSON argument (packing thousands of arguments costs the client more than the
# script); on a Redis Cluster each call carries one debtor and also declares its keys in KEYS
# (they share the debtor's hash tag). Returns per item {granted, conversation allowed}.
_RESERVE = """
local TTL = {259200, 864000, 3024000}
local out = {}
for _, item in ipairs(cjson.decode(ARGV[1])) do
  local field, limits, conv, K = item[1], item[2], item[3], item[5]
  local granted = 1
  if redis.call('HEXISTS', K[1], field) == 0 then
    local used = redis.call('MGET', K[2], K[3], K[4])
    for j = 1, 3 do
      if tonumber(used[j] or '0') >= limits[j] then granted = 0 end
    end
    if granted == 1 then
      for j = 1, 3 do
        if redis.call('INCR', K[1 + j]) == 1 then redis.call('EXPIRE', K[1 + j], TTL[j]) end
      end
      redis.call('HSET', K[1], field, cjson.encode({K[2], K[3], K[4]}))
      redis.call('EXPIRE', K[1], 3456000)
    end
  end
  local conv_ok = 0
  if granted == 1 and item[4] == 1 then
    conv_ok = 1
    local used = redis.call('MGET', K[5], K[6], K[7])
    for j = 1, 3 do
      if tonumber(used[j] or '0') >= conv[j] then conv_ok = 0 end
    end
  end
  out[#out + 1] = {granted, conv_ok}
end
return out
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


@lru_cache(maxsize=64)
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
    def __init__(self, redis: Redis, settings: CapSettings, *, cluster: bool = False) -> None:
        self.redis = redis
        self.settings = settings
        self.cluster = cluster
        self._reserve = redis.register_script(_RESERVE)
        self._release = redis.register_script(_RELEASE)
        self._convert = redis.register_script(_CONVERT)

    def _limits(self, cap_class: str) -> CapLimits:
        return self.settings.conversation if cap_class == "conversation" else self.settings.message

    def _counters(self, debtor_id: str, cap_class: str, day: date) -> list[str]:
        return [keys.cap_counter(debtor_id, cap_class, p) for p in periods(day)]

    async def reserve(self, debtor_id: str, cap_class: str, day: date, attempt_key: str) -> Reservation:
        return (await self.reserve_many([(debtor_id, cap_class, day, attempt_key)]))[0]

    async def reserve_many(
        self, items: list[tuple[str, str, date, str]], *, ask_conversation: bool = False
    ) -> list[Reservation]:
        """Reserve for a batch of attempts: (debtor, cap class, local day, attempt key).

        ``ask_conversation`` (IVR): also say whether the conversation cap has room.

        One script call for the batch on a single Redis; on a cluster one call per debtor
        (each atomic in its debtor's slot), pipelined.
        """
        if not self.settings.enabled:
            return [Reservation(True, True) for _ in items]
        conv = self.settings.conversation
        conv_limits = [conv.day, conv.week, conv.month]
        calls: list[tuple[list[str], list[object]]] = []
        for debtor_id, cap_class, day, attempt_key in items:
            limits = self._limits(cap_class)
            names = [keys.cap_reservations(debtor_id), *self._counters(debtor_id, cap_class, day),
                     *self._counters(debtor_id, "conversation", day)]
            calls.append((names, [attempt_key, [limits.day, limits.week, limits.month], conv_limits,
                                  int(ask_conversation), names]))
        if self.cluster:
            # redis-py refuses scripts in cluster pipelines: concurrent calls, a few at a time.
            raw: list[list[int]] = []
            for start in range(0, len(calls), 32):
                answers = await asyncio.gather(*(
                    self._reserve(keys=k, args=[json.dumps([item])]) for k, item in calls[start : start + 32]
                ))
                raw.extend(a[0] for a in answers)
        else:
            raw = await self._reserve(keys=[], args=[json.dumps([item for _, item in calls])])
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
