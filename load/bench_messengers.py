"""Messenger throughput: messages/s through the connectors to the gateway simulator, and webhooks/s
the webhook app ingests; then both through the engine.

    .venv/bin/python load/bench_messengers.py [--messages 5000] [--webhooks 20000] [--concurrency 100]
                                              [--batch 500] [--skip-engine] [--profile] [--json]

Connectors and the webhook app alone (the top-level figures):

* messages/s: ``WhatsAppConnector`` / ``ViberConnector`` → ``python -m simulators.gateway`` in its own
  process (no latency, no faults, webhooks off), ``--concurrency`` sends in flight (the core's
  pacing would hold them to the account's ``rate_per_s``; here nothing limits them).
* webhooks/s: the aiohttp app of ``connectors.messengers.endpoint`` with a no-op sink in its own process, blasted
  over ``--connections`` keep-alive connections with pre-signed WhatsApp status payloads (each
  one distinct) by a raw asyncio HTTP/1.1 client, so the client costs little of the shared CPU.
  Every answer must be 200.

Through the engine (``"engine"`` in the JSON; ``--skip-engine`` leaves it out):

* One ``volna.toml`` (mode 0600) for a private Redis, a fresh gateway simulator (webhooks off) and
  one clock (noon Moscow on 2026-12-01): both messenger channels with their webhook secrets, rates far
  above what one process sends (pacing's rate is never the limit), ``--concurrency`` sends per account.
* dispatch: ``--messages`` WhatsApp tasks, then as many Viber tasks, each in its own wave
  (soft_reminder, Europe/Moscow, one debtor each so caps never bite), go through
  ``engine.dispatch.runner.Runner`` in this process with the connector ``volna run`` builds
  (``connectors.registry.build_connector``). messages/s: from the wave's start until the last task
  was accepted (every task must then be leased in phase ``accepted``, waiting for its status, and
  the gateway must have accepted each number once); claim→accepted from the task states.
* ingest: a real ``volna api`` (``python -m engine.cli.main api --config … --port 0``) records webhooks
  into the engine's correlation in Redis. Each WhatsApp task's message id (its state's ``cid``) gets
  one signed ``delivered`` status, blasted as above (the first tenth, at most 500, to warm up);
  webhooks/s is that one process's, with its CPU and Redis's per webhook. Every answer must be 200
  and every WhatsApp task final ``delivered`` exactly once.
* ``--profile``: cProfile of the dispatch phases (this process) and of the ``volna api`` process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from _common import (
    ROOT,
    free_port,
    peak_rss_mb,
    process,
)
from _gateway import blast, status_request
from _messengers_engine import print_engine, run_engine

# ---- messages/s -----------------------------------------------------------------------------


async def send_all(channel: str, base_url: str, n: int, concurrency: int) -> dict[str, Any]:
    from connectors.messengers import ViberConnector, WhatsAppConnector
    from engine.domain.models import Attempt, Task
    from engine.domain.outcomes import Channel
    from engine.domain.scenarios import Messages, Scenario, WhatsAppTemplate
    from engine.port import Accepted, SendRequest

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

    from connectors.messengers.endpoint import WebhookSecrets, make_webhook_app

    async def sink(event: Any) -> None:
        return None

    app = make_webhook_app(sink, WebhookSecrets(whatsapp_app_secrets=("bench-secret",)))
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def signed_requests(count: int) -> list[bytes]:
    return [status_request("bench-secret", f"wamid.bench{i:08d}", ("delivered", "read", "sent")[i % 3], f"7916{i:07d}")
            for i in range(count)]


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
    if "engine" in figures:
        print_engine(figures["engine"])

if __name__ == "__main__":
    main()
