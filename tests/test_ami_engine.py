"""IVR through the whole engine: dispatcher → AMI connector → the Asterisk simulator over TCP."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import redis.asyncio as aioredis

from connectors.ami import AmiConnector
from engine.calendar.clock import ScaledClock
from engine.context import Context
from engine.dispatch.runner import Runner
from engine.domain.outcomes import Channel, Outcome
from simulators.ami import AmiSimulator
from tests.fakes import RecordingConnector
from tests.harness import context, final_count, load_wave, make_settings, results, task, wait_until
from tests.test_ami_support import config, digits, fast_knobs

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


def _ctx(redis: aioredis.Redis, redis_url: str) -> Context:
    return context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)


@contextlib.asynccontextmanager
async def runners(ctxs: list[Context], connectors: list[list[Any]]) -> AsyncIterator[list[Runner]]:
    """Several dispatchers in one test (each its own owner id and AMI session)."""
    stop = asyncio.Event()
    made = [Runner(c, conns) for c, conns in zip(ctxs, connectors, strict=True)]
    jobs = [asyncio.create_task(r.run(stop)) for r in made]
    await asyncio.gather(*(asyncio.wait_for(r.started.wait(), 10) for r in made))
    try:
        yield made
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*jobs), 30)


async def test_trunk_limits_hold_across_two_dispatchers(redis: aioredis.Redis, redis_url: str) -> None:
    knobs = fast_knobs(talk_min_s=0.8, talk_max_s=1.5, ring_min_s=0.05, ring_max_s=0.2)
    async with AmiSimulator(knobs) as sim:
        ctx = _ctx(redis, redis_url)
        await load_wave(ctx, "w1", DAY, [task(n, channel="ivr", debtor=f"d{n}") for n in range(160)])
        conns = [[AmiConnector.from_config(config(sim.port, local_guard=False))] for _ in range(2)]
        async with runners([ctx, _ctx(redis, redis_url)], conns):
            async def done() -> bool:
                return await final_count(ctx, "w1") >= 160

            await wait_until(done, timeout_s=90)
    assert sim.stats.concurrent_high <= 50, sim.stats.concurrent_high
    assert sim.stats.max_originates_per_s <= 20, sim.stats.max_originates_per_s
    assert sim.stats.concurrent_high >= 20  # the limit was reached, not just never approached
    assert max(sim.stats.per_channel_id.values()) == 1


async def test_key_2_makes_one_sms_and_key_9_opts_out(redis: aioredis.Redis, redis_url: str) -> None:
    knobs = fast_knobs(keys_by_number={digits(1): "2", digits(2): "9"})
    async with AmiSimulator(knobs) as sim:
        ctx = _ctx(redis, redis_url)
        later = "2026-12-01T14:00:00+03:00"
        rows = [task(1, channel="ivr"), task(2, channel="ivr"),
                # the opting-out debtor's other tasks, due later today
                task(3, channel="sms", debtor="d2", not_before=later),
                task(4, channel="ivr", debtor="d2", phone="+79160000044", not_before=later)]
        await load_wave(ctx, "w1", DAY, rows)
        sms = RecordingConnector(channel=Channel.SMS, outcome=Outcome.DELIVERED)
        async with runners([ctx], [[AmiConnector.from_config(config(sim.port)), sms]]):
            async def done() -> bool:
                return await final_count(ctx, "w1") >= 5

            await wait_until(done, timeout_s=30)
            await asyncio.sleep(0.5)
    recs = [r for r in await results(redis, "w1") if r["kind"] == "result"]
    by_task = {r["task_id"]: r for r in recs if r["final"]}
    # The keys: 1 to confirm who answered, then 2 in the menu.
    assert by_task["t1"]["outcome"] == "answered" and by_task["t1"]["data"]["dtmf"] == "12"
    # Exactly one SMS task for that debtor, carrying the payment-details template.
    assert [s.task_id for s in sms.sent] == ["t1-sms-details"]
    assert sms.sent[0].text is not None and "Реквизиты" in sms.sent[0].text
    assert by_task["t1-sms-details"]["outcome"] == "delivered"
    # Key 9: on the stop-list as "refused", and the debtor's other queued tasks cancelled.
    entry = await ctx.stoplist.get("debtor", "d2")
    assert entry is not None and entry.reason == "refused"
    assert by_task["t3"]["outcome"] == "cancelled" and by_task["t4"]["outcome"] == "cancelled"
    assert sim.stats.per_number[digits(2)] == 1


async def test_two_dispatchers_on_one_asterisk_record_each_call_once(redis: aioredis.Redis, redis_url: str
                                                                     ) -> None:
    mix = {digits(n): ("busy" if n % 3 == 0 else "answered") for n in range(120)}
    async with AmiSimulator(fast_knobs(by_number=mix)) as sim:
        ctx = _ctx(redis, redis_url)
        await load_wave(ctx, "w1", DAY, [task(n, channel="ivr") for n in range(120)])
        conns = [[AmiConnector.from_config(config(sim.port))] for _ in range(2)]
        async with runners([ctx, _ctx(redis, redis_url)], conns):
            async def done() -> bool:
                # Busy calls wait for their retry an hour later (the scenario's rule).
                c = await ctx.waves.counts("w1")
                return c.get("final", 0) == 80 and c.get("queued", 0) == 40 and c.get("leased", 0) == 0

            try:
                await wait_until(done, timeout_s=60)
            except AssertionError:
                raise AssertionError(f"{await ctx.waves.counts('w1')} sim {sim.stats}") from None
            await asyncio.sleep(1.0)  # let the other process's copy of each event arrive
    recs = await results(redis, "w1")
    per_attempt = Counter((r["task_id"], r["attempt"]) for r in recs if r["kind"] == "result")
    assert len(per_attempt) == 120 and max(per_attempt.values()) == 1, "a call's result was recorded twice"
    assert not [r for r in recs if r["kind"] == "late"]
    counts = await ctx.waves.counts("w1")
    assert counts.get("duplicate", 0) > 0, "both processes did report the calls"
    assert max(sim.stats.per_channel_id.values()) == 1
