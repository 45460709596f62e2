"""The results stream: follow it (consumer groups), page it, export it for the planner.

Each wave has its own stream (its keys share the wave's hash slot, so the
finalize script writes a result atomically with the state change). Records
are JSON in the field ``r``; their shape is :class:`engine.domain.models.Result`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterable
from datetime import date
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from engine.domain.models import Result
from engine.store.keys import WaveKeys
from engine.store.schema import RECORD_FIELD

#: The export's columns: the stream entry's id, then the record's fields (engine.domain.models.Result).
CSV_FIELDS = ["stream_id", *Result.model_fields]


def decode(stream_id: str, fields: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(fields[RECORD_FIELD])
    record["stream_id"] = stream_id
    return record


async def read_range(redis: Redis, wave_id: str, start: str = "-", count: int = 1000
                     ) -> AsyncIterator[dict[str, Any]]:
    """Every record of a wave's stream from ``start`` (inclusive), in pages."""
    stream = WaveKeys(wave_id).results
    cursor = start
    while True:
        page = await redis.xrange(stream, min=cursor, max="+", count=count)
        if not page:
            return
        for stream_id, fields in page:
            yield decode(stream_id, fields)
        last = page[-1][0]
        ms, seq = last.split("-")
        cursor = f"{ms}-{int(seq) + 1}"
        if len(page) < count:
            return


async def waves_of_day(redis: Redis, waves: Iterable[str], day: date) -> list[str]:
    out = []
    for wave_id in waves:
        if await redis.hget(WaveKeys(wave_id).meta, "day") == day.isoformat():
            out.append(wave_id)
    return sorted(out)


async def export(redis: Redis, wave_ids: list[str], out: io.TextIOBase, fmt: str, *, kinds: set[str]) -> int:
    """Write the records of ``wave_ids`` to ``out``; returns how many were written."""
    n = 0
    writer = None
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
    for wave_id in wave_ids:
        async for record in read_range(redis, wave_id):
            if record.get("kind") not in kinds:
                continue
            if writer is not None:
                row = dict(record)
                row["data"] = json.dumps(row.get("data") or {}, ensure_ascii=False)
                writer.writerow(row)
            else:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


async def ensure_group(redis: Redis, wave_id: str, group: str, start: str = "0") -> None:
    try:
        await redis.xgroup_create(WaveKeys(wave_id).results, group, id=start, mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def follow(
    redis: Redis, wave_ids: list[str], *, group: str | None = None, consumer: str = "tail",
    start: str = "$", block_ms: int = 1000, count: int = 100,
) -> AsyncIterator[dict[str, Any]]:
    """Follow the streams of ``wave_ids``.

    With ``group``: through a consumer group, at least once — a record is acknowledged after
    the caller took it (its next ``__anext__``), and on start the consumer's own pending
    records (read but never acknowledged, e.g. before a crash) come first.
    """
    names = [WaveKeys(w).results for w in wave_ids]
    if isinstance(redis, RedisCluster) and len(names) > 1:
        # Each wave's stream lives in its wave's slot: a cluster cannot XREAD them in one call.
        async for record in _follow_each(redis, names, group, consumer, start, block_ms, count):
            yield record
        return
    if not group:
        cursors = dict.fromkeys(names, start)
        while True:
            answer = await redis.xread(cursors, count=count, block=block_ms)
            for name, entries in answer or []:
                for stream_id, fields in entries:
                    cursors[name] = stream_id
                    yield decode(stream_id, fields)
    for wave_id in wave_ids:
        await ensure_group(redis, wave_id, group, "0" if start in ("0", "-") else "$")
    cursors = dict.fromkeys(names, "0")  # pending first
    while True:
        answer = await redis.xreadgroup(group, consumer, cursors, count=count,
                                        block=None if any(c != ">" for c in cursors.values()) else block_ms)
        for name, entries in answer or []:
            if not entries and cursors[name] != ">":
                cursors[name] = ">"  # pending drained: new records from now on
            for stream_id, fields in entries:
                if fields is None:  # pending entry trimmed away meanwhile
                    await redis.xack(name, group, stream_id)
                    continue
                if cursors[name] != ">":
                    cursors[name] = stream_id
                yield decode(stream_id, fields)
                await redis.xack(name, group, stream_id)


async def _follow_each(
    redis: Redis, names: list[str], group: str | None, consumer: str, start: str, block_ms: int, count: int,
) -> AsyncIterator[dict[str, Any]]:
    """``follow`` on a cluster: one stream per call, a short sleep when all were empty."""
    import asyncio

    if group:
        for name in names:
            try:
                await redis.xgroup_create(name, group, id="0" if start in ("0", "-") else "$", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
    cursors = dict.fromkeys(names, "0" if group else start)
    while True:
        got = False
        for name in names:
            if group:
                answer = await redis.xreadgroup(group, consumer, {name: cursors[name]}, count=count)
            else:
                answer = await redis.xread({name: cursors[name]}, count=count)
            for _, entries in answer or []:
                if group and not entries and cursors[name] != ">":
                    cursors[name] = ">"
                for stream_id, fields in entries:
                    got = True
                    if not group or cursors[name] != ">":
                        cursors[name] = stream_id
                    if fields is None:
                        continue
                    yield decode(stream_id, fields)
                    if group:
                        await redis.xack(name, group, stream_id)
        if not got:
            await asyncio.sleep(block_ms / 1000)
