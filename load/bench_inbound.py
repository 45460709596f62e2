"""Inbound benchmark: how fast a debtor's "Стоп." reaches the stop-list, and how many callbacks a
process records per second.

* opt-outs: ``--replies`` debtors each send "Стоп." as an MO SMS in two concatenated parts, one
  part on each of two dispatchers' binds (two SMPP connectors on the SMSC simulator, one
  engine context each, one Redis); measured from the simulator's ``send_mo`` to the debtor's
  stop-list entry (polled every 5 ms).
* callbacks: ``--calls`` inbound calls' ends (``InboundEvent(kind="call_end")``) recorded by one
  process against a directory of that many debtors, one after the other.

    .venv/bin/python load/bench_inbound.py [--replies 200] [--calls 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, date, datetime

from _common import percentile, redis_url

from connectors.smpp import SmppConnector
from engine.calendar.clock import ScaledClock
from engine.config.settings import load_settings
from engine.context import Context
from engine.dispatch.inbound import Inbound
from engine.domain.outcomes import Channel
from engine.port import InboundEvent, LateEvent
from engine.store.connection import make_redis
from simulators.smsc import Knobs, SmscSimulator
from tests.harness import ROOT

NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)
DAY = date(2026, 12, 1)


def phone(n: int) -> str:
    return f"+7916{n:07d}"


async def opt_outs(url: str, n: int) -> list[float]:
    settings = load_settings(None, redis={"url": url}, scenarios_dir=str(ROOT / "scenarios"), log={"json": False})
    clock = ScaledClock(NOON_MSK)
    ctxs = [Context.build(settings, clock, make_redis(settings.redis)) for _ in range(2)]
    ctx = ctxs[0]
    await ctx.directory.add_loaded([(phone(i), f"d{i}", "bench", "c1") for i in range(n)], clock.now_ms())
    latencies: list[float] = []
    async with SmscSimulator(Knobs()) as sim:
        conns = []
        for c in ctxs:
            inbound = Inbound(c)

            async def sink(event: LateEvent | InboundEvent, inbound: Inbound = inbound) -> None:
                if isinstance(event, InboundEvent):
                    await inbound.record(event)
            conn = SmppConnector.from_config({"accounts": [{
                "name": "smsc", "host": "127.0.0.1", "port": sim.port, "system_id": "volna", "password": "secret",
                "binds": 1}]})
            conn.bind_events(sink)
            await conn.__aenter__()
            await conn.wait_bound(5.0)
            conns.append(conn)
        for i in range(n):
            t0 = time.perf_counter()
            sim.send_mo({"source": phone(i).lstrip("+"), "destination": "4242", "text": "Стоп.", "parts": 2,
                         "bind": [0, 1]})
            while await ctx.stoplist.get("debtor", f"d{i}") is None:
                await asyncio.sleep(0.005)
            latencies.append((time.perf_counter() - t0) * 1000)
        for conn in conns:
            await conn.__aexit__(None, None, None)
    for c in ctxs:
        await c.redis.aclose()
    return latencies


async def callbacks(url: str, n: int) -> float:
    settings = load_settings(None, redis={"url": url}, scenarios_dir=str(ROOT / "scenarios"), log={"json": False})
    clock = ScaledClock(NOON_MSK)
    ctx = Context.build(settings, clock, make_redis(settings.redis))
    await ctx.waves.create("cb", "c1", DAY)
    await ctx.directory.add_loaded([(phone(100_000 + i), f"cb{i}", "cb", "c1") for i in range(n)], clock.now_ms())
    inbound = Inbound(ctx)
    t0 = time.perf_counter()
    for i in range(n):
        await inbound.record(InboundEvent(Channel.IVR, phone(100_000 + i), {"did": "84950000000", "duration_s": 30},
                                          kind="call_end", source_id=f"ast:{i}"))
    rate = n / (time.perf_counter() - t0)
    await ctx.redis.aclose()
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--replies", type=int, default=200)
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--json", action="store_true", help="print one JSON object (for make bench)")
    args = p.parse_args()
    with redis_url() as url:
        lat = asyncio.run(opt_outs(url, args.replies))
        rate = asyncio.run(callbacks(url, args.calls))
    if args.json:
        print(json.dumps({"bench": "inbound", "opt_out_p50_ms": round(percentile(lat, 0.5), 1),
                          "opt_out_p99_ms": round(percentile(lat, 0.99), 1), "callbacks_per_s": round(rate)}))
        return
    print(f"inbound: {args.replies} opt-outs by SMS (two parts, two binds, two dispatchers)")
    print(f"  MO sent → stop-list   p50 {percentile(lat, 0.5):.1f} ms, p99 {percentile(lat, 0.99):.1f} ms, "
          f"max {max(lat):.1f} ms")
    print(f"  callbacks recorded    {rate:10.0f} per second (one process, one after the other)")


if __name__ == "__main__":
    main()
