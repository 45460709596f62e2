"""The results stream over HTTP: pages, and SSE that resumes with Last-Event-ID and sends each record once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import aiohttp
import redis.asyncio as aioredis

from engine.api.app import ApiOptions
from engine.api.routes_results import pump
from engine.api.sse import Hub
from engine.calendar.clock import ScaledClock
from engine.context import Context
from engine.domain.outcomes import Channel
from engine.store.keys import WaveKeys
from tests.fakes import RecordingConnector
from tests.harness import context, final_count, load_wave, make_settings, running, task, wait_until
from tests.test_api_helpers import Api, api_client

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


@dataclass
class Event:
    id: str | None
    data: str
    comments: list[str] = field(default_factory=list)


async def sse_events(resp: aiohttp.ClientResponse) -> AsyncIterator[Event]:
    """A minimal SSE parser (the wire format, as a browser's EventSource reads it)."""
    event_id: str | None = None
    data: list[str] = []
    comments: list[str] = []
    async for raw in resp.content:
        line = raw.decode().rstrip("\r\n")
        if line == "":
            if data:
                yield Event(event_id, "\n".join(data), comments)
            elif comments:
                yield Event(None, "", comments)
            event_id, data, comments = None, [], []
        elif line.startswith(":"):
            comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "id":
                event_id = value
            elif name == "data":
                data.append(value)


async def all_ids(redis: aioredis.Redis, wave_id: str) -> list[str]:
    return [stream_id for stream_id, _ in await redis.xrange(WaveKeys(wave_id).results)]


async def follow(api: Api, wave_id: str, take: int, last_event_id: str | None = None,
                 params: dict[str, str] | None = None) -> list[Event]:
    """Read ``take`` data events, then drop the connection."""
    headers = api.headers({"Last-Event-ID": last_event_id} if last_event_id else {})
    out: list[Event] = []
    async with api.session.get(api.base + "/api/v1/results/stream", params={"wave": wave_id, **(params or {})},
                               headers=headers) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        async for event in sse_events(resp):
            if event.id is not None:
                out.append(event)
                if len(out) >= take:
                    break
    return out


async def test_reconnecting_with_last_event_id_gets_every_record_once(redis: aioredis.Redis, redis_url: str
                                                                      ) -> None:
    clock = ScaledClock(NOON_MSK)
    ctx = context(make_settings(redis_url), clock, redis)
    n = 600
    await load_wave(ctx, "w1", DAY, [task(i) for i in range(n)])
    conn = RecordingConnector(channel=Channel.SMS, rate_per_s=400, max_concurrent=50, late_after_s=0.05)
    got: list[Event] = []
    async with api_client(ctx, "planner") as api, running(ctx, [conn]):
        # From the start; drop after a few records; come back with the last id, several times,
        # while the dispatcher keeps writing (some reconnects land in catch-up, some in the live feed).
        last: str | None = None
        for take in (25, 200, 1, 300, 150):
            batch = await follow(api, "w1", take, last)
            got += batch
            last = batch[-1].id
            await asyncio.sleep(0.05)
        await wait_until(lambda: _final(ctx, n))
        expected = await all_ids(redis, "w1")
        got += await follow(api, "w1", len(expected) - len(got), last)
    ids = [e.id for e in got]
    assert len(ids) == len(set(ids)), "a record was sent twice"
    assert ids == expected, "a record is missing or out of order"
    records = [json.loads(e.data) for e in got]
    finals = [r for r in records if r["kind"] == "result" and r["final"]]
    assert len(finals) == n and {r["task_id"] for r in finals} == {f"t{i}" for i in range(n)}


async def _final(ctx: Context, n: int) -> bool:
    return await final_count(ctx, "w1") >= n


async def test_stream_heartbeats_kinds_and_since_now(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await load_wave(ctx, "w1", DAY, [task(i) for i in range(20)], start=False)
    stream = WaveKeys("w1").results
    for i in range(3):
        await redis.xadd(stream, {"r": json.dumps({"kind": "dispatched", "task_id": f"old{i}"})})
    async with api_client(ctx, "viewer", options=ApiOptions(heartbeat_s=0.2, feed_block_ms=100)) as api:
        params = {"wave": "w1", "since": "now", "kind": "result"}
        async with api.session.get(api.base + "/api/v1/results/stream", params=params, headers=api.headers()) as resp:
            events = sse_events(resp)
            first = await anext(events)
            assert first.id is None and first.comments == ["following w1"]
            beat = await anext(events)
            assert beat.comments == ["keep-alive"]
            await redis.xadd(stream, {"r": json.dumps({"kind": "dispatched", "task_id": "new0"})})
            new_id = await redis.xadd(stream, {"r": json.dumps({"kind": "result", "task_id": "new1"})})
            event = await anext(_skip_comments(events))
            assert event.id == new_id and json.loads(event.data)["task_id"] == "new1"
        assert (await api.get("/api/v1/results/stream", params={"wave": "w1", "since": "yesterday"})).status == 400
        assert (await api.get("/api/v1/results/stream", params={"wave": "nope"})).status == 404
        assert (await api.get("/api/v1/results/stream", params={"wave": "w1", "kind": "x"})).status == 400
        assert (await api.get("/api/v1/results/stream")).status == 400


async def _skip_comments(events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    async for e in events:
        if e.id is not None:
            yield e


async def test_results_pages(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await load_wave(ctx, "w1", DAY, [task(i) for i in range(50)])
    async with running(ctx, [RecordingConnector(channel=Channel.SMS)]):
        await wait_until(lambda: _final(ctx, 50))
    expected = await all_ids(redis, "w1")
    async with api_client(ctx, "planner") as api:
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = await api.get("/api/v1/results", params={"wave": "w1", "limit": "30",
                                                            **({"since": cursor} if cursor else {})})
            assert page.status == 200
            seen += [r["stream_id"] for r in page.body["records"]]
            cursor = page.body["next"]
            if not page.body["more"]:
                break
        assert seen == expected
        finals = await api.get("/api/v1/results", params={"wave": "w1", "kind": "result"})
        assert len(finals.body["records"]) == 50 and all(r["final"] for r in finals.body["records"])
        assert (await api.get("/api/v1/results", params={"wave": "w1", "since": cursor})).body["records"] == []
        assert (await api.get("/api/v1/results", params={"wave": "w1", "limit": "0"})).status == 400


class Collect:
    def __init__(self) -> None:
        self.data = b""

    async def write(self, data: bytes) -> None:
        self.data += data
        await asyncio.sleep(0)

    def ids(self) -> list[str]:
        return [line[4:] for line in self.data.decode().splitlines() if line.startswith("id: ")]


async def test_a_client_that_overflows_its_queue_catches_up_from_redis(redis: aioredis.Redis) -> None:
    stream = WaveKeys("w1").results
    hub = Hub(redis, block_ms=100, queue_batches=1)
    out = Collect()
    try:
        async with hub.subscribe("w1") as (sub, upto):
            # The feed reads separate batches while nothing drains the queue: it overflows.
            for i in range(6):
                await redis.xadd(stream, {"r": json.dumps({"kind": "result", "task_id": f"t{i}"})})
                await asyncio.sleep(0.05)
            assert sub.overflowed
            job = asyncio.create_task(pump(redis, out, stream, sub, "0", upto, None, 0.1))
            for i in range(6, 10):
                await redis.xadd(stream, {"r": json.dumps({"kind": "result", "task_id": f"t{i}"})})
            expected = await all_ids(redis, "w1")
            await wait_until(lambda: _has(out, len(expected)), timeout_s=5)
            sub.close()
            await asyncio.wait_for(job, 5)
    finally:
        await hub.stop()
    assert out.ids() == expected


async def _has(out: Collect, n: int) -> bool:
    return len(out.ids()) >= n
