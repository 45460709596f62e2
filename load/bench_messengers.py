"""Messenger throughput: messages/s through the connectors to the gateway simulator, and webhooks/s
the webhook app ingests.

    .venv/bin/python load/bench_messengers.py [--messages 5000] [--webhooks 20000] [--json]

* messages/s: ``WhatsAppConnector`` / ``ViberConnector`` → ``python -m simulators.gateway`` in its own
  process (no latency, no faults, webhooks off), ``--concurrency`` sends in flight (the core's
  pacing would hold them to the account's ``rate_per_s``; here nothing limits them).
* webhooks/s: the aiohttp app of ``engine.webhooks`` with a no-op sink in its own process, blasted
  over ``--connections`` keep-alive connections with pre-signed WhatsApp status payloads (each
  one distinct) by a raw asyncio HTTP/1.1 client, so the client costs little of the shared CPU.
  Every answer must be 200.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from _common import ROOT, peak_rss_mb


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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


def signed_requests(count: int) -> list[bytes]:
    from connectors.messengers.webhooks import sign_sha256

    out = []
    for i in range(count):
        status = ("delivered", "read", "sent")[i % 3]
        body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "2"},
                "statuses": [{"id": f"wamid.bench{i:08d}", "status": status, "timestamp": "1750000000",
                              "recipient_id": f"7916{i:07d}",
                              "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility"}}]}}]}]},
            separators=(",", ":")).encode()
        head = (f"POST /webhooks/whatsapp HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                f"X-Hub-Signature-256: {sign_sha256('bench-secret', body)}\r\nContent-Length: {len(body)}\r\n\r\n")
        out.append(head.encode() + body)
    return out


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
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    return {"webhooks": total, "webhooks_per_s": total / elapsed, "statuses": statuses}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--webhooks", type=int, default=20000)
    p.add_argument("--connections", type=int, default=32)
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
    figures["peak_rss_mb"] = peak_rss_mb()
    if args.json:
        print(json.dumps({"bench": "messengers", **figures}))
        return
    for channel in ("whatsapp", "viber"):
        f = figures[channel]
        print(f"{channel:9s} {f['messages_per_s']:8.0f} messages/s  ({f['accepted']}/{f['messages']} accepted, "
              f"p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, "
              f"client CPU {f['client_cpu_us_per_message']:.0f} µs/message)")
    w = figures["webhooks"]
    print(f"webhooks  {w['webhooks_per_s']:8.0f} webhooks/s ({w['webhooks']} signed WhatsApp statuses, "
          f"answers {w['statuses']}, target ≥ 2000)")


if __name__ == "__main__":
    main()
