"""``bench_messengers.py``'s engine run: WhatsApp and Viber tasks through ``Runner`` and the real
connectors to the gateway simulator, then signed webhooks into a real ``volna api`` process (see
``bench_messengers.py``'s docstring)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    free_port,
    percentile,
    process,
    process_cpu_s,
    read_finals,
    redis_url,
    require,
    top_functions,
)
from _gateway import blast, status_request

#: One wave per channel, dispatched one after the other (so each rate is that channel's alone).
WAVES = {"whatsapp": "bench-wa", "viber": "bench-vb"}
APP_SECRET = "bench-app-secret"


def engine_config(redis: str, gateway_url: str, concurrency: int, batch: int, clock_spec: str) -> dict[str, Any]:
    """What ``volna run`` and ``volna api`` would read: both messenger channels on the simulator, rates far
    above what one process sends (pacing's rate is never the limit), ``concurrency`` sends per account."""
    http = {"pool_size": concurrency, "read_timeout_s": 30.0}
    return {
        "clock": clock_spec,
        "scenarios_dir": str(ROOT / "scenarios"),
        "redis": {"url": redis},
        "dispatcher": {"batch_size": batch, "max_inflight": batch * 4},
        "log": {"level": "WARNING", "json": False},
        "channels": {
            "whatsapp": {"connector": {
                "base_url": gateway_url, "http": http, "app_secret": APP_SECRET, "verify_token": "bench-verify",
                "accounts": [{"name": "wa-bench", "phone_number_id": "1000000001", "access_token": "sim-wa-token",
                              "rate_per_s": 1e6, "max_concurrent": concurrency}]}},
            "viber": {"connector": {
                "base_url": gateway_url, "http": http, "callback_token": "bench-callback-token",
                "accounts": [{"name": "vb-bench", "username": "volna", "password": "sim-password",
                              "rate_per_s": 1e6, "max_concurrent": concurrency}]}},
        },
    }


def number(i: int) -> str:
    """The digits of task i's phone (every channel's task i has the same one)."""
    return f"7916{i:07d}"


def messenger_tasks(channel: str, n: int) -> list[dict[str, Any]]:
    """bench_core's task lines for a messenger: soft_reminder, Europe/Moscow, a debtor of its own each."""
    return [{"task_id": f"{channel}{i}", "debtor_id": f"{channel}-d{i}", "channel": channel,
             "phone": f"+{number(i)}", "tz": "Europe/Moscow", "scenario": "soft_reminder",
             "vars": {"creditor": "Мосэнергосбыт", "account": f"ЛС{i}", "amount": 1234.5, "due_date": "10.12",
                      "pay_url": "https://pay.example/x", "address": "ул. Ленина, 1",
                      "phone_back": "88001234567"}} for i in range(n)]


async def task_lines(rows: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    for row in rows:
        yield json.dumps(row, ensure_ascii=False).encode()


@dataclass
class Waiting:
    """A wave's attempts waiting for their delivery status: task id → (message id, claimed ms, accepted ms)."""

    attempts: dict[str, tuple[str, int, int]]

    @classmethod
    async def read(cls, redis: Any, wave_id: str) -> Waiting:
        from engine.domain.attempt import AttemptPhase
        from engine.store.keys import WaveKeys
        from engine.store.schema import PHASE_CODES, STATE_FIELDS

        phase, accepted = STATE_FIELDS["phase"], PHASE_CODES[AttemptPhase.ACCEPTED]
        states = {task: json.loads(raw) for task, raw in (await redis.hgetall(WaveKeys(wave_id).state)).items()}
        waiting = {task: (st["cid"], st["ca"], st["aa"]) for task, st in states.items() if st.get(phase) == accepted}
        other = [st for st in states.values() if st.get(phase) != accepted]
        require(not other, f"{len(other)} of {len(states)} tasks of {wave_id} not waiting for delivery "
                           f"(one: {other[0] if other else None})")
        return cls(waiting)

    def last_ms(self) -> int:
        return max(aa for _, _, aa in self.attempts.values())

    def claim_to_accept_ms(self) -> list[float]:
        return [aa - ca for _, ca, aa in self.attempts.values()]


async def load_wave(ctx: Any, channel: str, n: int) -> str:
    from bench_core import DAY

    from engine.intake.loader import Intake

    wave = WAVES[channel]
    await ctx.waves.create(wave, "c1", DAY)
    report = await Intake(ctx).load(wave, task_lines(messenger_tasks(channel, n)))
    require(report.accepted == n, f"intake of {wave}: {report.as_dict()}")
    return wave


async def dispatch_wave(ctx: Any, channel: str, n: int, profiler: cProfile.Profile | None) -> dict[str, Any]:
    """Load n tasks, start their wave and run the channel's connector (as ``volna run`` builds it) until
    the gateway accepted them all."""
    from connectors.registry import build_connector
    from engine.dispatch.runner import Runner
    from engine.domain.outcomes import Channel
    from engine.store.keys import WaveKeys

    wave = await load_wave(ctx, channel, n)
    runner = Runner(ctx, [build_connector(Channel(channel), ctx.settings)])
    stop = asyncio.Event()
    job = asyncio.create_task(runner.run(stop))
    await asyncio.wait_for(runner.started.wait(), 30)
    counts = WaveKeys(wave).counts
    cpu0, t0_ms = time.process_time(), ctx.clock.now_ms()
    if profiler:
        profiler.enable()
    await ctx.waves.change(wave, "start")
    async with asyncio.timeout(120 + n / 20):
        # Webhooks are off: nothing ends an accepted attempt, so the counter only grows to n.
        while int(await ctx.redis.hget(counts, f"c:{channel}:accepted") or 0) < n:
            if job.done():
                raise RuntimeError(f"the runner stopped before {wave} was sent: {job.exception()!r}")
            await asyncio.sleep(0.05)
    if profiler:
        profiler.disable()
    cpu_s = time.process_time() - cpu0
    stop.set()
    await asyncio.wait_for(job, 60)
    waiting = await Waiting.read(ctx.redis, wave)
    latencies = waiting.claim_to_accept_ms()
    return {"messages": n, "accepted": len(waiting.attempts),
            # The end is the last acceptance the engine recorded (engine clock, as the start).
            "messages_per_s": n / ((waiting.last_ms() - t0_ms) / 1000),
            "claim_accept_p50_ms": percentile(latencies, 0.5), "claim_accept_p99_ms": percentile(latencies, 0.99),
            "engine_cpu_us_per_message": cpu_s / n * 1e6}


async def gateway_accepted(base_url: str) -> dict[str, Counter[str]]:
    """Messages the gateway simulator accepted, per provider and number."""
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.get(f"{base_url}/stats") as resp:
            resp.raise_for_status()
            stats = await resp.json()
    return {provider: Counter(stats[provider]["per_number"]) for provider in WAVES}


async def dispatch_all(config: Path, n: int, gateway_url: str, profiler: cProfile.Profile | None
                       ) -> dict[str, Any]:
    from engine.calendar.clock import make_clock
    from engine.config.settings import load_settings
    from engine.context import Context
    from engine.store.connection import make_redis

    settings = load_settings(config)
    redis = make_redis(settings.redis)
    try:
        await redis.flushdb()
        ctx = Context.build(settings, make_clock(settings.clock), redis)
        figures = {channel: await dispatch_wave(ctx, channel, n, profiler) for channel in WAVES}
    finally:
        await redis.aclose()
    for provider, numbers in (await gateway_accepted(gateway_url)).items():
        require(len(numbers) == n and set(numbers.values()) == {1},
                f"{provider}: the gateway accepted {sum(numbers.values())} messages for {len(numbers)} numbers "
                f"(want {n}, once each)")
    return figures


@contextlib.contextmanager
def volna_api(config: Path, profile_to: Path | None) -> Iterator[tuple[int, int]]:
    """A real ``volna api`` process on a free port (optionally under cProfile); yields (port, pid)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    profiling = ["-m", "cProfile", "-o", str(profile_to)] if profile_to else []
    proc = subprocess.Popen([sys.executable, *profiling, "-m", "engine.cli.main", "api", "--config", str(config),
                             "--port", "0"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        # serve() prints this once bound; nothing else goes to its stdout (logs go to stderr).
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready and proc.stdout else ""
        if "listening on http://" not in line:
            raise RuntimeError(f"volna api did not start (said {line!r})")
        yield int(line.rsplit(":", 1)[1]), proc.pid
    finally:
        proc.terminate()  # SIGTERM: serve() returns, so a profile is written
        proc.wait(30)




async def ingest(config: Path, port: int, pid: int, connections: int) -> dict[str, Any]:
    """Every accepted WhatsApp message gets one signed ``delivered`` status webhook from the gateway's
    message ids, blasted at ``volna api``; then each task must be final ``delivered`` exactly once."""
    from bench_core import redis_cpu_s

    from engine.config.settings import load_settings
    from engine.store.connection import make_redis

    wave = WAVES["whatsapp"]
    redis = make_redis(load_settings(config).redis)
    try:
        attempts = (await Waiting.read(redis, wave)).attempts
        requests = [status_request(APP_SECRET, cid, "delivered", number(int(task.removeprefix("whatsapp"))))
                    for task, (cid, _, _) in attempts.items()]
        warm = min(500, len(requests) // 10)  # the first ones pay for connections and scripts
        await blast(port, requests[:warm], warm, connections)
        cpu0, redis_cpu0 = process_cpu_s(pid), await redis_cpu_s(redis)
        figures = await blast(port, requests[warm:], len(requests) - warm, connections)
        api_cpu_s, redis_busy_s = process_cpu_s(pid) - cpu0, await redis_cpu_s(redis) - redis_cpu0
        finals = await read_finals(redis, wave)
    finally:
        await redis.aclose()
    require(figures["statuses"] == {200: len(requests) - warm}, f"answers {figures['statuses']}")
    finals.require_once(len(attempts), "delivered")
    timed = figures["webhooks"]
    return {**figures, "warm_up": warm, "api_cpu_us_per_webhook": api_cpu_s / timed * 1e6,
            "redis_cpu_us_per_webhook": redis_busy_s / timed * 1e6, "delivered": finals.outcomes["delivered"]}


def run_engine(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Dispatch both waves through Runner, then ingest the WhatsApp statuses in ``volna api``; the
    figures and the profiles' text (``--profile``)."""
    from bench_core import NOON_MSK

    from engine.calendar.clock import ScaledClock
    from engine.demo.config import write_config

    profiler = cProfile.Profile() if args.profile else None
    sim_port = free_port()
    gateway_url = f"http://127.0.0.1:{sim_port}"
    with redis_url() as url, tempfile.TemporaryDirectory(prefix="volna-bench-") as tmp:
        # One clock spec for both processes, so they agree on the engine's time; mode 0600 (secrets inside).
        config = write_config(engine_config(url, gateway_url, args.concurrency, args.batch,
                                            ScaledClock(NOON_MSK).spec()), Path(tmp) / "volna.toml")
        with process(["-m", "simulators.gateway", "--port", str(sim_port), "--log-level", "WARNING"], sim_port):
            figures = asyncio.run(dispatch_all(config, args.messages, gateway_url, profiler))
        api_profile = Path(tmp) / "api.prof" if args.profile else None
        with volna_api(config, api_profile) as (port, pid):
            figures["ingest"] = asyncio.run(ingest(config, port, pid, args.connections))
        text = ""
        if profiler:
            text += "engine dispatch (this process, from each wave's start until all are accepted):\n"
            text += top_functions(profiler)
        if api_profile:
            text += "volna api (its whole life: start-up, warm-up, the blast):\n" + top_functions(str(api_profile))
    return figures, text


def print_engine(e: dict[str, Any]) -> None:
    print("through the engine (Runner → connector → gateway; a private Redis):")
    for channel in ("whatsapp", "viber"):
        f = e[channel]
        print(f"  {channel:9s} {f['messages_per_s']:8.0f} messages/s  ({f['accepted']}/{f['messages']} tasks "
              f"accepted, waiting for delivery; claim→accepted p50 {f['claim_accept_p50_ms']:.0f} ms, "
              f"p99 {f['claim_accept_p99_ms']:.0f} ms; engine CPU {f['engine_cpu_us_per_message']:.0f} µs/message)")
    i = e["ingest"]
    print(f"  ingest    {i['webhooks_per_s']:8.0f} webhooks/s into one `volna api` ({i['webhooks']} signed `delivered` "
          f"statuses after {i['warm_up']} to warm up; {i['delivered']} tasks final `delivered` once each; "
          f"target ≥ 2000)")
    print(f"            CPU per webhook: volna api {i['api_cpu_us_per_webhook']:.0f} µs, "
          f"Redis {i['redis_cpu_us_per_webhook']:.0f} µs")
