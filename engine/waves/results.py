"""The results stream: follow it (consumer groups), page it, export it for the planner.

Each wave has its own stream (its keys share the wave's hash slot, so the
finalize script writes a result atomically with the state change). Records
are JSON in the field ``r``; their shape is :class:`engine.domain.models.Result`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
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


WaveSource = Callable[[], Awaitable[list[str]]]


async def follow(
    redis: Redis, waves: list[str] | WaveSource, *, group: str | None = None, consumer: str = "tail",
    start: str = "$", block_ms: int = 1000, count: int = 100, discover_s: float = 2.0,
) -> AsyncIterator[dict[str, Any]]:
    """Follow the results streams of ``waves``: a fixed list, or a function naming the waves to
    follow (asked again every ``discover_s``, so a wave created later is followed from its first
    record, and nothing is there to follow until one exists).

    With ``group``: through a consumer group, at least once — a record is acknowledged after the
    caller took it (its next ``__anext__``), and on start the consumer's own pending records (read
    but never acknowledged, e.g. before a crash) come first. A Redis Cluster is read one stream
    per call (each wave's stream lives in its wave's slot).
    """
    discover: WaveSource = waves if callable(waves) else _fixed(waves)
    cluster = isinstance(redis, RedisCluster)
    cursors: dict[str, str] = {}
    first_round = True
    next_discovery = 0.0
    while True:
        if time.monotonic() >= next_discovery:
            for wave_id in await discover():
                name = WaveKeys(wave_id).results
                if name in cursors:
                    continue
                # Waves there at the start begin at ``start``; a wave found later, at its beginning.
                begin = start if first_round else "0"
                if group:
                    await ensure_group(redis, wave_id, group, "0" if begin in ("0", "-") else "$")
                    begin = "0"  # this consumer's pending records first
                cursors[name] = begin
            first_round = False
            next_discovery = time.monotonic() + discover_s
        if not cursors:
            await asyncio.sleep(discover_s)
            continue
        wait_ms = int(min(block_ms, discover_s * 1000))
        got = False
        batches = [{n: c} for n, c in cursors.items()] if cluster else [dict(cursors)]
        for batch in batches:
            pending = group is not None and any(c != ">" for c in batch.values())
            if group:
                answer = await redis.xreadgroup(group, consumer, batch, count=count,
                                                block=None if pending or cluster else wait_ms)
            else:
                answer = await redis.xread(batch, count=count, block=None if cluster else wait_ms)
            for name, entries in answer or []:
                if group and not entries and cursors[name] != ">":
                    cursors[name] = ">"  # pending drained: new records from now on
                for stream_id, fields in entries:
                    got = True
                    if not group or cursors[name] != ">":
                        cursors[name] = stream_id
                    if fields is None:  # a pending entry trimmed away meanwhile
                        if group:
                            await redis.xack(name, group, stream_id)
                        continue
                    yield decode(stream_id, fields)
                    if group:
                        await redis.xack(name, group, stream_id)
        if cluster and not got:
            await asyncio.sleep(block_ms / 1000)


def _fixed(wave_ids: list[str]) -> WaveSource:
    async def these() -> list[str]:
        return list(wave_ids)

    return these
