"""A dispatcher process for multi-process tests: the real runner with the recording test double.

Every send is appended to ``--record`` (one JSON line, written before the send returns), so
the test sees what reached "the wire" even from a process it killed with SIGKILL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time

from engine.calendar.clock import make_clock
from engine.dispatch.runner import Runner
from engine.domain.outcomes import Channel, Outcome
from engine.port import SendRequest, SendResult
from engine.store.connection import make_redis
from tests.fakes import RecordingConnector
from tests.harness import context, make_settings


class FileRecordingConnector(RecordingConnector):
    fd: int = -1

    async def send(self, request: SendRequest) -> SendResult:
        now_ms = self.clock.now_ms() if self.clock is not None else None  # type: ignore[attr-defined]
        line = json.dumps({"attempt": request.attempt.key, "task": request.task.task_id,
                           "debtor": request.task.debtor_id, "real": time.time(), "engine_ms": now_ms,
                           "pid": os.getpid()}) + "\n"
        os.write(self.fd, line.encode())
        return await super().send(request)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--redis", required=True)
    p.add_argument("--record", required=True)
    p.add_argument("--channel", default="sms")
    p.add_argument("--rate", type=float, default=100_000)
    p.add_argument("--max-concurrent", type=int, default=100_000)
    p.add_argument("--outcome", default="delivered")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--late-after", type=float)
    p.add_argument("--lease-s", type=float, default=5.0)
    p.add_argument("--clock", default="")
    p.add_argument("--cluster", action="store_true")
    p.add_argument("--redis-settings", default="{}", help="more of the redis section, as JSON (Sentinel, durable)")
    args = p.parse_args()
    settings = make_settings(args.redis, clock=args.clock, dispatcher={"lease_s": args.lease_s},
                             redis={"url": args.redis, **json.loads(args.redis_settings)})
    if args.cluster:
        settings.redis.cluster = True
    clock = make_clock(args.clock)
    redis = make_redis(settings.redis)
    ctx = context(settings, clock, redis)
    connector = FileRecordingConnector(channel=Channel(args.channel), outcome=Outcome(args.outcome),
                                       rate_per_s=args.rate, max_concurrent=args.max_concurrent,
                                       delay_s=args.delay, late_after_s=args.late_after, clock=clock)
    connector.fd = os.open(args.record, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await Runner(ctx, [connector]).run(stop)
    finally:
        await redis.aclose()
        os.close(connector.fd)


if __name__ == "__main__":
    asyncio.run(main())
