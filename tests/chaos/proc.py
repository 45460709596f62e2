"""A ``volna run``-like dispatcher process for the chaos runs.

``python -m tests.chaos.proc --config volna.toml``

Settings, clock and connectors come from the generated config exactly as ``volna run`` builds
them (``load_settings``, ``make_clock(settings.clock)``, ``connectors.registry.build_connector``
for every enabled channel, ``Runner``). SIGTERM drains; SIGUSR1 logs what each channel loop
holds (the chaos run asks before it judges, for post-mortems).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
from collections import Counter

from connectors.registry import build_connector, enabled_channels
from engine.clock import make_clock
from engine.context import Context
from engine.logs import setup_logging
from engine.redis_conn import make_redis
from engine.runner import Runner
from engine.settings import load_settings

log = logging.getLogger("tests.chaos.proc")


def dump_state(runner: Runner) -> None:
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


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    args = p.parse_args()
    settings = load_settings(args.config)
    setup_logging(settings.log)
    connectors = [build_connector(channel, settings) for channel in enabled_channels(settings)]
    gc.freeze()  # as ``volna run`` does
    gc.set_threshold(50_000, 20, 100)
    redis = make_redis(settings.redis)
    ctx = Context.build(settings, make_clock(settings.clock), redis)
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
    return 1 if runner.failed else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
