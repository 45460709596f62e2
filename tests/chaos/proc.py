"""A ``volna run``-like dispatcher process for the chaos runs.

``python -m tests.chaos.proc --config volna.toml --record sms.jsonl --seed N``

Settings, clock and connectors come from the generated config, as ``volna run`` builds them
(``load_settings``, ``make_clock(settings.clock)``, ``connectors.registry.build_connector``).
The one exception is SMS while no SMSC simulator exists: an in-process double that appends
every send to ``--record`` (one JSON line, written before the send returns, so a SIGKILL
cannot hide a send) and answers ``delivered``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import time
from collections import Counter
from typing import Any

from connectors.base import Connector, Final, SendRequest, SendResult, Target
from connectors.registry import build_connector, enabled_channels
from engine.clock import Clock, make_clock
from engine.context import Context
from engine.logs import setup_logging
from engine.outcomes import Channel, Outcome
from engine.redis_conn import make_redis
from engine.runner import Runner
from engine.settings import load_settings

SMS_TARGET = "sms-double"
log = logging.getLogger("tests.chaos.proc")


class SmsDouble(Connector):
    """SMS without a peer: every send is a line in the record file, the outcome ``delivered``."""

    channel = Channel.SMS

    def __init__(self, fd: int, clock: Clock, rng: random.Random, *, resend_unconfirmed: bool) -> None:
        super().__init__()
        self.fd = fd
        self.clock = clock
        self.rng = rng
        self.resend_unconfirmed = resend_unconfirmed

    def targets(self) -> list[Target]:
        return [Target(SMS_TARGET, 100.0, 1000)]  # the config's [pacing.sms-double] overrides it

    async def send(self, request: SendRequest) -> SendResult:
        task = request.task
        line: dict[str, Any] = {"attempt": request.attempt.key, "task": task.task_id, "debtor": task.debtor_id,
                                "phone": task.phone, "real": time.time(), "engine_ms": self.clock.now_ms(),
                                "pid": os.getpid()}
        os.write(self.fd, (json.dumps(line) + "\n").encode())
        # "On the wire" for a moment: a SIGKILL can land between the send and its result.
        await asyncio.sleep(self.rng.uniform(0.0, 0.02))
        return Final(Outcome.DELIVERED, provider_code="double")


def dump_state(runner: Runner) -> None:
    """SIGUSR1: what each channel loop holds (the chaos run asks before it judges, for post-mortems)."""
    tasks = {t.get_name(): t for t in asyncio.all_tasks()}
    for ch_loop in runner.loops:
        task = tasks.get(f"loop-{ch_loop.channel}")
        if task is None:
            state = "gone (finished)"
        elif task.done():
            state = f"finished: {task.exception()!r}" if not task.cancelled() else "cancelled"
        else:
            state = "running"
        phases = Counter(job.phase for job in ch_loop.inflight.values())
        log.warning("state of loop %s: %s; inflight %d/%d %s; work %d", ch_loop.channel, state,
                    len(ch_loop.inflight), ch_loop.max_inflight, dict(phases), len(ch_loop._work))


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--record", required=True)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    settings = load_settings(args.config)
    setup_logging(settings.log)
    clock = make_clock(settings.clock)
    fd = os.open(args.record, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    connectors: list[Connector] = []
    for channel in enabled_channels(settings):
        section = settings.channel(channel)
        if channel is Channel.SMS and not section.connector:
            connectors.append(SmsDouble(fd, clock, random.Random(args.seed),
                                        resend_unconfirmed=section.resend_unconfirmed))
        else:
            connectors.append(build_connector(channel, settings))
    redis = make_redis(settings.redis)
    ctx = Context.build(settings, clock, redis)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = Runner(ctx, connectors)
    loop.add_signal_handler(signal.SIGUSR1, lambda: dump_state(runner))
    try:
        await runner.run(stop)
    finally:
        await redis.aclose()
        os.close(fd)


if __name__ == "__main__":
    asyncio.run(main())
