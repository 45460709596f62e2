"""Redis holds only the working set: a finished wave leaves it once the archive has it all.

A wave is purged when it is completed or stopped, finished at least ``retention.redis_hours``
ago (engine time), and the archive's consumer group has every record of its results stream
(nothing pending, nothing undelivered). The last two checks and the removal of the wave's keys
are one script (``engine/store/lua/purge.lua``): a late receipt recorded after the archiver's
pass keeps the wave until the next pass has archived it too. A wave not archived is never
purged; ``volna wave status`` and ``volna_archive_lag_records`` say how far behind it is.

After the wave's keys go: its debtors' cap reservations of that wave (the counters themselves
keep their own TTLs, so the caps still count the contacts), and the correlation keys of its
attempts (a receipt arriving later finds no attempt and is counted as an unknown id).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from engine.domain.wave import WaveState
from engine.store import keys
from engine.store.keys import WaveKeys
from engine.store.schema import Meta, SettleMode, TaskState
from engine.store.scripts import Scripts
from engine.store.wavestore import WaveStore

log = logging.getLogger("engine.archive")


def purge_due(state: str, finished_at_ms: int | None, now_ms: int, redis_hours: float) -> bool:
    """A finished wave whose ``redis_hours`` have passed (engine time); archiving is checked apart."""
    if state not in (WaveState.COMPLETED, WaveState.STOPPED) or finished_at_ms is None:
        return False
    return finished_at_ms + redis_hours * 3_600_000 <= now_ms


def _next_id(stream_id: str) -> str:
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


async def _group(redis: Redis, stream: str, group: str) -> dict[str, object] | None:
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return None
    for g in groups:
        if str(g.get("name")) == group:
            return dict(g)
    return None


async def archive_lag(redis: Redis, wave_id: str, group: str) -> int:
    """Records of the wave's results stream the archive does not have yet (undelivered to its
    group, or delivered and not acknowledged); the whole stream when the group is missing."""
    stream = WaveKeys(wave_id).results
    g = await _group(redis, stream, group)
    if g is None:
        return int(await redis.xlen(stream))
    pending = int(str(g.get("pending") or 0))
    lag = g.get("lag")
    if lag is None:  # Redis cannot tell (entries deleted): count what follows the last delivered id
        last = str(g.get("last-delivered-id") or "0-0")
        lag = len(await redis.xrange(stream, min=_next_id(last), max="+", count=1_000_000))
    return pending + int(str(lag))


async def archived_boundary(redis: Redis, stream: str, group: str) -> str | None:
    """The MINID below which every entry of ``stream`` is archived (None: none is)."""
    g = await _group(redis, stream, group)
    if g is None:
        return None
    if int(str(g.get("pending") or 0)):
        summary = await redis.xpending(stream, group)
        low = summary.get("min")
        return str(low) if low else None
    last = str(g.get("last-delivered-id") or "0-0")
    return None if last == "0-0" else _next_id(last)


async def purge_waves(redis: Redis, group: str, now_ms: int, redis_hours: float, *,
                      scripts: Scripts | None = None, only: Iterable[str] | None = None) -> list[str]:
    """Purges every wave that may go; returns their ids."""
    scripts = scripts or Scripts(redis)
    ids = sorted(only) if only is not None else sorted(await redis.smembers(keys.WAVES))
    purged = []
    for wave_id in ids:
        wk = WaveKeys(wave_id)
        state = await redis.hget(wk.meta, Meta.STATE)
        finished = await redis.hget(wk.meta, f"{state}_at") if state else None
        if not purge_due(str(state or ""), int(finished) if finished else None, now_ms, redis_hours):
            continue
        if await archive_lag(redis, wave_id, group):
            log.info("wave %s finished but not all archived: kept in Redis", wave_id)
            continue
        debtors = list(await redis.hkeys(wk.debtors))
        correlations = [keys.correlation(st.channel, st.correlation)
                        for st in (TaskState.decode(raw) for raw in await redis.hvals(wk.state)) if st.correlation]
        cutoff = int(now_ms - redis_hours * 3_600_000)
        store = WaveStore(scripts, wave_id, results_maxlen=1000, settle_mode=SettleMode.INLINE)
        done, why = await store.purge(now_ms, group, cutoff)
        if not done:
            log.info("wave %s kept in Redis: %s", wave_id, why)
            continue
        await redis.srem(keys.WAVES, wave_id)
        await redis.srem(keys.RUNNING, wave_id)
        await _forget_reservations(redis, wave_id, debtors)
        for start in range(0, len(correlations), 1000):
            await redis.unlink(*correlations[start:start + 1000])
        purged.append(wave_id)
    return purged


async def _forget_reservations(redis: Redis, wave_id: str, debtors: list[str]) -> None:
    """The wave's fields of its debtors' reservation hashes (never the counters: they keep
    counting the contacts until their own TTLs)."""
    prefix = f"{wave_id}:"
    for start in range(0, len(debtors), 500):
        chunk = debtors[start:start + 500]
        pipe = redis.pipeline(transaction=False)
        for debtor in chunk:
            pipe.hkeys(keys.cap_reservations(debtor))
        fields = await pipe.execute()
        pipe = redis.pipeline(transaction=False)
        for debtor, names in zip(chunk, fields, strict=True):
            mine = [f for f in names if str(f).startswith(prefix)]
            if mine:
                pipe.hdel(keys.cap_reservations(debtor), *mine)
        await pipe.execute()
