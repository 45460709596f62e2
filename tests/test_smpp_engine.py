"""SMS through the whole engine: dispatcher → SMPP binds → the SMSC simulator → receipts →
correlation in Redis → results; two dispatchers, receipts landing on either one's binds."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import redis.asyncio as aioredis

from connectors.smpp import SmppConnector
from engine.calendar.clock import ScaledClock
from engine.context import Context
from engine.dispatch.runner import Runner
from simulators.smsc import Knobs, SmscSimulator
from tests.harness import context, final_count, load_wave, make_settings, results, task, wait_until
from tests.test_smpp_support import account

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


def _ctx(redis: aioredis.Redis, redis_url: str) -> Context:
    return context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)


@contextlib.asynccontextmanager
async def runners(ctxs: list[Context], connectors: list[list[Any]]) -> AsyncIterator[list[Runner]]:
    stop = asyncio.Event()
    made = [Runner(c, conns) for c, conns in zip(ctxs, connectors, strict=True)]
    jobs = [asyncio.create_task(r.run(stop)) for r in made]
    await asyncio.gather(*(asyncio.wait_for(r.started.wait(), 10) for r in made))
    try:
        yield made
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*jobs), 30)


async def test_throttled_smsc_two_dispatchers_receipts_on_any_bind(redis: aioredis.Redis, redis_url: str) -> None:
    # The SMSC takes 100/s; the account is configured for 300/s: ESME_RTHROTTLED, backed off.
    knobs = Knobs(tps_limit=100, receipt_delay_min_s=0.05, receipt_delay_max_s=0.3, receipt_routing="round_robin")
    async with SmscSimulator(knobs) as sim:
        ctx = _ctx(redis, redis_url)
        await load_wave(ctx, "w1", DAY, [task(n) for n in range(600)])
        conns = [[SmppConnector.from_config({"accounts": [account(sim.port, rate_per_s=300.0, binds=2)]})]
                 for _ in range(2)]
        async with runners([ctx, _ctx(redis, redis_url)], conns):
            async def done() -> bool:
                return await final_count(ctx, "w1") >= 600

            await wait_until(done, timeout_s=90)
    finals = [r for r in await results(redis, "w1") if r["kind"] == "result" and r["final"]]
    assert len({r["task_id"] for r in finals}) == 600 == len(finals)
    assert Counter(r["outcome"] for r in finals) == {"delivered": 600}
    parts = Counter(r["data"].get("parts") for r in finals)
    # The Cyrillic reminder goes as several UCS-2 parts, reported with the result (billing).
    assert len(parts) == 1 and next(iter(parts)) >= 2, parts
    # Every message accepted exactly once by the SMSC, throttling seen and backed off.
    assert sim.stats.throttled > 0
    assert len(sim.stats.per_destination) == 600 and max(sim.stats.per_destination.values()) == 1
    # Receipts came back on binds (and processes) other than the submitting one.
    assert sim.stats.receipts_on_other_session > 0
