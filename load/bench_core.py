"""Core benchmark: N tasks through the whole core (intake, claim, gates, caps, results) with an
instant connector. Prints tasks/s, claim→result latency, Redis round trips per task, peak RSS.

    .venv/bin/python load/bench_core.py [--tasks 200000] [--batch 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, date, datetime

from _common import RoundTrips, peak_rss_mb, percentile, redis_url

from engine.calendar.clock import ScaledClock
from engine.config.settings import load_settings
from engine.context import Context
from engine.dispatch.runner import Runner
from engine.domain.outcomes import Channel, Outcome
from engine.intake.loader import Intake
from engine.port import Connector, Final, SendRequest, SendResult, Target
from engine.store.connection import make_redis
from engine.store.keys import WaveKeys
from tests.harness import ROOT

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


class InstantConnector(Connector):
    channel = Channel.SMS

    def targets(self) -> list[Target]:
        return [Target("instant", 1e9, 10**9)]

    async def send(self, request: SendRequest) -> SendResult:
        return Final(Outcome.DELIVERED)


async def lines(n: int):  # type: ignore[no-untyped-def]
    for i in range(n):
        yield json.dumps({
            "task_id": f"t{i}", "debtor_id": f"d{i}", "channel": "sms", "phone": f"+7916{i:07d}",
            "tz": "Europe/Moscow", "scenario": "soft_reminder",
            "vars": {"creditor": "Мосэнергосбыт", "account": f"ЛС{i}", "amount": 1234.5, "due_date": "10.12",
                     "pay_url": "https://pay.example/x", "phone_back": "88001234567"},
        }, ensure_ascii=False).encode()


async def run(n: int, batch: int) -> dict[str, float]:
    with redis_url() as url:
        settings = load_settings(None, redis={"url": url}, scenarios_dir=str(ROOT / "scenarios"),
                                 dispatcher={"batch_size": batch, "max_inflight": batch * 4},
                                 log={"level": "WARNING", "json": False})
        redis = make_redis(settings.redis)
        clock = ScaledClock(NOON_MSK)
        ctx = Context.build(settings, clock, redis)
        await redis.flushdb()
        await ctx.waves.create("bench", "c1", DAY)
        mem0 = (await redis.info("memory"))["used_memory"]
        t0 = time.perf_counter()
        report = await Intake(ctx).load("bench", lines(n))
        intake_s = time.perf_counter() - t0
        bytes_per_task = ((await redis.info("memory"))["used_memory"] - mem0) / n
        assert report.accepted == n, report.as_dict()
        trips = RoundTrips()
        trips.install()
        await ctx.waves.change("bench", "start")
        runner = Runner(ctx, [InstantConnector()])
        stop = asyncio.Event()
        job = asyncio.create_task(runner.run(stop))
        t1 = time.perf_counter()
        cpu1 = time.process_time()
        redis_cpu1 = await redis_cpu_s(redis)
        trips.count = 0
        while int(await redis.hget(WaveKeys("bench").counts, "final") or 0) < n:
            await asyncio.sleep(0.2)
        dispatch_s = time.perf_counter() - t1
        engine_cpu_s = time.process_time() - cpu1
        redis_busy_s = await redis_cpu_s(redis) - redis_cpu1
        used = trips.count
        stop.set()
        await job
        latencies = await claim_to_result_ms(redis)
        await redis.aclose()
    return {
        "tasks": n, "intake_tasks_per_s": n / intake_s, "tasks_per_s": n / dispatch_s,
        "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
        "round_trips_per_task": used / n, "peak_rss_mb": peak_rss_mb(),
        "redis_bytes_per_queued_task": bytes_per_task,
        "engine_cpu_us_per_task": engine_cpu_s / n * 1e6, "redis_cpu_us_per_task": redis_busy_s / n * 1e6,
    }


async def redis_cpu_s(redis) -> float:  # type: ignore[no-untyped-def]
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def claim_to_result_ms(redis) -> list[float]:  # type: ignore[no-untyped-def]
    from engine.waves.results import read_range

    out: list[float] = []
    async for rec in read_range(redis, "bench", count=10_000):
        if rec["kind"] == "result" and rec.get("claimed_at") and rec.get("finished_at"):
            out.append(rec["finished_at"] - rec["claimed_at"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tasks", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--json", action="store_true", help="print one JSON object (for make bench)")
    args = p.parse_args()
    if args.tasks < 1 or args.batch < 1:
        print(f"bench_core: --tasks and --batch must be at least 1 (got {args.tasks}, {args.batch})", file=sys.stderr)
        raise SystemExit(2)
    figures = asyncio.run(run(args.tasks, args.batch))
    if args.json:
        print(json.dumps({"bench": "core", **figures}))
        return
    print(f"core: {figures['tasks']:.0f} tasks through intake → claim → gates → caps → send → results")
    print(f"  intake            {figures['intake_tasks_per_s']:10.0f} tasks/s")
    print(f"  dispatch          {figures['tasks_per_s']:10.0f} tasks/s (one process)")
    print(f"  claim→result      p50 {figures['p50_ms']:.0f} ms, p99 {figures['p99_ms']:.0f} ms")
    print(f"  Redis round trips {figures['round_trips_per_task']:10.3f} per task")
    print(f"  peak RSS          {figures['peak_rss_mb']:10.1f} MB")
    print(f"  Redis memory      {figures['redis_bytes_per_queued_task']:10.0f} bytes per queued task")
    eng, red = figures["engine_cpu_us_per_task"], figures["redis_cpu_us_per_task"]
    print(f"  CPU per task      engine {eng:.0f} µs, redis {red:.0f} µs"
          f" (each on its own core: {1e6 / max(eng, red):.0f} tasks/s)")


if __name__ == "__main__":
    main()
