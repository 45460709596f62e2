"""Messenger throughput: messages/s through the connectors to the gateway simulator, and webhooks/s
the webhook app ingests; then both through the engine.

    .venv/bin/python load/bench_messengers.py [--messages 5000] [--webhooks 20000] [--concurrency 100]
                                              [--batch 500] [--skip-engine] [--profile] [--json]

Connectors and the webhook app alone (the top-level figures):

* messages/s: ``WhatsAppConnector`` / ``ViberConnector`` → ``python -m simulators.gateway`` in its own
  process (no latency, no faults, webhooks off), ``--concurrency`` sends in flight (the core's
  pacing would hold them to the account's ``rate_per_s``; here nothing limits them).
* webhooks/s: the aiohttp app of ``engine.webhooks`` with a no-op sink in its own process, blasted
  over ``--connections`` keep-alive connections with pre-signed WhatsApp status payloads (each
  one distinct) by a raw asyncio HTTP/1.1 client, so the client costs little of the shared CPU.
  Every answer must be 200.

Through the engine (``"engine"`` in the JSON; ``--skip-engine`` leaves it out):

* One ``volna.toml`` (mode 0600) for a private Redis, a fresh gateway simulator (webhooks off) and
  one clock (noon Moscow on 2026-12-01): both messenger channels with their webhook secrets, rates far
  above what one process sends (pacing's rate is never the limit), ``--concurrency`` sends per account.
* dispatch: ``--messages`` WhatsApp tasks, then as many Viber tasks, each in its own wave
  (soft_reminder, Europe/Moscow, one debtor each so caps never bite), go through
  ``engine.runner.Runner`` in this process with the connector ``volna run`` builds
  (``connectors.registry.build_connector``). messages/s: from the wave's start until the last task
  was accepted (every task must then be leased in phase ``accepted``, waiting for its status, and
  the gateway must have accepted each number once); claim→accepted from the task states.
* ingest: a real ``volna api`` (``python -m engine.cli api --config … --port 0``) records webhooks
  into the engine's correlation in Redis. Each WhatsApp task's message id (its state's ``cid``) gets
  one signed ``delivered`` status, blasted as above (the first tenth, at most 500, to warm up);
  webhooks/s is that one process's, with its CPU and Redis's per webhook. Every answer must be 200
  and every WhatsApp task final ``delivered`` exactly once.
* ``--profile``: cProfile of the dispatch phases (this process) and of the ``volna api`` process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import select
import socket
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
    peak_rss_mb,
    percentile,
    process_cpu_s,
    read_finals,
    redis_url,
    require,
    top_functions,
)


@contextlib.contextmanager
def process(args: list[str], port: int) -> Iterator[None]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{args} did not start")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


# ---- messages/s -----------------------------------------------------------------------------


async def send_all(channel: str, base_url: str, n: int, concurrency: int) -> dict[str, Any]:
    from connectors.base import Accepted, SendRequest
    from connectors.messengers import ViberConnector, WhatsAppConnector
    from engine.models import Attempt, Task
    from engine.outcomes import Channel
    from engine.scenarios import Messages, Scenario, WhatsAppTemplate

    http = {"pool_size": concurrency, "read_timeout_s": 30.0}
    conn: WhatsAppConnector | ViberConnector
    if channel == "whatsapp":
        conn = WhatsAppConnector.from_config({"base_url": base_url, "http": http, "accounts": [
            {"name": "wa", "phone_number_id": "1000000001", "access_token": "sim-wa-token"}]})
    else:
        conn = ViberConnector.from_config({"base_url": base_url, "http": http, "accounts": [
            {"name": "vb", "username": "volna", "password": "sim-password"}]})
    target = conn.targets()[0].name
    ch = Channel(channel)
    scenario = Scenario(name="b", messages=Messages(
        viber="x", whatsapp=WhatsAppTemplate(name="debt", body_params=["creditor", "amount:money"])))
    gate = asyncio.Semaphore(concurrency)
    accepted = 0
    latencies: list[float] = []

    async def one(i: int) -> None:
        nonlocal accepted
        task = Task(task_id=f"t{i}", wave_id="w", campaign_id="c", debtor_id=f"d{i}", channel=ch,
                    phone=f"+7916{i:07d}", scenario="b", vars={"creditor": "Водоканал", "amount": 1234.5})
        req = SendRequest(task=task, attempt=Attempt(task_id=task.task_id, wave_id="w", number=1, channel=ch),
                          target=target, text="Водоканал: долг 1 234,50 ₽", scenario=scenario)
        async with gate:
            t0 = time.perf_counter()
            result = await conn.send(req)
            latencies.append(time.perf_counter() - t0)
        accepted += isinstance(result, Accepted)

    async with conn:
        await asyncio.gather(*(one(i) for i in range(min(200, n))))  # warm up: connections, login
        latencies.clear()
        accepted = 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    latencies.sort()
    return {"messages": n, "accepted": accepted, "messages_per_s": n / elapsed,
            "p50_ms": latencies[len(latencies) // 2] * 1000, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "client_cpu_us_per_message": cpu / n * 1e6}


# ---- webhooks/s -----------------------------------------------------------------------------


def serve_webhooks(port: int) -> None:
    """The child process: the webhook app with a no-op sink."""
    from aiohttp import web

    from engine.webhooks import WebhookSecrets, make_webhook_app

    async def sink(event: Any) -> None:
        return None

    app = make_webhook_app(sink, WebhookSecrets(whatsapp_app_secrets=("bench-secret",)))
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def status_request(secret: str, message_id: str, status: str, recipient: str) -> bytes:
    """One HTTP/1.1 request of a WhatsApp status webhook, signed with ``secret`` as Meta signs it."""
    from connectors.messengers.webhooks import sign_sha256

    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "2"},
            "statuses": [{"id": message_id, "status": status, "timestamp": "1750000000", "recipient_id": recipient,
                          "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility"}}]}}]}]},
        separators=(",", ":")).encode()
    head = (f"POST /webhooks/whatsapp HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"X-Hub-Signature-256: {sign_sha256(secret, body)}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def signed_requests(count: int) -> list[bytes]:
    return [status_request("bench-secret", f"wamid.bench{i:08d}", ("delivered", "read", "sent")[i % 3], f"7916{i:07d}")
            for i in range(count)]


async def blast(port: int, requests: list[bytes], total: int, connections: int) -> dict[str, Any]:
    statuses: dict[int, int] = {}
    counter = iter(range(total))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in counter:
                writer.write(requests[i % len(requests)])
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    # One deadline for the whole blast (a timer per request would cost the shared CPU more).
    async with asyncio.timeout(60 + total / 100):
        await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    return {"webhooks": total, "webhooks_per_s": total / elapsed, "statuses": statuses}


# ---- through the engine -----------------------------------------------------------------------

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
                      "pay_url": "https://pay.example/x", "address": "ул. Ленина, 1"}} for i in range(n)]


async def task_lines(rows: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    for row in rows:
        yield json.dumps(row, ensure_ascii=False).encode()


@dataclass
class Waiting:
    """A wave's attempts waiting for their delivery status: task id → (message id, claimed ms, accepted ms)."""

    attempts: dict[str, tuple[str, int, int]]

    @classmethod
    async def read(cls, redis: Any, wave_id: str) -> Waiting:
        from engine.keys import WaveKeys

        states = {task: json.loads(raw) for task, raw in (await redis.hgetall(WaveKeys(wave_id).state)).items()}
        waiting = {task: (st["cid"], st["ca"], st["aa"]) for task, st in states.items()
                   if st.get("s") == "l" and st.get("ph") == "accepted"}
        require(len(waiting) == len(states), f"{len(states) - len(waiting)} of {len(states)} tasks of {wave_id} "
                                             f"not waiting for delivery")
        return cls(waiting)

    def last_ms(self) -> int:
        return max(aa for _, _, aa in self.attempts.values())

    def claim_to_accept_ms(self) -> list[float]:
        return [aa - ca for _, ca, aa in self.attempts.values()]


async def load_wave(ctx: Any, channel: str, n: int) -> str:
    from bench_core import DAY

    from engine.intake import Intake

    wave = WAVES[channel]
    await ctx.waves.create(wave, "c1", DAY)
    report = await Intake(ctx).load(wave, task_lines(messenger_tasks(channel, n)))
    require(report.accepted == n, f"intake of {wave}: {report.as_dict()}")
    return wave


async def dispatch_wave(ctx: Any, channel: str, n: int, profiler: cProfile.Profile | None) -> dict[str, Any]:
    """Load n tasks, start their wave and run the channel's connector (as ``volna run`` builds it) until
    the gateway accepted them all."""
    from connectors.registry import build_connector
    from engine.keys import WaveKeys
    from engine.outcomes import Channel
    from engine.runner import Runner

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
    from engine.clock import make_clock
    from engine.context import Context
    from engine.redis_conn import make_redis
    from engine.settings import load_settings

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
    proc = subprocess.Popen([sys.executable, *profiling, "-m", "engine.cli", "api", "--config", str(config),
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

    from engine.redis_conn import make_redis
    from engine.settings import load_settings

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

    from engine.clock import ScaledClock
    from engine.demo_config import write_config

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




def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=5000, help="per channel, for the connectors and the engine")
    p.add_argument("--concurrency", type=int, default=100, help="sends in flight (the engine: per account)")
    p.add_argument("--webhooks", type=int, default=20000)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--batch", type=int, default=500, help="the engine run's dispatcher batch_size (max_inflight 4×)")
    p.add_argument("--skip-engine", action="store_true", help="leave out the run through the engine")
    p.add_argument("--profile", action="store_true", help="cProfile the engine's dispatch and the volna api process")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--serve-webhooks", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_webhooks:
        serve_webhooks(args.serve_webhooks)
        return
    figures: dict[str, Any] = {}
    sim_port = free_port()
    with process(["-m", "simulators.gateway", "--port", str(sim_port), "--log-level", "WARNING"], sim_port):
        for channel in ("whatsapp", "viber"):
            figures[channel] = asyncio.run(
                send_all(channel, f"http://127.0.0.1:{sim_port}", args.messages, args.concurrency))
    hook_port = free_port()
    with process([str(ROOT / "load" / "bench_messengers.py"), "--serve-webhooks", str(hook_port)], hook_port):
        requests = signed_requests(min(args.webhooks, 5000))
        asyncio.run(blast(hook_port, requests, min(2000, args.webhooks), args.connections))  # warm up
        figures["webhooks"] = asyncio.run(blast(hook_port, requests, args.webhooks, args.connections))
    figures["peak_rss_mb"] = peak_rss_mb()  # before the engine run, which runs in this process too
    profiles = ""
    if not args.skip_engine:
        figures["engine"], profiles = run_engine(args)
    if args.json:
        print(json.dumps({"bench": "messengers", **figures}))
    else:
        print_figures(figures)
    if profiles:
        print(profiles)


def print_figures(figures: dict[str, Any]) -> None:
    for channel in ("whatsapp", "viber"):
        f = figures[channel]
        print(f"{channel:9s} {f['messages_per_s']:8.0f} messages/s  ({f['accepted']}/{f['messages']} accepted, "
              f"p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, "
              f"client CPU {f['client_cpu_us_per_message']:.0f} µs/message)")
    w = figures["webhooks"]
    print(f"webhooks  {w['webhooks_per_s']:8.0f} webhooks/s ({w['webhooks']} signed WhatsApp statuses, "
          f"answers {w['statuses']}, no-op sink)")
    e = figures.get("engine")
    if e is None:
        return
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


if __name__ == "__main__":
    main()
