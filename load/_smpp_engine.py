"""``bench_smpp.py``'s engine run: SMS tasks through intake, ``Runner``, the connector ``volna run``
builds and the SMSC simulator, receipts correlated in Redis (see ``bench_smpp.py``'s docstring)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    RoundTrips,
    free_port,
    peak_rss_mb,
    percentile,
    read_finals,
    redis_url,
    require,
    top_functions,
)
from _smsc import SubmitTimes, simulator

#: The engine run's wave (bench_core's lines() name their tasks t0…, debtors d0…).
ENGINE_WAVE = "bench-sms"


def sms_channel(port: int, binds: int, window: int) -> dict[str, Any]:
    """``[channels.sms]`` for the simulator: a rate far above what one process sends (pacing's rate
    must not be the limit); the target's concurrency stays the connector's default."""
    return {"connector": {"accounts": [{
        "name": "bench", "host": "127.0.0.1", "port": port, "system_id": "bench", "password": "secret",
        "binds": binds, "window": window, "rate_per_s": 1e6,
    }]}}


@dataclass
class SmscCounts:
    """What the simulator's ``GET /stats`` counted: whole messages per destination, parts, receipts."""

    destinations: Counter[str]
    parts: int
    receipts_sent: int

    def __sub__(self, before: SmscCounts) -> SmscCounts:
        return SmscCounts(self.destinations - before.destinations, self.parts - before.parts,
                          self.receipts_sent - before.receipts_sent)


async def smsc_counts(stats_url: str | None) -> SmscCounts | None:
    """None without a stats URL (a simulator of the caller's without one)."""
    if stats_url is None:
        return None
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.get(f"{stats_url}/stats") as resp:
            resp.raise_for_status()
            stats = await resp.json()
    return SmscCounts(Counter(stats["per_destination"]), stats["accepted_parts"], stats["receipts_sent"])


async def wait_final(redis: Any, wave_id: str, n: int, runner_job: asyncio.Task[None], timeout_s: float) -> None:
    from engine.store.keys import WaveKeys

    counts = WaveKeys(wave_id).counts
    async with asyncio.timeout(timeout_s):
        # Polled often: the end of the run is read from the results stream, this only stops it.
        while int(await redis.hget(counts, "final") or 0) < n:
            if runner_job.done():
                raise RuntimeError(f"the runner stopped before the wave was done: {runner_job.exception()!r}")
            await asyncio.sleep(0.05)


@dataclass
class Dispatch:
    """One run of the Runner over a started wave: when it began, what it cost."""

    t0: float  # time.perf_counter()
    t0_ms: int  # engine clock
    cpu_s: float = 0.0
    redis_cpu_s: float = 0.0
    round_trips: int = 0


async def dispatch(ctx: Any, connector: Any, n: int, profiler: cProfile.Profile | None) -> Dispatch:
    """Start the wave with the Runner up and bound; return once every task is final."""
    from bench_core import redis_cpu_s

    from engine.dispatch.runner import Runner

    trips = RoundTrips()
    trips.install()
    runner = Runner(ctx, [connector])
    stop = asyncio.Event()
    job = asyncio.create_task(runner.run(stop))
    await asyncio.wait_for(runner.started.wait(), 30)
    await connector.wait_bound(10.0)
    redis_cpu0 = await redis_cpu_s(ctx.redis)
    trips.count = 0
    cpu0 = time.process_time()
    run = Dispatch(time.perf_counter(), ctx.clock.now_ms())
    if profiler:
        profiler.enable()
    await ctx.waves.change(ENGINE_WAVE, "start")
    await wait_final(ctx.redis, ENGINE_WAVE, n, job, timeout_s=120 + n / 50)
    if profiler:
        profiler.disable()
    run.cpu_s, run.round_trips = time.process_time() - cpu0, trips.count
    run.redis_cpu_s = await redis_cpu_s(ctx.redis) - redis_cpu0
    stop.set()
    await asyncio.wait_for(job, 60)
    return run


def receipts_resent(before: SmscCounts | None, after: SmscCounts | None, n: int) -> int | None:
    """Check the simulator took each of the n messages once; how many receipts it sent again (None:
    not checked)."""
    if before is None or after is None:
        return None
    got = after - before
    require(sum(got.destinations.values()) == n and set(got.destinations.values()) == {1},
            f"the simulator accepted {sum(got.destinations.values())} messages for {len(got.destinations)} "
            f"numbers (want {n}, once each)")
    # A receipt the engine answered with an error, or lost with its bind, is sent again.
    return got.receipts_sent - got.parts


#: The SMS of the engine run's scenario: soft_reminder's own (139 Cyrillic characters, 3 UCS-2
#: parts) or a short notice (one UCS-2 part), the two shapes collections SMS come in.
TEXTS = {
    "reminder": None,
    "short": "{creditor}: долг {amount:money}. Оплата: {pay_url} Тел. {phone_back}",
}


def scenarios_for(text: str, folder: Path) -> Path:
    """The shipped scenarios, with soft_reminder's SMS replaced when ``text`` says so."""
    import yaml

    if TEXTS[text] is None:
        return ROOT / "scenarios"
    folder.mkdir(parents=True, exist_ok=True)
    doc = yaml.safe_load((ROOT / "scenarios" / "soft_reminder.yaml").read_text(encoding="utf-8"))
    doc["messages"]["sms"] = TEXTS[text]
    (folder / "soft_reminder.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return folder


async def run_engine(port: int, stats_url: str | None, n: int, binds: int, window: int, batch: int,
                     profiler: cProfile.Profile | None, text: str = "reminder") -> dict[str, Any]:
    """The child process: n SMS tasks through intake, then Runner → SmppConnector → the simulator."""
    from bench_core import DAY, NOON_MSK, lines

    from connectors.registry import build_connector
    from engine.calendar.clock import ScaledClock
    from engine.config.settings import load_settings
    from engine.context import Context
    from engine.domain.outcomes import Channel
    from engine.intake.loader import Intake
    from engine.store.connection import make_redis

    with redis_url() as url, tempfile.TemporaryDirectory(prefix="bench-smpp-") as tmp:
        scenarios = scenarios_for(text, Path(tmp))
        settings = load_settings(None, redis={"url": url}, scenarios_dir=str(scenarios),
                                 dispatcher={"batch_size": batch, "max_inflight": batch * 4},
                                 log={"level": "WARNING", "json": False},
                                 channels={"sms": sms_channel(port, binds, window)})
        redis = make_redis(settings.redis)
        try:
            ctx = Context.build(settings, ScaledClock(NOON_MSK), redis)
            await redis.flushdb()
            await ctx.waves.create(ENGINE_WAVE, "c1", DAY)
            report = await Intake(ctx).load(ENGINE_WAVE, lines(n))
            require(report.accepted == n, f"intake: {report.as_dict()}")
            sim_before = await smsc_counts(stats_url)
            with SubmitTimes().installed() as submits:
                run = await dispatch(ctx, build_connector(Channel.SMS, settings), n, profiler)  # as `volna run`
            finals = await read_finals(redis, ENGINE_WAVE)
            sim_after = await smsc_counts(stats_url)
        finally:
            await redis.aclose()
    finals.require_once(n, "delivered")
    resent = receipts_resent(sim_before, sim_after, n)
    return {
        "messages": n, "parts_per_message": len(submits.rtts_s) / n,
        "messages_per_s": n / ((finals.last_final_ms - run.t0_ms) / 1000),
        "send_messages_per_s": n / (submits.last_answer - run.t0),
        "receipts_per_s": finals.outcomes["delivered"] / ((finals.last_delivered_ms - run.t0_ms) / 1000),
        "submit_resp_p50_ms": submits.p_ms(0.5), "submit_resp_p99_ms": submits.p_ms(0.99),
        "claim_result_p50_ms": percentile(finals.claim_to_result_ms, 0.5),
        "claim_result_p99_ms": percentile(finals.claim_to_result_ms, 0.99),
        "peak_rss_mb": peak_rss_mb(), "engine_cpu_us_per_message": run.cpu_s / n * 1e6,
        "redis_cpu_us_per_message": run.redis_cpu_s / n * 1e6, "round_trips_per_message": run.round_trips / n,
        "text": text, "binds": binds, "window": window, "batch": batch, "simulator_checked": resent is not None,
        **({} if resent is None else {"receipts_resent": resent}),
    }


def engine_child(args: argparse.Namespace) -> None:
    """``--engine-child``: the engine run in this process; prints its profile (if any), then one JSON line."""
    profiler = cProfile.Profile() if args.profile else None
    stats_url = f"http://127.0.0.1:{args.smsc_http_port}" if args.smsc_http_port else None
    figures = asyncio.run(run_engine(args.smsc_port, stats_url, args.messages, args.binds, args.window, args.batch,
                                     profiler, args.text))
    if profiler:
        print(top_functions(profiler))
    print(json.dumps(figures))


def engine_figures(args: argparse.Namespace, text: str) -> tuple[dict[str, Any], str]:
    """Run the engine child against the given simulator or a fresh one; its figures and profile text."""
    port, http_port = (args.smsc_port, args.smsc_http_port) if args.smsc_port else (free_port(), free_port())
    child = [sys.executable, str(ROOT / "load" / "bench_smpp.py"), "--engine-child", "--smsc-port", str(port),
             "--messages", str(args.messages), "--binds", str(args.binds), "--window", str(args.window),
             "--batch", str(args.batch), "--text", text, *(["--smsc-http-port", str(http_port)] if http_port else []),
             *(["--profile"] if args.profile else [])]
    with contextlib.nullcontext() if args.smsc_port else simulator(port, http_port):
        proc = subprocess.run(child, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=300 + args.messages / 20)
    if proc.returncode != 0:
        raise RuntimeError(f"the engine run failed ({proc.returncode}); its errors are above")
    *profile, last = proc.stdout.rstrip("\n").split("\n")
    return json.loads(last), "\n".join(profile)


def print_engine(e: dict[str, Any]) -> None:
    print(f"engine {e['messages_per_s']:7.0f} messages/s until every task is final ({e['messages']} SMS tasks, "
          f"{e['parts_per_message']:.0f} part(s) each, {e['binds']} binds × window {e['window']}; target ≥ 3000)")
    print(f"      {e['send_messages_per_s']:8.0f} messages/s until the last submit_sm_resp")
    print(f"      {e['receipts_per_s']:8.0f} receipts/s correlated (tasks final `delivered`)")
    print(f"      submit→submit_sm_resp p50 {e['submit_resp_p50_ms']:.2f} ms, p99 {e['submit_resp_p99_ms']:.2f} ms; "
          f"claim→result p50 {e['claim_result_p50_ms']:.0f} ms, p99 {e['claim_result_p99_ms']:.0f} ms")
    print(f"      CPU per message: engine process {e['engine_cpu_us_per_message']:.0f} µs, "
          f"Redis {e['redis_cpu_us_per_message']:.0f} µs; {e['round_trips_per_message']:.3f} Redis round trips")
    checked = (f"the simulator took each message once, {e['receipts_resent']} receipts sent again"
               if e["simulator_checked"] else "the simulator's counts not checked")
    print(f"      peak RSS {e['peak_rss_mb']:.0f} MB (engine process); {checked}")
